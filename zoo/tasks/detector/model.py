"""``Detector``: boxes, classes and scores from a zoo backbone's P3-P5 pyramid (RetinaNet).

Built from keras-hub's RetinaNet parts (``FeaturePyramid``, ``PredictionHead``,
``AnchorGenerator``, ``RetinaNetLabelEncoder`` with its IoU ``BoxMatcher``) and Keras' box delta
encoding, ``BinaryFocalCrossentropy`` and ``Huber`` losses. Chosen after reading both
candidates' source (keras-hub 0.32, keras-cv 0.9; ``bench/detect.py`` prints these facts):

- keras-cv's ``YOLOV8Detector`` (a frozen project): its loss is CIoU + BCE with no distribution
  focal term, so the 16-bin box distributions learn only through the IoU of their mean; its
  class convolutions start at bias 0 (every location scores 0.5 against ~99% background, where
  Ultralytics starts near 0.01); it needs a keras-cv ``Backbone`` with layer-name
  ``pyramid_level_inputs``; its ``PyCOCOCallback`` counts only boxes of class > 0 (issue 2402).
  Users report mAP50 0.05 where Ultralytics gets 0.94 on the same data (issue 2442, open).
- keras-hub's ``RetinaNetObjectDetector`` (maintained) takes any encoder exposing
  ``pyramid_outputs`` but, as shipped: hard-codes 256-filter heads (at 128 px with its default
  4 convolutions on P3-P7 about 1.9 GMACs, 14x the Lite0 backbone's 0.13); puts the focal-loss
  prior bias (-4.6) on the *box* head and none on the class head (the paper and torchvision put
  it on the class logits); draws head kernels from N(0, 0.05), which on these unnormalised
  features made the first epoch's mean loss 50x its starting value, after which training sat at
  "no objects anywhere" (measured); decodes boxes without the encoder's ``box_variance``; and its
  ``BoxMatcher`` never forces a match, so an object that no anchor overlaps at IoU 0.5 (thin or
  small items) is never a positive.

So the parts are assembled here with those things set right: 64-filter heads with GroupNorm and
N(0, 0.01) kernels (torchvision's), the prior on the class head, one ``box_variance``
(0.1, 0.1, 0.2, 0.2) for encoding and decoding, each object force-matched to its best anchor,
and anchors sized for small inputs (``anchor_size`` 2: 16 to 101 px over P3-P5); the whole
detector costs about 0.09 GMACs beyond the backbone at 128 px. With force matching, keras-hub
0.32's ``BoxMatcher`` indexes one past the objects for anchors no object claims unless a
padding row comes first; :meth:`Detector.targets` always appends one.

Hand-written glue: the pyramid from ``ZooModel.feature_network``; the per-batch targets and loss
weights (the arithmetic of ``RetinaNetObjectDetector.compute_loss``, done in the input pipeline
so the model stays a plain functional Keras model); letterboxing images of any size in and boxes
back out; decoding and NMS with TensorFlow's ``combined_non_max_suppression`` (keras-hub's
``NonMaxSuppression`` layer, a keras-ops port of TF's padded NMS, added twice the network's own
time per batch on this CPU); COCO evaluation through pycocotools.
"""
from __future__ import annotations

import logging
import math

import keras
import numpy as np
import tensorflow as tf

from zoo import images as zimages
from zoo import inference
from zoo import io as zio
from zoo.compat import retinanet_parts
from zoo.errors import DataError, InputShapeError, RecipeError
from zoo.layers import Normalize
from zoo.kinds import register_kind
from zoo.tasks.base import Task, nested_files, nested_record, open_nested
from zoo.tasks.detector import second_stage as stage_two
from zoo.tasks.detector.metrics import coco_metrics, detection_arrays
from zoo.tasks.detector.train import DetectionTraining

log = logging.getLogger(__name__)

HEAD_DEFAULTS = {
    "filters": 64,                  # FPN and head width (keras-hub's detector: 256)
    "convs": 2,                     # 3x3 convolutions before each head's output (keras-hub: 4)
    "group_norm": True,             # GroupNorm(32) after each head convolution (steadier training from scratch)
    "min_level": 3, "max_level": 5,
    "anchor_size": 2.0,             # base anchor side / stride (keras-hub's default 4 suits 512+ px images)
    "num_scales": 3,
    "aspect_ratios": [0.5, 1.0, 2.0],
    "box_variance": [0.1, 0.1, 0.2, 0.2],
    "positive_iou": 0.5, "negative_iou": 0.4,
    "prior_probability": 0.01,
}
FILL = 114.0                        # letterbox padding grey (as zoo.images.letterbox)
SECOND_STAGE_PREFIX = "second_stage_"   # the crop classifier's files in a detector's folder
MAX_LOG_SIZE = math.log(1000.0 / 16)  # clamp on decoded log-size deltas (torchvision's)
EVAL_SCORE_THRESHOLD = 0.05         # COCO evaluation keeps low-scoring boxes (torchvision's default)


# ---- the network ---------------------------------------------------------------------------
def build_network(pixels, normalized, feature_network, levels, num_classes: int, cfg: dict) -> dict:
    """FPN + box and class heads on ``feature_network``'s pyramid; outputs keyed as keras-hub's."""
    _, _, FeaturePyramid, PredictionHead, _ = retinanet_parts()
    feats = feature_network(normalized)
    lo, hi = cfg["min_level"], cfg["max_level"]
    have = [int(k[1]) for k in levels]
    if lo not in have or min(hi, 5) not in have:
        raise RecipeError(f"this backbone's pyramid has levels {sorted(levels)}; the detector needs P{lo}..P{min(hi, 5)}")
    inputs = {f"P{i}": feats[f"P{i}"] for i in range(lo, min(hi, 5) + 1)}
    pyramid = FeaturePyramid(min_level=lo, max_level=hi, use_p5=False, num_filters=cfg["filters"], name="fpn")(inputs)
    anchors = cfg["num_scales"] * len(cfg["aspect_ratios"])
    init = {"kernel_initializer": keras.initializers.RandomNormal(stddev=0.01), "use_group_norm": cfg["group_norm"]}
    box_head = PredictionHead(anchors * 4, cfg["filters"], cfg["convs"], name="box_head", **init)
    cls_head = PredictionHead(anchors * num_classes, cfg["filters"], cfg["convs"], use_prior_probability=True,
                              prior_probability=cfg["prior_probability"], name="classification_head", **init)
    boxes, classes = [], []
    for level in sorted(pyramid, key=lambda k: int(k[1:])):
        boxes.append(keras.layers.Reshape((-1, 4), name=f"box_{level}")(box_head(pyramid[level])))
        classes.append(keras.layers.Reshape((-1, num_classes), name=f"cls_{level}")(cls_head(pyramid[level])))
    return {"bbox_regression": keras.layers.Concatenate(axis=1, name="bbox_regression", dtype="float32")(boxes),
            "cls_logits": keras.layers.Concatenate(axis=1, name="cls_logits", dtype="float32")(classes)}


def postprocess(outputs: dict, anchors, variance, score_threshold: float = 0.3, iou_threshold: float = 0.5,
                max_detections: int = 100, class_agnostic: bool = True, with_probs: bool = False):
    """Raw network outputs -> padded ``(boxes xyxy, scores, labels, count)`` per image (and, with
    ``with_probs`` and ``class_agnostic``, each kept box's class probabilities (B, D, C) last).

    Only the ``4 * max_detections`` (at least 300) most confident anchors go through NMS (as
    torchvision's top-k candidates). Log-size deltas are clamped (torchvision's ``log(1000/16)``)
    so a wild output cannot overflow. ``class_agnostic``: one box per place, labelled with its
    best class (keras-hub's NonMaxSuppression semantics); else NMS per class, where a box may also
    stand for its runner-up classes (COCO's evaluation protocol, as torchvision's RetinaNet: a
    confusable item still counts, ranked lower). Both run TensorFlow's
    ``combined_non_max_suppression``: keras-hub's NMS layer (a keras-ops port of the padded TF
    NMS) added twice the network's time per batch on this CPU, the native op about a tenth.
    """
    logits, deltas = outputs["cls_logits"], outputs["bbox_regression"]
    top_k = min(int(anchors.shape[0]), max(4 * int(max_detections), 300))
    _, idx = tf.math.top_k(tf.reduce_max(logits, -1), top_k)
    cap = tf.constant([np.inf, np.inf, MAX_LOG_SIZE / variance[2], MAX_LOG_SIZE / variance[3]], tf.float32)
    deltas = tf.minimum(tf.gather(deltas, idx, batch_dims=1), cap)
    boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        tf.gather(anchors, idx), deltas, anchor_format="xyxy", box_format="xyxy", encoded_format="center_xywh",
        variance=variance)
    probs = tf.sigmoid(tf.gather(logits, idx, batch_dims=1))
    scores = tf.reduce_max(probs, -1, keepdims=True) if class_agnostic else probs
    b, s, c, n = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_detections, max_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, clip_boxes=False)
    if class_agnostic:  # the kept boxes' best class: find each kept box among the candidates
        same = tf.reduce_all(tf.equal(b[:, :, None, :], boxes[:, None, :, :]), -1)          # (B, D, K)
        kept = tf.reduce_max(tf.where(same[..., None], probs[:, None], -1.0), 2)           # (B, D, C)
        c = tf.argmax(kept, -1)
        if with_probs:
            return b, s, tf.cast(c, tf.int32), n, tf.maximum(kept, 0.0)
    return b, s, tf.cast(c, tf.int32), n


@register_kind("detector")
class Detector(Task):
    """A backbone with RetinaNet heads; ``detect`` returns boxes in each image's own pixels."""

    training = DetectionTraining()

    def __init__(self, backbone, class_names, head_config: dict | None = None):
        super().__init__(backbone, class_names)
        if not self.class_names:
            raise RecipeError("a detector needs at least one class name")
        unknown = set(head_config or {}) - set(HEAD_DEFAULTS)
        if unknown:
            raise RecipeError(f"unknown head settings {sorted(unknown)}; known: {sorted(HEAD_DEFAULTS)}")
        self.head_config = {**HEAD_DEFAULTS, **(head_config or {})}
        self.second_stage, self.second_stage_settings = None, dict(stage_two.DEFAULTS)
        if self.head_config["group_norm"] and self.head_config["filters"] % 32:
            raise RecipeError(f"group_norm needs filters divisible by 32 (32 groups); got {self.head_config['filters']}")
        cfg = self.head_config
        AnchorGenerator, _, _, _, RetinaNetLabelEncoder = retinanet_parts()
        p = self.preprocessing
        pixels = keras.Input((self.input_size, self.input_size, 3), name="pixels")
        normalized = Normalize(p.mean, p.std, p.channel_order, name="normalize")(pixels)
        outputs = build_network(pixels, normalized, self.feature_network, self.pyramid_levels,
                                len(self.class_names), cfg)
        self.detection_model = keras.Model(pixels, outputs, name=f"{self.name}_retinanet")
        self.anchor_generator = AnchorGenerator("xyxy", cfg["min_level"], cfg["max_level"], cfg["num_scales"],
                                                list(cfg["aspect_ratios"]), cfg["anchor_size"])
        self.label_encoder = RetinaNetLabelEncoder(
            self.anchor_generator, "xyxy", encoding_format="center_xywh", positive_threshold=cfg["positive_iou"],
            negative_threshold=cfg["negative_iou"], box_variance=list(cfg["box_variance"]),
            box_matcher_force_match_for_each_col=True)
        shape = (1, self.input_size, self.input_size, 3)
        self.anchors = tf.concat(list(self.anchor_generator(tf.zeros(shape)).values()), axis=0)

    @property
    def keras_model(self):
        return self.detection_model

    def __repr__(self):
        two = f" + crop classifier {self.second_stage.input_size}px" if self.second_stage is not None else ""
        return f"<Detector RetinaNet on {self.entry.full_name} {self.input_size}px{two}, {self.num_classes} classes>"

    def attach_second_stage(self, classifier, weight: float = stage_two.DEFAULTS["weight"],
                            context: float = stage_two.DEFAULTS["context"],
                            top_k: int = stage_two.DEFAULTS["top_k"],
                            flip: bool = stage_two.DEFAULTS["flip"]) -> "Detector":
        """Re-judge each box's class with ``classifier``, a Classifier of box crops with this
        detector's classes (:func:`zoo.tasks.detector.second_stage.train`; see that module for how
        the two stages' probabilities mix). ``None`` detaches it. Returns the detector."""
        if classifier is not None:
            stage_two.check_classifier(classifier, self.class_names)
        self.second_stage_settings = stage_two.check_settings(weight, context, top_k, flip)
        self.second_stage = classifier
        self._fns.clear()
        return self

    def _outputs_fn(self, score_threshold: float, iou_threshold: float, max_detections: int,
                    class_agnostic: bool, use_second_stage: bool):
        """Letterboxed pixels -> padded (boxes, scores, labels, count): the network, decoding and
        NMS, then the second stage when one is attached and ``use_second_stage``."""
        model, anchors, variance = self.detection_model, self.anchors, list(self.head_config["box_variance"])
        stage = self.second_stage if use_second_stage else None

        def call(x):
            if stage is None:
                return postprocess(model(x, training=False), anchors, variance, score_threshold, iou_threshold,
                                   max_detections, class_agnostic)
            b, s, _, n, probs = postprocess(model(x, training=False), anchors, variance, score_threshold,
                                            iou_threshold, max_detections, True, with_probs=True)
            return stage_two.rescore(x, b, s, probs, n, stage.keras_model, stage.input_size,
                                        self.second_stage_settings, max_detections, score_threshold, class_agnostic)
        return call

    # ---- training pieces --------------------------------------------------------------------
    def losses(self) -> dict:
        """The two losses, summed and weighted per anchor by :meth:`targets` (keras-hub's choice)."""
        return {"bbox_regression": keras.losses.Huber(reduction="sum"),
                "cls_logits": keras.losses.BinaryFocalCrossentropy(from_logits=True, reduction="sum")}

    def targets(self, images, boxes, labels):
        """Training targets and per-anchor weights for a batch of letterboxed images.

        ``boxes`` (B, M, 4) xyxy in input pixels, ``labels`` (B, M); rows with label -1 are
        padding. Returns ``(y, sample_weight)`` dicts for the outputs: anchors matched at IoU
        >= ``positive_iou`` (or as an object's best anchor) learn its class and box, those
        between the two thresholds are ignored, the rest learn background; both losses are
        divided by the number of matched anchors in the batch (as RetinaNetObjectDetector).
        """
        labels = tf.cast(labels, tf.float32)
        boxes = tf.where(labels[..., None] < 0, -1.0, tf.cast(boxes, tf.float32))
        # one padding row always: with force matching, keras-hub 0.32's BoxMatcher sends anchors
        # that no object claims to its own extra column, one past the end, unless a padding row
        # (IoU 0, label -1: background) comes first
        b = tf.shape(labels)[0]
        labels = tf.concat([labels, -tf.ones((b, 1))], axis=1)
        boxes = tf.concat([boxes, -tf.ones((b, 1, 4))], axis=1)
        box_t, cls_t = self.label_encoder(images, boxes, labels)
        positive = tf.cast(cls_t > -1.0, tf.float32)
        normalizer = tf.maximum(tf.reduce_sum(positive), 1.0)
        y = {"bbox_regression": box_t, "cls_logits": tf.one_hot(tf.cast(cls_t, tf.int32), self.num_classes)}
        weights = {"bbox_regression": positive / normalizer,
                   "cls_logits": tf.cast(tf.not_equal(cls_t, -2.0), tf.float32) / normalizer}
        return y, weights

    # ---- inference --------------------------------------------------------------------------
    def _decode_fn(self, score_threshold: float, iou_threshold: float, max_detections: int, batch_size: int,
                   class_agnostic: bool = True, use_second_stage: bool = True):
        """A traced call: a batch of ``batch_size`` letterboxed images -> padded (boxes, scores,
        labels, count) after NMS (traced once per batch size: the last batch is padded)."""
        key = ("detect", float(score_threshold), float(iou_threshold), int(max_detections), int(batch_size),
               bool(class_agnostic), bool(use_second_stage))
        if key not in self._fns:
            call = self._outputs_fn(score_threshold, iou_threshold, max_detections, class_agnostic, use_second_stage)
            spec = tf.TensorSpec((batch_size, self.input_size, self.input_size, 3), tf.float32)
            self._fns[key] = tf.function(call, input_signature=[spec])
        return self._fns[key]

    def export_signature(self, input_dtype: str = "uint8", score_threshold: float = 0.3, iou_threshold: float = 0.5,
                         max_detections: int = 100):
        """Serving graph on a letterboxed square image at ``input_size`` (aspect kept, centred,
        padded with 114): the network, box decoding and NMS, with outputs ``boxes`` (N, D, 4) xyxy
        in the input's pixels, ``scores`` (N, D), ``labels`` (N, D) int32 and ``count`` (N,),
        padded to D = ``max_detections``. TFLite has no combined NMS: SavedModel and ONNX only."""
        import keras

        from zoo.export import Signature, model_metadata, pixel_input

        cfg = (float(score_threshold), float(iou_threshold), int(max_detections))
        call = self._outputs_fn(*cfg, class_agnostic=True, use_second_stage=True)

        class Decode(keras.layers.Layer):
            def call(self, pixels):
                b, s, c, n = call(pixels)
                return {"boxes": b, "scores": s, "labels": c, "count": n}

        raw, x = pixel_input(self.input_size, input_dtype)
        meta = {**model_metadata(self, "detector"), "labels": list(self.class_names), "box_format": "xyxy",
                "score_threshold": cfg[0], "iou_threshold": cfg[1], "max_detections": cfg[2],
                "second_stage": None if self.second_stage is None else {
                    **self.second_stage_settings, "input_size": self.second_stage.input_size},
                "input_note": "letterbox each image: scale by min(S/h, S/w), centre it on an SxS canvas "
                              "of value 114; map boxes back with (box - pad) / scale"}
        return Signature(keras.Model(raw, Decode(name="decode")(x), name="detector_export"), meta)

    def detect(self, images, score_threshold: float = 0.3, iou_threshold: float = 0.5, max_detections: int = 100,
               batch_size: int = 16, return_sources: bool = False, value_range: str = "auto",
               progress: bool = False, class_agnostic: bool = True, second_stage: bool = True):
        """Per image ``{"boxes": (n, 4) float32 xyxy in that image's own pixels, "scores": (n,),
        "labels": (n,) int64, "names": [str]}``, best first.

        ``images``: anything :func:`zoo.images.batches` takes, any sizes; each is letterboxed to
        ``input_size`` (aspect kept, grey padding) and its boxes mapped back. Unreadable files
        are skipped with a warning (``return_sources=True`` says which row is which input).
        ``class_agnostic=False``: NMS per class, so a box may come back once per likely class
        (what COCO evaluation expects; see :func:`postprocess`). ``second_stage=False``: the
        detector alone, even when a crop classifier is attached (:meth:`attach_second_stage`).
        """
        inference.check_batch_size(batch_size)
        for name, v in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
            if not 0.0 <= float(v) <= 1.0:
                raise InputShapeError(f"{name} must be in [0, 1]; got {v!r}")
        fn = self._decode_fn(score_threshold, iou_threshold, max_detections, batch_size, class_agnostic, second_stage)

        def boxes_back(out, batch):  # each image's boxes in its own pixels
            boxes, scores, labels, count = out
            results = []
            for i, c in enumerate(batch.items):
                k = int(count[i])
                b = zimages.unletterbox_boxes(boxes[i, :k], c.scale, c.pad, c.shape)
                keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])  # boxes wholly in the padding vanish
                lab = labels[i, :k][keep].astype(np.int64)
                results.append({"boxes": b[keep].astype(np.float32), "scores": scores[i, :k][keep].astype(np.float32),
                                "labels": lab, "names": [self.class_names[j] for j in lab]})
            return results

        stream = inference.letterboxed(images, self.input_size, batch_size, value_range, FILL)
        return self._predict(images, what="detect", batch_size=batch_size, progress=progress,
                             return_sources=return_sources, fn=fn, stream=stream, postprocess=boxes_back,
                             pad_to=batch_size)

    def evaluate(self, data, batch_size: int = 16, score_threshold: float = EVAL_SCORE_THRESHOLD,
                 iou_threshold: float = 0.5, progress: bool = False, class_agnostic: bool = False,
                 second_stage: bool = True) -> dict:
        """COCO box metrics (pycocotools) on labelled data: ``{"mAP", "mAP50", "mAP75", "mAP_small",
        "mAP_medium", "mAP_large", "AR100", "per_class": {name: AP}, "n_images", "n_boxes"}``.

        ``data``: an object with ``.images``, ``.boxes`` (per image (k, 4) xyxy pixels) and
        ``.labels`` (demo scenes, ``zoo.tasks.detector`` readers) or an ``(images, boxes, labels)``
        tuple. Detections as COCO's protocol has them: scores down to 0.05, NMS per class, at most
        100 per image (with a second stage: each box once per likely class, ``top_k`` at most).
        """
        imgs, boxes, labels = detection_arrays(data, self.class_names)
        r = self.detect(imgs, score_threshold=score_threshold, iou_threshold=iou_threshold, batch_size=batch_size,
                        return_sources=True, progress=progress, class_agnostic=class_agnostic,
                        second_stage=second_stage)
        if r.skipped:
            raise DataError(f"{len(r.skipped)} evaluation images could not be read (first: {r.skipped[0][1]})")
        return coco_metrics(boxes, labels, r.outputs, self.class_names)

    def predict_described(self, images, batch_size: int = 16):
        r = self.detect(images, batch_size=batch_size, return_sources=True)
        return r._replace(outputs=[{"detections": [{"name": n, "score": round(float(s), 4),
                                                     "box": [round(float(v), 1) for v in b]}
                                                    for b, s, n in zip(d["boxes"], d["scores"], d["names"])]}
                                   for d in r.outputs])

    # ---- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"head": {"type": "retinanet", **self.head_config}}
        if self.second_stage is not None:
            config["second_stage"] = {**self.second_stage_settings, "classifier": nested_record(self.second_stage)}
        return config

    def extra_files(self) -> dict:
        return nested_files(self.second_stage, SECOND_STAGE_PREFIX) if self.second_stage is not None else {}

    @classmethod
    def from_config(cls, backbone, config, arrays, class_names, path=None, **_):
        head = dict(config.get("head") or {})
        if head.pop("type", "retinanet") != "retinanet":
            raise zio.SavedModelError("unknown detection head: upgrade zoo")
        det = cls(backbone, class_names, {k: v for k, v in head.items() if k in HEAD_DEFAULTS})
        stage = config.get("second_stage")
        if stage:
            zio.require(stage, path, classifier=dict)
            det.attach_second_stage(open_nested(path, stage["classifier"], SECOND_STAGE_PREFIX),
                                    **{"flip": False,   # folders from before the setting: as they were saved
                                       **{k: stage[k] for k in stage_two.DEFAULTS if k in stage}})
        return det


train = Detector.train  # detector.train(train, val, backbone=..., **settings): see zoo.training.train

from zoo.tasks.detector import faces  # noqa: E402,F401  (registers the named model "mtcnn_faces")
