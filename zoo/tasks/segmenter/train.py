"""The segmenter's part of the one trainer: cross-entropy (optionally class-weighted) plus soft Dice,
pixels labelled 255 ignored; augmentation that moves image and mask together (flip, scale jitter
with crop or pad; masks by nearest neighbour, padding labelled 255) and jitters colour on the image
only; validation mIoU as the monitor.

Defaults: 8 head epochs on the frozen backbone, 4 unfrozen, batch 16, input 128 px.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from zoo.errors import DataError
from zoo.tasks.segmenter.data import IGNORE, as_arrays
from zoo.training import TrainingSpec, holdout


@dataclass
class SegmentationOptions:
    head: str = "unet"             # "unet" or "deeplabv3plus"
    head_config: dict = field(default_factory=dict)
    dice_weight: float = 1.0
    class_weights: object = None   # None, "balanced" (inverse sqrt frequency) or a list per class
    scale_range: tuple = (0.7, 1.4)  # zoom factors of the scale jitter


def segmentation_loss(num_classes: int, class_weights=None, dice_weight: float = 1.0):
    """Cross-entropy (optionally class-weighted) + ``dice_weight`` x soft Dice on probabilities;
    labels 255 are ignored."""
    import tensorflow as tf

    w = None if class_weights is None else tf.constant(np.asarray(class_weights, np.float32))

    def loss(y_true, y_pred):
        y = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        valid = tf.cast(tf.not_equal(y, IGNORE), tf.float32)
        onehot = tf.one_hot(tf.where(y == IGNORE, 0, y), num_classes) * valid[..., None]
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
        ce = -tf.reduce_sum(onehot * tf.math.log(p), -1)
        pw = valid if w is None else tf.reduce_sum(onehot * w, -1)
        total = tf.reduce_sum(ce * pw) / tf.maximum(tf.reduce_sum(pw), 1.0)
        if dice_weight:
            axes = [0, 1, 2]
            inter = tf.reduce_sum(onehot * p, axes)
            denom = tf.reduce_sum(onehot, axes) + tf.reduce_sum(p * valid[..., None], axes)
            total += dice_weight * (1.0 - tf.reduce_mean((2.0 * inter + 1.0) / (denom + 1.0)))
        return total
    return loss


def balanced_weights(masks: np.ndarray, num_classes: int) -> list:
    """Inverse square-root pixel frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(masks[masks != IGNORE].ravel(), minlength=num_classes)[:num_classes].astype(float)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return (w / w[counts > 0].mean()).tolist()


def augmenter(size: int, scale_range=(0.7, 1.4), seed: int = 0, colour: bool = True):
    """A batched tf function ``(images float (B,S,S,3), masks (B,S,S)) -> same``: horizontal flip
    and scale jitter (crop when zooming in, pad with grey and label 255 when zooming out) move
    both; colour jitter (Keras layers) touches the image only."""
    import keras
    import tensorflow as tf

    jitter = keras.Sequential([
        keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        keras.layers.RandomContrast(0.25, value_range=(0, 255), seed=seed + 1),
        keras.layers.RandomSaturation((0.3, 0.7), value_range=(0, 255), seed=seed + 2),
        keras.layers.RandomHue(0.15, value_range=(0, 255), seed=seed + 3),
    ], name="colour_jitter")
    lo, hi = math.log(scale_range[0]), math.log(scale_range[1])

    def apply(x, y):
        b = tf.shape(x)[0]
        y = tf.cast(y, tf.float32)[..., None]
        flip = tf.random.uniform([b]) < 0.5
        x = tf.where(flip[:, None, None, None], tf.reverse(x, [2]), x)
        y = tf.where(flip[:, None, None, None], tf.reverse(y, [2]), y)
        side = tf.exp(-tf.random.uniform([b], lo, hi))       # box side in [0, 1] units: < 1 zooms in
        free = 1.0 - side                                     # negative when zooming out (padding)
        y0 = tf.minimum(free, 0.0) + tf.random.uniform([b]) * tf.abs(free)
        x0 = tf.minimum(free, 0.0) + tf.random.uniform([b]) * tf.abs(free)
        boxes = tf.stack([y0, x0, y0 + side, x0 + side], 1)
        idx = tf.range(b)
        x = tf.image.crop_and_resize(x, boxes, idx, (size, size), "bilinear", extrapolation_value=114.0)
        y = tf.image.crop_and_resize(y, boxes, idx, (size, size), "nearest", extrapolation_value=float(IGNORE))
        if colour:
            x = tf.clip_by_value(jitter(x, training=True), 0.0, 255.0)
        return x, tf.cast(y[..., 0], tf.uint8)
    return apply


def _dataset(x, y, batch_size, shuffle=False, augment=None, seed=0, repeat=False):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size).map(lambda a, m: (tf.cast(a, tf.float32), m), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class _Arrays:
    """Images and masks at the network's size, held once for both phases."""

    def __init__(self, x, y, names):
        self.x, self.y, self.class_names = x, y, names

    def __len__(self):
        return len(self.x)


class SegmentationTraining(TrainingSpec):
    defaults = dict(head_epochs=8, epochs=4, batch_size=16, head_lr=3e-3, lr=1e-3, input_size=128, augment=True)
    options = SegmentationOptions
    monitor, mode = "val_miou", "max"
    curve_metric = "miou"

    def read(self, text):
        from zoo.tasks.segmenter.data import read_folder

        return read_folder(text)

    def prepare(self, train, val, cfg, opts, class_names=None):
        if val is None:
            train, val = holdout(train, None, cfg.val_fraction or 0.1, cfg.seed)
        x, y, names = as_arrays(train, cfg.input_size)
        vx, vy, vnames = as_arrays(val, cfg.input_size)
        names = list(class_names or names)
        if vnames != names and class_names is None:
            raise DataError(f"train and validation data have different class names ({names[:4]}... vs {vnames[:4]}...)")
        n = len(names)
        for what, m in (("training", y), ("validation", vy)):
            bad = (m >= n) & (m != IGNORE)
            if bad.any():
                raise DataError(f"{what} masks hold label {int(m[bad].max())}, beyond the {n} classes")
        if opts.class_weights == "balanced":  # resolved once, recorded as the numbers used
            opts.class_weights = balanced_weights(y, n)
        return _Arrays(x, y, names), _Arrays(vx, vy, names), names, cfg.input_size

    def build(self, kind, backbone, class_names, cfg, opts):
        return kind(backbone, class_names, opts.head, opts.head_config)

    def loss(self, task, cfg, opts):
        return segmentation_loss(task.num_classes, opts.class_weights, opts.dice_weight)

    def metrics(self, task, cfg, opts):
        import keras

        return [keras.metrics.MeanIoU(task.num_classes, sparse_y_pred=False, ignore_class=IGNORE, name="miou")]

    def dataset(self, task, data, cfg, opts, training):
        if training:
            aug = augmenter(task.input_size, opts.scale_range, cfg.seed) if cfg.augment else None
            return _dataset(data.x, data.y, cfg.batch_size, shuffle=True, augment=aug, seed=cfg.seed, repeat=True)
        return _dataset(data.x, data.y, cfg.batch_size)

    def record(self, task, train, cfg, opts):
        return {"scale_range": list(opts.scale_range)}

    def reports(self, task, val, out_dir, cfg, opts):
        from zoo.tasks.segmenter.draw import overlay_sheet

        overlay_sheet(task, (val.x[:12], val.y[:12]), out_dir / "overlays.png")
