"""``Segmenter``: per-pixel classes on a zoo backbone's P2..P5 pyramid.

Two heads:

- ``"unet"``: a U-Net decoder (written here; keras-hub 0.32 has none): from P5 down to P2,
  each step upsamples (bilinear resize + 3x3 conv, or a stride-2 transposed convolution with
  ``upsample="transpose"``), concatenates the projected skip and convolves; two light stages
  on the image itself (stride 2, then full resolution) restore fine boundaries that stride-4
  features cannot draw.
- ``"deeplabv3plus"``: keras-hub's ``DeepLabV3Backbone`` (its ASPP ``SpatialPyramidPooling``,
  low-level projection and fusion) on the zoo backbone, which it accepts as an image encoder
  exposing ``pyramid_outputs``; ASPP on P4 by default (on small inputs P5 is 4x4, where rates
  6/12/18 only see padding), low-level features from P2. A 1x1 class convolution follows.

The network maps raw RGB [0, 255] at ``input_size`` to softmax probabilities; images of any
size are resized to it (plain resize, as in training) and the output goes back to each
image's own size by bilinear resampling of the probabilities (argmax after).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import images as zimages
from zoo import io as zio
from zoo.errors import DataError, RecipeError
from zoo.layers import Normalize
from zoo.kinds import register_kind
from zoo.tasks.base import Task
from zoo.tasks.segmenter.data import IGNORE
from zoo.tasks.segmenter.train import SegmentationTraining
from zoo.tasks.segmenter.tta import averaged as tta_averaged, networks as tta_networks, plan as tta_plan

log = logging.getLogger(__name__)
HEADS = ("unet", "deeplabv3plus")
UNET_DEFAULTS = {"filters": [128, 64, 48, 32], "fine_filters": [16], "stem": "pixels", "upsample": "transpose",
                 "dropout": 0.1}
DEEPLAB_DEFAULTS = {"aspp_level": "P4", "low_level": "P2", "dilation_rates": [2, 4, 6],
                    "projection_filters": 48}
BN_MOMENTUM = 0.9  # head BatchNorm: Keras' 0.99 leaves the moving statistics far from the batch ones
#   after the few hundred steps of a short run, so validation (inference mode) lagged training
BILINEAR_LIMIT = 40_000_000  # above this many output values, argmax first and resize by nearest


def _conv(x, filters, kernel, name, stride=1):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _up(x, hw, filters, how, name):
    """Upsample ``x`` to ``hw`` = (h, w) and set ``filters`` channels."""
    if how == "transpose":
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, use_bias=False, name=f"{name}_tconv")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_tbn")(x)
        x = keras.layers.ReLU(name=f"{name}_trelu")(x)
        if tuple(x.shape[1:3]) != tuple(hw):
            x = keras.layers.Resizing(*hw, interpolation="bilinear", name=f"{name}_fit")(x)
        return x
    if how != "bilinear":
        raise RecipeError(f"upsample must be 'bilinear' or 'transpose', not {how!r}")
    x = keras.layers.Resizing(*hw, interpolation="bilinear", name=f"{name}_resize")(x)
    return _conv(x, filters, 1, f"{name}_up")  # the 3x3 fuse conv that follows mixes space


def _stem(normalized, filters, stride, how, name):
    """Image features at ``stride``: a conv, or the pixels themselves (space-to-depth)."""
    if how == "conv":
        return _conv(normalized, filters, 3, f"{name}_stem", stride=stride)
    if stride == 1:
        return normalized
    h, w, c = normalized.shape[1:]
    if h % stride or w % stride:
        return keras.layers.AveragePooling2D(stride, padding="same", name=f"{name}_pool")(normalized)
    x = keras.layers.Reshape((h // stride, stride, w // stride, stride, c), name=f"{name}_split")(normalized)
    x = keras.layers.Permute((1, 3, 2, 4, 5), name=f"{name}_permute")(x)
    return keras.layers.Reshape((h // stride, w // stride, stride * stride * c), name=f"{name}_s2d")(x)


def unet_head(pixels, normalized, feats: dict, num_classes: int, cfg: dict):
    """The U-Net decoder on pyramid ``feats`` (deepest first); returns logits at full size."""
    levels = sorted(feats, reverse=True)  # P5, P4, P3, P2
    filters = list(cfg["filters"]) + [cfg["filters"][-1]] * max(0, len(levels) - len(cfg["filters"]))
    x = _conv(feats[levels[0]], filters[0], int(cfg.get("top_kernel", 1)), f"dec_{levels[0]}")
    for level, f in zip(levels[1:], filters[1:]):
        skip = feats[level]
        x = _up(x, skip.shape[1:3], f, cfg["upsample"], f"dec_{level}")
        x = keras.layers.Concatenate(name=f"dec_{level}_cat")([x, _conv(skip, f, 1, f"dec_{level}_skip")])
        x = _conv(x, f, 3, f"dec_{level}_fuse")
    size = pixels.shape[1:3]
    for i, f in enumerate(cfg["fine_filters"]):  # stride 2, then stride 1: stems on the image itself
        stride = 2 ** (len(cfg["fine_filters"]) - 1 - i)
        hw = (-(-size[0] // stride), -(-size[1] // stride))
        stem = _stem(normalized, f, stride, cfg.get("stem", "conv"), f"fine_s{stride}")
        x = _up(x, hw, f, cfg["upsample"], f"fine_s{stride}")
        x = _conv(keras.layers.Concatenate(name=f"fine_s{stride}_cat")([x, stem]), f, 3, f"fine_s{stride}_fuse")
    if cfg.get("dropout"):
        x = keras.layers.SpatialDropout2D(cfg["dropout"], name="head_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="classes", dtype="float32")(x)
    if tuple(x.shape[1:3]) != tuple(size):
        x = keras.layers.Resizing(*size, interpolation="bilinear", name="logits_resize", dtype="float32")(x)
    return x


def deeplab_head(pixels, encoder: keras.Model, num_classes: int, cfg: dict):
    """keras-hub's DeepLabV3+ on ``encoder`` (a model with ``pyramid_outputs``); logits at full size."""
    try:
        from keras_hub.models import DeepLabV3Backbone
    except ImportError as exc:  # pragma: no cover - keras-hub is a requirement
        raise RecipeError("head='deeplabv3plus' needs keras-hub: pip install keras-hub") from exc
    pyr = encoder.pyramid_outputs
    aspp, low = cfg["aspp_level"], cfg["low_level"]
    for key in (aspp, low):
        if key not in pyr:
            raise RecipeError(f"this backbone has no {key} level (it has {sorted(pyr)}): choose aspp_level/low_level")
    ratio = pyr[low].shape[1] / pyr[aspp].shape[1]
    if ratio != int(ratio) or pyr[low].shape[1] * 2 ** int(low[1]) != pixels.shape[1]:
        raise RecipeError(f"DeepLabV3+ needs pyramid sizes that are exact powers of two of the input "
                          f"({pixels.shape[1]} px gives {low} {pyr[low].shape[1]}, {aspp} {pyr[aspp].shape[1]}): "
                          "use an input size divisible by 32 or head='unet'")
    net = DeepLabV3Backbone(image_encoder=encoder, spatial_pyramid_pooling_key=aspp, upsampling_size=int(ratio),
                            dilation_rates=list(cfg["dilation_rates"]), low_level_feature_key=low,
                            projection_filters=int(cfg["projection_filters"]),
                            image_shape=tuple(pixels.shape[1:]), name="deeplabv3plus")
    x = net(pixels)
    return keras.layers.Conv2D(num_classes, 1, name="classes", dtype="float32")(x)


@register_kind("segmenter")
class Segmenter(Task):
    """A backbone with a segmentation head; ``segment`` returns class maps at each image's size."""

    training = SegmentationTraining()

    def __init__(self, backbone, class_names, head: str = "unet", head_config: dict | None = None):
        if head not in HEADS:
            raise RecipeError(f"head must be one of {HEADS}, not {head!r}")
        super().__init__(backbone, class_names)
        if len(self.class_names) < 2:
            raise RecipeError("a segmenter needs at least two classes (e.g. background and one object)")
        self.head = head
        self.head_config = {**(UNET_DEFAULTS if head == "unet" else DEEPLAB_DEFAULTS), **(head_config or {})}
        p = self.preprocessing
        pixels = keras.Input((self.input_size, self.input_size, 3), name="pixels")
        normalized = Normalize(p.mean, p.std, p.channel_order, name="normalize")(pixels)
        n = len(self.class_names)
        if head == "unet":
            feats = self.feature_network(normalized)
            logits = unet_head(pixels, normalized, {k: feats[k] for k in self.pyramid_levels}, n, self.head_config)
        else:
            raw = keras.Input((self.input_size, self.input_size, 3), name="encoder_pixels")
            feats = self.feature_network(Normalize(p.mean, p.std, p.channel_order, name="encoder_normalize")(raw))
            encoder = keras.Model(raw, {k: feats[k] for k in self.pyramid_levels}, name="encoder")
            encoder.pyramid_outputs = {k: feats[k] for k in self.pyramid_levels}
            logits = deeplab_head(pixels, encoder, n, self.head_config)
        probs = keras.layers.Softmax(name="probs", dtype="float32")(logits)
        self.segmentation_model = keras.Model(pixels, probs, name=f"{self.name}_{head}")

    @property
    def keras_model(self):
        return self.segmentation_model

    def __repr__(self):
        return f"<Segmenter {self.head} on {self.entry.full_name} {self.input_size}px, {self.num_classes} classes>"

    # ---- inference --------------------------------------------------------------------------
    def segment(self, images, probs: bool = False, batch_size: int = 16, return_sources: bool = False,
                value_range: str = "auto", progress: bool = True, tta=False):
        """Per image, an (H, W) int32 class map in that image's own size, or with ``probs=True``
        (H, W, C) float32 probabilities. ``images``: anything :func:`zoo.images.batches` takes.
        ``tta``: False, ``"flip"``, True (flip and several scales) or scale factors
        (:mod:`zoo.tasks.segmenter.tta`)."""
        images = zimages.materialize(images)
        back = lambda p, batch: [_to_size(q, hw, probs) for q, hw in zip(p, batch.items)]  # noqa: E731
        return self._predict(images, what="segment", batch_size=batch_size, value_range=value_range,
                             progress=progress, return_sources=return_sources, postprocess=back, shapes=True,
                             fn=self._tta_fn(tta))

    def predict(self, images, batch_size: int = 16, return_sources: bool = False, value_range: str = "auto",
                tta=False):
        """(N, S, S, C) probabilities at the network's own size (``input_size``)."""
        return self._predict(images, what="segment", batch_size=batch_size, value_range=value_range,
                             return_sources=return_sources, fn=self._tta_fn(tta))

    def _tta_fn(self, tta):
        """The traced call averaging over ``tta``'s copies (None: the plain network)."""
        flip, sides = tta_plan(tta, self.input_size)
        if not flip and sides == (self.input_size,):
            return None
        nets = tta_networks(self, sides)   # copies refreshed with the current weights
        return self._call(("segment_tta", flip, sides), model=tta_averaged(nets, flip, self.input_size))

    def evaluate(self, data, batch_size: int = 16, progress: bool = True, tta=False) -> dict:
        """``{"mIoU", "pixel_accuracy", "per_class_iou", "confusion_matrix", "n"}`` on ``data``:
        an object with ``.images`` and ``.masks`` (demo scenes, ``read_masks``) or an
        ``(images, masks)`` pair. Predictions are compared at each mask's own size; pixels
        labelled 255 are ignored. mIoU averages the classes present in truth or prediction.
        ``tta``: as :meth:`segment`."""
        imgs, masks = _images_and_masks(data)
        if len(imgs) != len(masks):
            raise DataError(f"{len(imgs)} images but {len(masks)} masks")
        metric = keras.metrics.MeanIoU(self.num_classes, ignore_class=IGNORE)
        for start in range(0, len(masks), 256):
            chunk = imgs[start:start + 256]
            r = self.segment(chunk, batch_size=batch_size, return_sources=True, progress=progress, tta=tta)
            where = None if isinstance(chunk, np.ndarray) else {str(Path(p)): i for i, p in enumerate(chunk)
                                                                if isinstance(p, (str, Path))}
            for src, why in r.skipped:
                warnings.warn(f"evaluation skips {src}: {why}", stacklevel=2)
            for src, m in zip(r.sources, r.outputs):
                i = start + (int(src) if isinstance(src, (int, np.integer)) else where[str(src)])
                y = np.asarray(masks[i])
                if y.shape != m.shape:
                    raise DataError(f"mask {i} is {y.shape} but its image is {m.shape}: masks must match their images")
                bad = (y >= self.num_classes) & (y != IGNORE)
                if bad.any():
                    raise DataError(f"mask {i} holds label {int(y[bad].max())}, beyond the model's "
                                    f"{self.num_classes} classes (and not the ignore label {IGNORE})")
                metric.update_state(y.ravel(), m.ravel())
        return miou_report(metric, self.class_names) | {"n": int(len(masks))}

    def predict_described(self, images, batch_size: int = 16):
        from zoo.tasks.segmenter.draw import class_areas

        r = self.segment(images, batch_size=batch_size, return_sources=True)
        return r._replace(outputs=[{"areas": {k: round(float(v), 4) for k, v in class_areas(m, self.class_names).items()}}
                                   for m in r.outputs])

    # ---- export -----------------------------------------------------------------------------
    def export_signature(self, input_dtype: str = "uint8"):
        """Serving graph on raw pixels at ``input_size``: ``probabilities`` (N, S, S, C) and
        ``classes`` (N, S, S) int32. A server resizes them to each image's own size, as
        ``segment`` does (bilinear on probabilities, or nearest on classes)."""
        import keras

        from zoo.export import Signature, export_layers, model_metadata, pixel_input

        raw, x = pixel_input(self.input_size, input_dtype)
        probs = self.segmentation_model(x)
        classes = export_layers().ArgMax(name="classes")(probs)
        meta = {**model_metadata(self, "segmenter"), "labels": list(self.class_names), "ignore_label": IGNORE,
                "output_note": "maps at the input size; resize to each image's own size"}
        return Signature(keras.Model(raw, {"probabilities": probs, "classes": classes}, name="segmenter_export"),
                         meta)

    # ---- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"head": {"type": self.head, **self.head_config}, "ignore_label": IGNORE}

    @classmethod
    def from_config(cls, backbone, config, arrays, class_names, **_):
        head = dict(config.get("head") or {})
        kind = head.pop("type", "unet")
        if kind not in HEADS:
            raise zio.SavedModelError(f"unknown segmentation head {kind!r}: upgrade zoo")
        return cls(backbone, class_names, kind, head)


def miou_report(metric: keras.metrics.MeanIoU, class_names) -> dict:
    """mIoU, pixel accuracy and per-class IoU from a MeanIoU metric's confusion matrix."""
    cm = np.asarray(metric.total_cm.numpy(), np.int64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    iou = np.where(present, inter / np.maximum(union, 1), np.nan)
    return {"mIoU": float(metric.result().numpy()), "pixel_accuracy": float(inter.sum() / max(cm.sum(), 1)),
            "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
            "confusion_matrix": cm}


def _images_and_masks(data):
    if isinstance(data, tuple) and len(data) == 2:
        return data
    if hasattr(data, "images") and hasattr(data, "masks"):
        return data.images, data.masks
    raise DataError(f"cannot evaluate on {type(data).__name__}: pass an object with .images and .masks "
                    "(demo scenes, recipes.segmentation.read_masks) or an (images, masks) pair")


def _to_size(p: np.ndarray, hw, probs: bool) -> np.ndarray:
    """Probabilities (S, S, C) at the network's size -> class map or probabilities at ``hw``."""
    h, w = hw
    if p.shape[:2] == (h, w):
        return p if probs else p.argmax(-1).astype(np.int32)
    if probs or h * w * p.shape[-1] <= BILINEAR_LIMIT:
        q = tf.image.resize(p, (h, w), method="bilinear").numpy()
        return q if probs else q.argmax(-1).astype(np.int32)
    return zimages.resize_mask(p.argmax(-1).astype(np.int32), (h, w))



train = Segmenter.train  # segmenter.train(train, val, backbone=..., head="unet", **settings): see zoo.training
