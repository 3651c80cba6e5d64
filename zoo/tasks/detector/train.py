"""The detector's part of the one trainer: letterboxed images, RetinaNet targets and losses built in
the input pipeline, augmentation that moves the boxes with the pixels (flip, scale jitter with crop
or padding, colour), COCO mAP on validation every ``eval_every`` epochs as the monitor.

Defaults: 12 epochs of FPN and heads on the frozen backbone (``head_epochs``), none unfrozen
(``epochs``), batch 16, gradient norm clipped at 10.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import RecipeError
from zoo.tasks.detector.data import DetectionData, DetectionDataError, as_detection_data
from zoo.training import TrainingSpec, holdout

log = logging.getLogger(__name__)
AUGMENT = {
    "none": None,
    "light": {"flip": True, "scale": (0.8, 1.25), "brightness": 0.1, "contrast": (0.85, 1.15),
              "saturation": (0.8, 1.2), "hue": 0.03},
    "default": {"flip": True, "scale": (0.6, 1.5), "brightness": 0.15, "contrast": (0.7, 1.3),
                "saturation": (0.6, 1.4), "hue": 0.08},
    "strong": {"flip": True, "scale": (0.5, 1.8), "brightness": 0.25, "contrast": (0.6, 1.4),
               "saturation": (0.3, 1.7), "hue": 0.5},   # for data whose classes do not depend on colour
    # images seen from straight above (aerial, satellite, microscopy): every one of the 8 orientations
    # (flips and quarter turns: "vflip" and "transpose" beside "flip") is as likely as the one shot
    "overhead": {"flip": True, "vflip": True, "transpose": True, "scale": (0.8, 1.25), "brightness": 0.15,
                 "contrast": (0.7, 1.3), "saturation": (0.6, 1.4), "hue": 0.02},
}
MIN_KEPT = 0.45   # a box cropped by scale jitter stays an object while this fraction of it is in the frame


@dataclass
class DetectionOptions:
    head: dict | None = None         # zoo.tasks.detector.model.HEAD_DEFAULTS overrides
    eval_every: int = 1              # validation mAP every N epochs (0: never)
    eval_images: int = 200           # at most this many validation images for it


def augment_config(augment) -> dict | None:
    if isinstance(augment, dict):
        return {**AUGMENT["default"], **augment}
    if augment in (None, False):
        return None
    if augment is True:
        augment = "default"
    if augment not in AUGMENT:
        raise RecipeError(f"augment must be one of {sorted(AUGMENT)} or a dict, not {augment!r}")
    return AUGMENT[augment]


def choose_size(data: DetectionData, size) -> int:
    if size is None:
        shapes = {tuple(np.shape(x)[:2]) for x in data.images[:256]} if not isinstance(data.images[0], (str, Path)) else set()
        size = next(iter(shapes))[0] if len(shapes) == 1 and len(set(next(iter(shapes)))) == 1 else 320
    size = int(size)
    if size % 32 or size < 64:
        raise RecipeError(f"input_size must be a multiple of 32 and at least 64 (P5 has stride 32); got {size}")
    return size


def letterbox_set(data: DetectionData, size: int):
    """All images as letterboxed uint8 canvases (N, size, size, 3) with boxes (N, M, 4) and labels
    (N, M) padded with -1, in memory. Unreadable files are skipped with a warning."""
    from zoo import images as zimages
    from zoo.errors import ImageError

    n_max = max(1, max(len(b) for b in data.boxes))
    canvases, boxes, labels = [], [], []
    arr = isinstance(data.images, np.ndarray) and data.images.ndim == 4 and data.images.shape[1:3] == (size, size)
    for i, img in enumerate(data.images):
        if arr and data.images.dtype == np.uint8 and data.images.shape[-1] == 3:
            canvas, s, pad = img, 1.0, (0, 0)
        else:
            try:
                px = zimages.rgb(img)
            except ImageError as exc:
                log.warning("skipping %s", exc)
                continue
            canvas, s, pad = zimages.letterbox(px, size)
            canvas = zimages.as_uint8(canvas)
        b = np.full((n_max, 4), -1, np.float32)
        lab = np.full((n_max,), -1, np.int32)
        k = len(data.boxes[i])
        if k:
            b[:k] = zimages.letterbox_boxes(data.boxes[i], s, pad)
            lab[:k] = data.labels[i]
        canvases.append(canvas)
        boxes.append(b)
        labels.append(lab)
    if not canvases:
        raise DetectionDataError("none of the images could be read")
    return np.stack(canvases), np.stack(boxes), np.stack(labels)


def augment_example(image, boxes, labels, seed, cfg: dict, size: int):
    """One letterboxed image (S, S, 3) float32 [0, 255] with boxes (M, 4) and labels (M,):
    flips (``flip`` left-right, ``vflip`` up-down, ``transpose``: with both flips, any quarter turn),
    scale jitter (zoom in = crop, zoom out = grey padding) and colour, boxes moved with the pixels.
    A box keeps its label while ``MIN_KEPT`` of it stays in the frame (then clipped)."""
    s = tf.random.experimental.stateless_split(seed, 8)
    S = float(size)
    valid = labels >= 0
    if cfg.get("flip"):
        flip = tf.random.stateless_uniform([], s[0]) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        boxes = tf.where(flip, tf.stack([S - boxes[:, 2], boxes[:, 1], S - boxes[:, 0], boxes[:, 3]], 1), boxes)
    turn = tf.random.experimental.stateless_split(s[7], 2)   # s[7]: the orientation draws
    if cfg.get("vflip"):
        flip = tf.random.stateless_uniform([], turn[0]) < 0.5
        image = tf.cond(flip, lambda: image[::-1], lambda: image)
        boxes = tf.where(flip, tf.stack([boxes[:, 0], S - boxes[:, 3], boxes[:, 2], S - boxes[:, 1]], 1), boxes)
    if cfg.get("transpose"):
        swap = tf.random.stateless_uniform([], turn[1]) < 0.5
        image = tf.cond(swap, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
        boxes = tf.where(swap, tf.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3], boxes[:, 2]], 1), boxes)
    boxes = tf.where(valid[:, None], boxes, -1.0)           # padding rows stay padding
    lo, hi = cfg.get("scale") or (1.0, 1.0)
    if (lo, hi) != (1.0, 1.0):
        z = tf.exp(tf.random.stateless_uniform([], s[1], math.log(lo), math.log(hi)))
        room = S - z * S   # > 0: padding around the shrunk image; < 0: how much of the enlarged one is cut
        u = tf.random.stateless_uniform([2], s[2])
        tx, ty = tf.minimum(room, 0.0) + u[0] * tf.abs(room), tf.minimum(room, 0.0) + u[1] * tf.abs(room)
        # output pixel centre c -> input (c + 0.5 - t) / z - 0.5, so that edges map as e' = z e + t
        t = tf.stack([1 / z, 0.0, (0.5 - tx) / z - 0.5, 0.0, 1 / z, (0.5 - ty) / z - 0.5, 0.0, 0.0])
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=t[None], output_shape=tf.constant([size, size]),
            fill_value=114.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
        moved = boxes * z + tf.stack([tx, ty, tx, ty])
        clipped = tf.clip_by_value(moved, 0.0, S)
        area = lambda b: tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)  # noqa: E731
        kept = valid & (area(clipped) >= MIN_KEPT * area(moved)) & \
            (clipped[:, 2] - clipped[:, 0] >= 2.0) & (clipped[:, 3] - clipped[:, 1] >= 2.0)
        boxes = tf.where(kept[:, None], clipped, -1.0)
        labels = tf.where(kept, labels, -1)
    x = image / 255.0
    if cfg.get("brightness"):
        x = tf.image.stateless_random_brightness(x, cfg["brightness"], s[3])
    if cfg.get("contrast"):
        x = tf.image.stateless_random_contrast(x, *cfg["contrast"], s[4])
    if cfg.get("saturation"):
        x = tf.image.stateless_random_saturation(x, *cfg["saturation"], s[5])
    if cfg.get("hue"):
        x = tf.image.stateless_random_hue(x, cfg["hue"], s[6])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0, boxes, labels


def training_dataset(det, canvases, boxes, labels, batch_size: int, augment: dict | None = None, seed: int = 0,
                     shuffle: bool = True, repeat: bool = True):
    """A tf.data pipeline of ``(pixels, targets, weights)`` batches for ``det.keras_model.fit``."""
    size = canvases.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((canvases, boxes, labels))
    if shuffle:
        ds = ds.shuffle(len(canvases), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def prep(i, el):
        img, b, lab = el
        img = tf.cast(img, tf.float32)
        if augment:
            img, b, lab = augment_example(img, b, lab, tf.stack([tf.cast(seed, tf.int64), i]), augment, size)
        return img, b, lab
    ds = ds.enumerate().map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.map(lambda x, b, lab: (x, *det.targets(x, b, lab)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class ValMAP(keras.callbacks.Callback):
    """COCO ``val_mAP`` / ``val_mAP50`` (pycocotools) every ``every`` epochs and after the last, added to
    the epoch logs; the epochs they were measured at go to ``history["val_mAP_epochs"]``."""

    def __init__(self, det, val, every: int, epochs: int, first_epoch: int, history: dict, verbose: int):
        super().__init__()
        self.det, self.val, self.every, self.epochs, self.first = det, val, every, epochs, first_epoch
        self.history, self.verbose = history, verbose

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.val is None or not self.every or ((epoch + 1) % self.every and epoch + 1 != self.epochs):
            return
        t = time.perf_counter()
        r = self.det.evaluate(self.val, batch_size=32)
        logs["val_mAP"], logs["val_mAP50"] = r["mAP"], r["mAP50"]
        self.history.setdefault("val_mAP_epochs", []).append(self.first + epoch + 1)
        if self.verbose:
            print(f"  val mAP {r['mAP']:.3f}, mAP50 {r['mAP50']:.3f} ({time.perf_counter() - t:.0f}s)", flush=True)


class DetectionTraining(TrainingSpec):
    defaults = dict(head_epochs=12, epochs=0, batch_size=16, head_lr=3e-3, lr=2e-4, clipnorm=10.0,
                    augment="default", patience=None)
    options = DetectionOptions
    monitor, mode = "val_mAP", "max"
    curve_metric = "mAP"

    def read(self, text):
        from zoo.tasks.detector.data import read_data

        return read_data(text)

    def prepare(self, train, val, cfg, opts, class_names=None):
        train = as_detection_data(train)
        train, val = holdout(train, as_detection_data(val) if val is not None else None, cfg.val_fraction, cfg.seed)
        if val is not None and list(val.class_names) != list(train.class_names):
            raise DetectionDataError(f"train and validation classes differ: {train.class_names[:4]}... vs "
                                     f"{val.class_names[:4]}...")
        augment_config(cfg.augment)  # a bad preset fails before any work
        return train, val, list(class_names or train.class_names), choose_size(train, cfg.input_size)

    def build(self, kind, backbone, class_names, cfg, opts):
        return kind(backbone, class_names, opts.head)

    def loss(self, task, cfg, opts):
        return task.losses()

    def monitored(self, cfg, opts) -> bool:
        return opts.eval_every == 1

    def steps(self, data, cfg):
        return max(1, len(data) // cfg.batch_size)

    def dataset(self, task, data, cfg, opts, training):
        cache = task.__dict__.setdefault("_letterboxed", {})  # both phases read the canvases once
        if id(data) not in cache:
            cache[id(data)] = letterbox_set(data, task.input_size)
        c, b, lab = cache[id(data)]
        if training:
            return training_dataset(task, c, b, lab, cfg.batch_size, augment_config(cfg.augment), cfg.seed)
        return training_dataset(task, c, b, lab, cfg.batch_size, None, shuffle=False, repeat=False)

    def callbacks(self, task, val, cfg, opts, epochs, first_epoch, history, verbose):
        vsub = val.take(np.arange(min(len(val), opts.eval_images))) if val is not None else None
        return [ValMAP(task, vsub, opts.eval_every, epochs, first_epoch, history, verbose)]

    def record(self, task, train, cfg, opts):
        task.__dict__.pop("_letterboxed", None)
        return {"augment": augment_config(cfg.augment)}

    def reports(self, task, val, out_dir: Path, cfg, opts):
        from zoo.tasks.detector.draw import sheet

        if val is not None:
            sheet(task, val.take(np.arange(min(len(val), 12))), out_dir / "predictions.png")
