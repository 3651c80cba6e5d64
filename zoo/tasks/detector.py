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

import contextlib
import io
import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from zoo import images as zimages
from zoo import io as zio
from zoo.errors import DataError, ImageError, InputShapeError, MissingDependencyError, RecipeError
from zoo.compat import retinanet_parts
from zoo.layers import Normalize
from zoo.model import Embedded, Progress, ZooModel, check_batch_size, entry_of, open_folder

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
                max_detections: int = 100, class_agnostic: bool = True):
    """Raw network outputs -> padded ``(boxes xyxy, scores, labels, count)`` per image.

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
        c = tf.argmax(tf.reduce_max(tf.where(same[..., None], probs[:, None], -1.0), 2), -1)
    return b, s, tf.cast(c, tf.int32), n


class Detector(ZooModel):
    """A backbone with RetinaNet heads; ``detect`` returns boxes in each image's own pixels."""

    kind = "detector"

    def __init__(self, backbone: ZooModel, class_names, head_config: dict | None = None):
        self.__dict__.update({k: v for k, v in backbone.__dict__.items() if k != "_fns"})
        self._fns = {}
        self.class_names = [str(c) for c in class_names]
        if not self.class_names:
            raise RecipeError("a detector needs at least one class name")
        unknown = set(head_config or {}) - set(HEAD_DEFAULTS)
        if unknown:
            raise RecipeError(f"unknown head settings {sorted(unknown)}; known: {sorted(HEAD_DEFAULTS)}")
        self.head_config = {**HEAD_DEFAULTS, **(head_config or {})}
        if self.head_config["group_norm"] and self.head_config["filters"] % 32:
            raise RecipeError(f"group_norm needs filters divisible by 32 (32 groups); got {self.head_config['filters']}")
        self.history: dict = {}
        self.training_config: dict = {}
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
        self.imagenet_model = None

    @property
    def keras_model(self):
        return self.detection_model

    @property
    def labels(self):
        return self.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self):
        return f"<Detector RetinaNet on {self.entry.full_name} {self.input_size}px, {self.num_classes} classes>"

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
                   class_agnostic: bool = True):
        """A traced call: a batch of ``batch_size`` letterboxed images -> padded (boxes, scores,
        labels, count) after NMS (traced once per batch size: the last batch is padded)."""
        key = ("detect", float(score_threshold), float(iou_threshold), int(max_detections), int(batch_size),
               bool(class_agnostic))
        if key not in self._fns:
            model, anchors, variance = self.detection_model, self.anchors, list(self.head_config["box_variance"])

            def call(x):
                return postprocess(model(x, training=False), anchors, variance, score_threshold, iou_threshold,
                                   max_detections, class_agnostic)
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

        anchors, variance, model = self.anchors, list(self.head_config["box_variance"]), self.detection_model
        cfg = (float(score_threshold), float(iou_threshold), int(max_detections))

        class Decode(keras.layers.Layer):
            def call(self, outputs):
                b, s, c, n = postprocess(outputs, anchors, variance, *cfg)
                return {"boxes": b, "scores": s, "labels": c, "count": n}

        raw, x = pixel_input(self.input_size, input_dtype)
        meta = {**model_metadata(self, "detector"), "labels": list(self.class_names), "box_format": "xyxy",
                "score_threshold": cfg[0], "iou_threshold": cfg[1], "max_detections": cfg[2],
                "input_note": "letterbox each image: scale by min(S/h, S/w), centre it on an SxS canvas "
                              "of value 114; map boxes back with (box - pad) / scale"}
        return Signature(keras.Model(raw, Decode(name="decode")(model(x)), name="detector_export"), meta)

    def detect(self, images, score_threshold: float = 0.3, iou_threshold: float = 0.5, max_detections: int = 100,
               batch_size: int = 16, return_sources: bool = False, value_range: str = "auto",
               progress: bool = False, class_agnostic: bool = True):
        """Per image ``{"boxes": (n, 4) float32 xyxy in that image's own pixels, "scores": (n,),
        "labels": (n,) int64, "names": [str]}``, best first.

        ``images``: anything :func:`zoo.images.batches` takes, any sizes; each is letterboxed to
        ``input_size`` (aspect kept, grey padding) and its boxes mapped back. Unreadable files
        are skipped with a warning (``return_sources=True`` says which row is which input).
        ``class_agnostic=False``: NMS per class, so a box may come back once per likely class
        (what COCO evaluation expects; see :func:`postprocess`).
        """
        check_batch_size(batch_size)
        for name, v in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
            if not 0.0 <= float(v) <= 1.0:
                raise InputShapeError(f"{name} must be in [0, 1]; got {v!r}")
        fn = self._decode_fn(score_threshold, iou_threshold, max_detections, batch_size, class_agnostic)
        stream = letterboxed(images, self.input_size, value_range)
        bar = Progress(stream.total, "detect", progress)
        results, sources = [], []
        for chunk in stream.chunks(batch_size):
            x = np.stack([c.canvas for c in chunk])
            n = len(x)
            if n < batch_size:  # one traced batch size: pad the last batch
                x = np.concatenate([x, np.full((batch_size - n, *x.shape[1:]), FILL, np.float32)])
            boxes, scores, labels, count = (t.numpy() for t in fn(tf.constant(x)))
            for i, c in enumerate(chunk):
                k = int(count[i])
                b = zimages.unletterbox_boxes(boxes[i, :k], c.scale, c.pad, c.shape)
                keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])  # boxes wholly in the padding vanish
                lab = labels[i, :k][keep].astype(np.int64)
                results.append({"boxes": b[keep].astype(np.float32), "scores": scores[i, :k][keep].astype(np.float32),
                                "labels": lab, "names": [self.class_names[j] for j in lab]})
                sources.append(c.source)
            bar.update(n)
        bar.close()
        if not results:
            first = f": {stream.skipped[0][0]} ({stream.skipped[0][1]})" if stream.skipped else ""
            raise ImageError(f"none of the images could be read{first}")
        return Embedded(results, sources, list(stream.skipped)) if return_sources else results

    def evaluate(self, data, batch_size: int = 16, score_threshold: float = EVAL_SCORE_THRESHOLD,
                 iou_threshold: float = 0.5, progress: bool = False, class_agnostic: bool = False) -> dict:
        """COCO box metrics (pycocotools) on labelled data: ``{"mAP", "mAP50", "mAP75", "mAP_small",
        "mAP_medium", "mAP_large", "AR100", "per_class": {name: AP}, "n_images", "n_boxes"}``.

        ``data``: an object with ``.images``, ``.boxes`` (per image (k, 4) xyxy pixels) and
        ``.labels`` (demo scenes, ``recipes.detection`` readers) or an ``(images, boxes, labels)``
        tuple. Detections as COCO's protocol has them: scores down to 0.05, NMS per class, at most
        100 per image.
        """
        imgs, boxes, labels = detection_arrays(data, self.class_names)
        r = self.detect(imgs, score_threshold=score_threshold, iou_threshold=iou_threshold, batch_size=batch_size,
                        return_sources=True, progress=progress, class_agnostic=class_agnostic)
        if r.skipped:
            raise DataError(f"{len(r.skipped)} evaluation images could not be read (first: {r.skipped[0][1]})")
        return coco_metrics(boxes, labels, r.outputs, self.class_names)

    # ---- persistence ------------------------------------------------------------------------
    def _config(self) -> dict:
        return {"labels": self.class_names, "head": {"type": "retinanet", **self.head_config},
                "history": {k: [float(v) for v in vs] for k, vs in self.history.items()},
                "training": {k: v for k, v in self.training_config.items()
                             if isinstance(v, (str, int, float, bool, type(None), list, dict))}}

    @classmethod
    def _from_folder(cls, path, cfg) -> "Detector":
        zio.require(cfg, path, labels=list, head=dict)
        head = dict(cfg["head"])
        if head.pop("type", "retinanet") != "retinanet":
            raise zio.SavedModelError(f"{path}: unknown detection head: upgrade zoo")
        head = {k: v for k, v in head.items() if k in HEAD_DEFAULTS}
        det = cls(ZooModel(entry_of(cfg, path), cfg["input_size"], weights=None), cfg["labels"], head)
        det.history = cfg.get("history") or {}
        det.training_config = cfg.get("training") or {}
        return det


# ---- images of any size in, boxes out ------------------------------------------------------
class _Item:
    __slots__ = ("source", "canvas", "scale", "pad", "shape")

    def __init__(self, source, canvas, scale, pad, shape):
        self.source, self.canvas, self.scale, self.pad, self.shape = source, canvas, scale, pad, shape


class letterboxed:  # noqa: N801  (used like a function)
    """Every input image as a letterboxed float32 canvas with its scale, padding and own shape.

    Same inputs as :func:`zoo.images.batches` (and the same pixel conversion); files are read
    one at a time as batches are drawn, unreadable ones skipped with a warning.
    """

    def __init__(self, images, size: int, value_range: str = "auto"):
        self.size, self.value_range, self.skipped = int(size), value_range, []
        self.images = _materialize(images)
        self.total = len(self.images) if hasattr(self.images, "__len__") else None

    def _items(self):
        x, size = self.images, self.size
        if isinstance(x, np.ndarray):  # one decision on the pixel scale, one resize per chunk
            a = zimages.as_image_array(x)
            scale = _scale_of([a], self.value_range)
            h, w = a.shape[1:3]
            for start in range(0, len(a), 64):
                px = zimages.to_pixels(a[start:start + 64], scale)
                canvases, s, pad = _letterbox_batch(px, size)
                for i, c in enumerate(canvases):
                    yield _Item(start + i, c, s, pad, (h, w))
            return
        if isinstance(x, (str, Path)) or (isinstance(x, (list, tuple)) and x and
                                          all(isinstance(v, (str, Path)) for v in x)):
            files = _files(x)
            for f in files:
                try:
                    img = zimages.read_image(f)
                except ImageError as exc:
                    log.warning("skipping %s", exc)
                    self.skipped.append((str(f), str(exc)))
                    continue
                yield _Item(str(f), *zimages.letterbox(img, size, FILL), img.shape[:2])
            return
        if isinstance(x, Image.Image):
            x = [x]
        if not isinstance(x, (list, tuple)):
            raise InputShapeError(f"cannot read images from {type(x).__name__}: pass a numpy array, file paths, "
                                  "a directory, PIL images or a tf.data.Dataset")
        items = [zimages._as_image(zimages.pil_to_array(v) if isinstance(v, Image.Image) else np.asarray(v)) for v in x]
        if not items:
            raise InputShapeError("no images given (empty list)")
        scale = _scale_of(items, self.value_range)
        for i, a in enumerate(items):
            px = zimages.to_pixels(a, scale).numpy()
            yield _Item(i, *zimages.letterbox(px, size, FILL), a.shape[:2])

    def chunks(self, n: int):
        chunk = []
        for item in self._items():
            chunk.append(item)
            if len(chunk) == n:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _files(x) -> list:
    if isinstance(x, (str, Path)):
        p = Path(x)
        if p.is_dir():
            files = zimages.list_image_files(p)
            if not files:
                raise ImageError(f"no image files ({', '.join(sorted(zimages.IMAGE_EXTENSIONS))}) under {p}")
            return files
        if not p.exists():
            raise ImageError(f"{p}: no such file or directory")
        return [p]
    return [Path(v) for v in x]


def _scale_of(arrays, value_range: str) -> float:
    """The pixel scale of a whole call (zoo.images' rule: floats <= 1 everywhere are [0, 1])."""
    dtypes = {np.dtype(a.dtype) for a in arrays}
    floats = [a for a in arrays if np.issubdtype(a.dtype, np.floating)]
    if floats and not all(np.isfinite(a).all() for a in floats):
        raise InputShapeError("images contain NaN or infinite values")
    top = max((float(a.max()) for a in floats if a.size), default=None)
    dtype = floats[0].dtype if floats else next(iter(dtypes))
    return zimages.pixel_scale(dtype, top, value_range)


def _letterbox_batch(px, size: int):
    """Same-sized images (B, H, W, 3) -> canvases, scale, pad (one resize for the batch)."""
    h, w = int(px.shape[1]), int(px.shape[2])
    if (h, w) == (size, size):
        return px.numpy(), 1.0, (0, 0)
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    pad_y, pad_x = (size - nh) // 2, (size - nw) // 2
    resized = tf.image.resize(px, (nh, nw)).numpy()
    canvas = np.full((len(resized), size, size, 3), FILL, np.float32)
    canvas[:, pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return canvas, scale, (pad_x, pad_y)


def _materialize(images):
    """A tf.data.Dataset (images or (image, ...) tuples, batched or not) as a list of arrays."""
    if isinstance(images, tf.data.Dataset):
        spec = images.element_spec
        ds = images.map(lambda x, *_: x) if isinstance(spec, tuple) else images
        out = []
        for x in ds:
            x = x.numpy()
            out.extend(list(x) if x.ndim == 4 else [x])
        return out
    return images


# ---- COCO evaluation -----------------------------------------------------------------------
def detection_arrays(data, class_names=None):
    """``(images, boxes, labels)`` from a labelled detection set or tuple, checked."""
    if isinstance(data, tuple) and len(data) == 3:
        imgs, boxes, labels = data
    elif all(hasattr(data, a) for a in ("images", "boxes", "labels")):
        imgs, boxes, labels = data.images, data.boxes, data.labels
        theirs = getattr(data, "class_names", None)
        if class_names is not None and theirs and list(theirs) != list(class_names):
            raise DataError(f"the data's classes {list(theirs)[:4]}... differ from the model's "
                            f"{list(class_names)[:4]}...")
    else:
        raise DataError(f"cannot evaluate on {type(data).__name__}: pass an object with .images, .boxes and "
                        ".labels (recipes.detection.scenes / read_coco / read_voc / read_yolo) or an "
                        "(images, boxes, labels) tuple")
    boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
    labels = [np.asarray(lab, np.int64).reshape(-1) for lab in labels]
    if not (len(imgs) == len(boxes) == len(labels)):
        raise DataError(f"{len(imgs)} images, {len(boxes)} box lists and {len(labels)} label lists: one of each "
                        "per image")
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        if len(b) != len(lab):
            raise DataError(f"image {i}: {len(b)} boxes but {len(lab)} labels")
        if class_names is not None and len(lab) and (lab.min() < 0 or lab.max() >= len(class_names)):
            raise DataError(f"image {i}: class id {int(lab.max() if lab.max() >= len(class_names) else lab.min())} "
                            f"is outside the model's {len(class_names)} classes")
    return imgs, boxes, labels


def coco_metrics(gt_boxes, gt_labels, detections, class_names, gt_masks=None) -> dict:
    """COCO mAP@[.5:.95], mAP50, mAP75, by size, AR@100 and per-class AP, computed by pycocotools.

    ``detections``: per image a dict with "boxes" (xyxy), "scores", "labels" (as ``detect``).
    A class without ground truth gets AP None (COCO leaves it out of the mean). With ``gt_masks``
    (per image (k, H, W) bool, one per box) the overlaps are of masks (COCO's "segm"), and each
    detection dict needs "masks" (n, H, W) as well.
    """
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingDependencyError("COCO evaluation needs pycocotools: pip install pycocotools") from exc
    if len(detections) != len(gt_boxes):
        raise DataError(f"{len(detections)} detection results for {len(gt_boxes)} images")
    segm = gt_masks is not None
    rle = lambda m: mask_utils.encode(np.asfortranarray(np.asarray(m, np.uint8)))  # noqa: E731
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    anns, dets = [], []
    for i, (b, lab) in enumerate(zip(gt_boxes, gt_labels)):
        for j, (box, c) in enumerate(zip(np.asarray(b, np.float64).reshape(-1, 4), np.asarray(lab).reshape(-1))):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [box[0], box[1], w, h], "area": w * h})
            if segm:
                anns[-1]["segmentation"] = rle(gt_masks[i][j])
                anns[-1]["area"] = float(mask_utils.area(anns[-1]["segmentation"]))
        d = detections[i]
        for j, (box, s, c) in enumerate(zip(np.asarray(d["boxes"], np.float64).reshape(-1, 4), d["scores"], d["labels"])):
            dets.append({"image_id": i, "category_id": int(c) + 1, "score": float(s)})
            if segm:  # loadRes takes "bbox" before "segmentation": give masks only
                dets[-1]["segmentation"] = rle(d["masks"][j])
            else:
                dets[-1]["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
    n_boxes = len(anns)
    out = {"n_images": len(gt_boxes), "n_boxes": n_boxes, "n_detections": len(dets)}
    present = {a["category_id"] - 1 for a in anns}
    if not n_boxes or not dets:
        zero = {k: 0.0 for k in ("mAP", "mAP50", "mAP75", "AR100")} | dict.fromkeys(("mAP_small", "mAP_medium", "mAP_large"))
        return {**zero, "per_class": {n: (0.0 if k in present else None) for k, n in enumerate(class_names)}, **out}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        images = [{"id": i} for i in range(len(gt_boxes))]
        if segm:  # COCO reads each image's size before it reads a mask
            for im, m in zip(images, gt_masks):
                im["height"], im["width"] = (int(v) for v in np.shape(m)[-2:])
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "segm" if segm else "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    per_class = {}
    for k, name in enumerate(class_names):
        p = ev.eval["precision"][:, :, k, 0, -1]  # IoU thresholds x recall points, all areas, 100 dets
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() and k in present else None
    main = {n: max(float(v), 0.0) for n, v in zip(("mAP", "mAP50", "mAP75"), s[:3])}
    by_size = {n: (float(v) if v > -1 else None) for n, v in zip(("mAP_small", "mAP_medium", "mAP_large"), s[3:6])}
    return {**main, **by_size, "AR100": max(float(s[8]), 0.0), "per_class": per_class, **out}


# ---- a pretrained face detector ------------------------------------------------------------
class FaceDetector:
    """MTCNN faces (package ``mtcnn``, weights in its wheel) behind the same ``detect`` interface.

    ``zoo.tasks.detector.load_named("mtcnn_faces")``; ``detect`` returns one class, "face".
    MTCNN runs on each image at its own size (its image pyramid starts at ``min_face_size``).
    """

    kind = "pretrained_detector"
    name = "mtcnn_faces"
    class_names = ["face"]

    def __init__(self, min_face_size: int = 20):
        from zoo.extras import require

        MTCNN = require("mtcnn", "the face detector").MTCNN
        self.min_face_size = int(min_face_size)
        self._mtcnn = MTCNN(stages="face_and_landmarks_detection")

    def __repr__(self):
        return f"<FaceDetector MTCNN, faces from {self.min_face_size} px>"

    def detect(self, images, score_threshold: float = 0.9, iou_threshold: float = 0.5, max_detections: int = 100,
               batch_size: int = 1, return_sources: bool = False, value_range: str = "auto", progress: bool = False):
        """Per image ``{"boxes", "scores", "labels", "names", "keypoints"}`` (see ``Detector.detect``)."""
        stream = _originals(images, value_range)
        results, sources = [], []
        for source, img in stream:
            u8 = np.clip(img, 0, 255).astype(np.uint8)
            faces = self._mtcnn.detect_faces(u8, box_format="xyxy", min_face_size=self.min_face_size,
                                             threshold_onet=max(float(score_threshold), 0.0), nms_onet=iou_threshold)
            faces = sorted(faces, key=lambda f: -float(f["confidence"]))[:max_detections]
            faces = [f for f in faces if float(f["confidence"]) >= score_threshold]
            h, w = u8.shape[:2]
            b = np.array([f["box"] for f in faces], np.float32).reshape(-1, 4)
            b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
            results.append({"boxes": b, "scores": np.array([f["confidence"] for f in faces], np.float32),
                            "labels": np.zeros(len(faces), np.int64), "names": ["face"] * len(faces),
                            "keypoints": [{k: tuple(int(v) for v in p) for k, p in f["keypoints"].items()}
                                          for f in faces]})
            sources.append(source)
        if not results:
            raise ImageError(f"none of the images could be read{': ' + stream.skipped[0][1] if stream.skipped else ''}")
        return Embedded(results, sources, list(stream.skipped)) if return_sources else results

    def evaluate(self, data, score_threshold: float = 0.5, **_) -> dict:
        imgs, boxes, labels = detection_arrays(data, self.class_names)
        r = self.detect(imgs, score_threshold=score_threshold, return_sources=True)
        return coco_metrics(boxes, labels, r.outputs, self.class_names)


class _originals(letterboxed):  # noqa: N801
    """Each input image at its own size (float32 RGB [0, 255]) with its source."""

    def __init__(self, images, value_range="auto"):
        super().__init__(images, 1, value_range)

    def __iter__(self):
        x = self.images
        if isinstance(x, np.ndarray):
            a = zimages.as_image_array(x)
            scale = _scale_of([a], self.value_range)
            for i in range(len(a)):
                yield i, zimages.to_pixels(a[i], scale).numpy()
            return
        if isinstance(x, (str, Path)) or (isinstance(x, (list, tuple)) and x and
                                          all(isinstance(v, (str, Path)) for v in x)):
            for f in _files(x):
                try:
                    yield str(f), zimages.read_image(f)
                except ImageError as exc:
                    log.warning("skipping %s", exc)
                    self.skipped.append((str(f), str(exc)))
            return
        if isinstance(x, Image.Image):
            x = [x]
        items = [zimages._as_image(zimages.pil_to_array(v) if isinstance(v, Image.Image) else np.asarray(v)) for v in x]
        if not items:
            raise InputShapeError("no images given (empty list)")
        scale = _scale_of(items, self.value_range)
        for i, a in enumerate(items):
            yield i, zimages.to_pixels(a, scale).numpy()


NAMED = {"mtcnn_faces": FaceDetector}


def load_named(name: str, **kwargs):
    """A pretrained detector by name (``"mtcnn_faces"``)."""
    if name not in NAMED:
        import difflib

        close = difflib.get_close_matches(name, list(NAMED), n=3)
        raise RecipeError(f"no pretrained detector {name!r}" + (f"; did you mean {close}?" if close else "") +
                          f" (known: {sorted(NAMED)})")
    return NAMED[name](**kwargs)


zio.register_kind("detector", open_folder(Detector))
