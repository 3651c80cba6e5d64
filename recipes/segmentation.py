"""Semantic segmentation on a zoo backbone: data, training, overlays.

    from recipes import segmentation
    train, val, test = segmentation.scenes()                      # offline demo scenes with masks
    train = segmentation.read_masks("images/", "masks/")          # VOC-style PNG label maps
    seg = segmentation.train(train, val, backbone="efficientnet_lite0", head="unet", out_dir="runs/segment")
    seg.segment(images); seg.evaluate(test); seg.save("runs/segment/model")

Training follows ``finetune``: the head first on the frozen backbone (BatchNorm in inference
mode), then optionally the whole network at a lower learning rate, keeping the better phase on
validation mIoU. Loss: cross-entropy (optional class weights) plus soft Dice, pixels labelled
255 ignored. Augmentation moves image and mask together (flip, scale jitter with crop or pad;
masks by nearest neighbour, padding labelled 255) and jitters colour (brightness, contrast,
saturation, hue) on the image only.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from recipes.scenes import Scenes, scenes  # noqa: F401  (re-exported)
from zoo.errors import DataError, ImageError

log = logging.getLogger(__name__)
IGNORE = 255


# ---- data ------------------------------------------------------------------------------------
@dataclass
class MaskedImages:
    """Images (paths or an (N,H,W,3) array) with (H,W) label maps and the names of the labels."""

    images: list | np.ndarray
    masks: list | np.ndarray
    class_names: list
    sources: list = field(default_factory=list)

    def __len__(self):
        return len(self.masks)

    @property
    def mask_class_names(self) -> list:
        return list(self.class_names)

    def take(self, index) -> "MaskedImages":
        index = np.asarray(index, dtype=int).ravel()
        pick = lambda seq: seq[index] if isinstance(seq, np.ndarray) else [seq[i] for i in index]  # noqa: E731
        return MaskedImages(pick(self.images), pick(self.masks), self.class_names,
                            [self.sources[i] for i in index] if self.sources else [])

    def split(self, fraction: float = 0.1, seed: int = 0) -> tuple["MaskedImages", "MaskedImages"]:
        """(rest, held-out) at random."""
        order = np.random.default_rng(seed).permutation(len(self))
        k = max(1, int(round(fraction * len(self))))
        return self.take(order[k:]), self.take(order[:k])


def read_tfds(name: str = "oxford_iiit_pet", split: str = "train", data_dir=None, limit: int | None = None,
              download: bool = True) -> MaskedImages:
    """A tensorflow-datasets segmentation set by name: see :func:`recipes.tfds_data.masks_from_tfds`
    (Oxford-IIIT Pet; downloads once when online; offline it needs ``data_dir``)."""
    from recipes.tfds_data import masks_from_tfds

    return masks_from_tfds(name, split, data_dir=data_dir, limit=limit, download=download)


def read_label_map(path) -> np.ndarray:
    """One label map PNG as (H, W) uint8: palette indices (VOC) or grey values; an RGB image is
    accepted only when it is grey (all channels equal)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            a = np.asarray(im)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such mask file") from exc
    except OSError as exc:
        raise DataError(f"{path}: not a readable mask image ({exc})") from exc
    if mode in ("RGB", "RGBA"):
        if not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])):
            raise DataError(f"{path}: an RGB mask without a palette; save label maps as palette ('P') or "
                            "greyscale PNGs whose values are class ids")
        a = a[..., 0]
    elif mode == "1":
        a = a.astype(np.uint8)
    elif mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise DataError(f"{path}: mask mode {mode} is not a label map (use palette or greyscale PNG)")
    if a.ndim != 2:
        raise DataError(f"{path}: a mask must be one channel; got shape {a.shape}")
    if a.max(initial=0) > 255:
        raise DataError(f"{path}: label {int(a.max())} is over 255")
    return a.astype(np.uint8)


def read_masks(images_dir, masks_dir, class_names=None, mask_suffix: str = ".png") -> MaskedImages:
    """Pairs ``images_dir/<name>.<ext>`` with ``masks_dir/<name>.png`` (VOC layout).

    Images without a mask, and unreadable images, are skipped with a warning. A mask whose size
    differs from its image's, or that holds labels beyond ``class_names`` (other than 255),
    raises :class:`DataError` naming the file. ``class_names`` default to ``"background", "1",
    ...`` up to the largest label found.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(f"{masks_dir} is not a directory of mask PNGs")
    try:
        files = _list_images(images_dir)
    except ImageError as exc:
        raise DataError(str(exc)) from exc
    paths, masks = [], []
    for p in files:
        m = masks_dir / f"{p.stem}{mask_suffix}"
        if not m.is_file():
            warnings.warn(f"skipping {p}: no mask {m}", stacklevel=2)
            continue
        try:
            with Image.open(p) as im:
                size = im.size
        except OSError as exc:
            warnings.warn(f"skipping {p}: not a readable image ({exc})", stacklevel=2)
            continue
        mask = read_label_map(m)
        if (mask.shape[1], mask.shape[0]) != size:
            raise DataError(f"{m} is {mask.shape[1]}x{mask.shape[0]} but its image {p} is {size[0]}x{size[1]}: "
                            "a mask must have its image's size")
        paths.append(str(p))
        masks.append(mask)
    if not paths:
        raise DataError(f"no image in {images_dir} has a mask in {masks_dir} (expected {masks_dir}/<name>{mask_suffix})")
    top = max(int(np.max(np.where(m == IGNORE, 0, m))) for m in masks)
    if class_names is None:
        class_names = ["background", *(str(i) for i in range(1, max(top, 1) + 1))]
    for path, m in zip(paths, masks):
        bad = (m >= len(class_names)) & (m != IGNORE)
        if bad.any():
            raise DataError(f"{masks_dir / (Path(path).stem + mask_suffix)} holds label {int(m[bad].max())}, "
                            f"beyond the {len(class_names)} classes (use {IGNORE} for pixels to ignore)")
    return MaskedImages(paths, masks, list(class_names), list(paths))


def _list_images(d: Path):
    from zoo.images import list_image_files

    return list_image_files(d)


def as_arrays(data, size: int) -> tuple[np.ndarray, np.ndarray, list]:
    """(images uint8 (N,S,S,3), masks uint8 (N,S,S), class names) at the network's size:
    images resized bilinearly, masks by nearest neighbour."""
    from zoo import images as zimages

    if isinstance(data, tuple) and len(data) == 3:
        imgs, masks, names = data
    elif hasattr(data, "images") and hasattr(data, "masks"):
        imgs, masks = data.images, data.masks
        names = getattr(data, "mask_class_names", None) or getattr(data, "class_names")
    else:
        raise DataError(f"cannot train on {type(data).__name__}: pass demo scenes, read_masks(...) or "
                        "(images, masks, class_names)")
    out_x, out_y = [], []
    for i, m in enumerate(masks):
        m = np.asarray(m)
        if isinstance(imgs, np.ndarray) and imgs.ndim == 4 and imgs.dtype == np.uint8 and imgs.shape[-1] == 3:
            x = imgs[i]
        else:
            src = imgs[i]
            x = zimages.read_image(src) if isinstance(src, (str, Path)) else zimages.to_rgb(src)
            x = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        if x.shape[:2] != m.shape:
            raise DataError(f"mask {i} is {m.shape} but its image is {x.shape[:2]}")
        if x.shape[:2] != (size, size):
            x = np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR))
            m = zimages.resize_mask(m, (size, size))
        out_x.append(x)
        out_y.append(m.astype(np.uint8))
    return np.stack(out_x), np.stack(out_y), list(names)


# ---- training --------------------------------------------------------------------------------
@dataclass
class SegmentConfig:
    epochs: int = 4                # epochs with the backbone unfrozen (0: head only)
    head_epochs: int = 8           # epochs of the head on the frozen backbone
    input_size: int = 128
    batch_size: int = 16
    head_lr: float = 3e-3
    lr: float = 1e-3               # peak learning rate once unfrozen
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    dice_weight: float = 1.0
    class_weights: object = None   # None, "balanced" (inverse sqrt frequency) or a list per class
    augment: bool = True
    scale_range: tuple = (0.7, 1.4)  # zoom factors of the scale jitter
    unfreeze: str | int = "all"
    freeze_bn: bool = True
    patience: int = 3
    seed: int = 0
    verbose: int | None = None
    head_config: dict = field(default_factory=dict)


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


def train(train, val=None, backbone="efficientnet_lite0", head: str = "unet", out_dir=None, class_names=None,
          callbacks=None, **kwargs):
    """Train a :class:`zoo.tasks.segmenter.Segmenter` on ``train`` (demo scenes, :func:`read_masks`
    or ``(images, masks, class_names)``); ``val`` defaults to 10% of it. Keyword arguments are
    the fields of :class:`SegmentConfig`. ``out_dir`` receives ``best.weights.h5``,
    ``curves.png`` and ``overlays.png`` (validation images, truth and prediction)."""
    import keras

    import zoo
    from zoo import training as ztr
    from zoo.model import ZooModel
    from zoo.tasks.segmenter import Segmenter

    cfg = SegmentConfig(**kwargs)
    verbose = ztr.verbosity(cfg.verbose)
    keras.utils.set_random_seed(cfg.seed)
    if val is None:
        if not hasattr(train, "take"):
            raise DataError("pass val= (no way to hold out part of this training data)")
        n = len(train)
        order = np.random.default_rng(cfg.seed).permutation(n)
        k = max(1, n // 10)
        train, val = train.take(order[k:]), train.take(order[:k])
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
    model = backbone if isinstance(backbone, ZooModel) else zoo.load(backbone, input_size=cfg.input_size)
    if model.input_size != cfg.input_size:
        model = _resized(model, cfg.input_size)
    weights = balanced_weights(y, n) if cfg.class_weights == "balanced" else cfg.class_weights
    seg = Segmenter(ztr.copy_backbone(model, "float32"), names, head, cfg.head_config)
    loss = segmentation_loss(n, weights, cfg.dice_weight)
    steps = max(1, math.ceil(len(x) / cfg.batch_size))
    aug = augmenter(cfg.input_size, cfg.scale_range, cfg.seed) if cfg.augment else None
    tds = _dataset(x, y, cfg.batch_size, shuffle=True, augment=aug, seed=cfg.seed, repeat=True)
    vds = _dataset(vx, vy, cfg.batch_size)
    history: dict = {"phase_starts": []}
    t0 = time.perf_counter()

    def fit(epochs, lr, what):
        seg.segmentation_model.compile(
            ztr.cosine_adamw(lr, steps * epochs, cfg.weight_decay, cfg.warmup_fraction), loss,
            metrics=[keras.metrics.MeanIoU(n, sparse_y_pred=False, ignore_class=IGNORE, name="miou")],
            jit_compile=ztr.use_xla())
        cbs = ztr.fit_callbacks("val_miou", cfg.patience, out_dir,
                                [ztr.Throughput(steps * cfg.batch_size, verbose), *(callbacks or [])])
        history["phase_starts"].append(len(history.get("loss", [])))
        h = seg.segmentation_model.fit(tds, validation_data=vds, epochs=epochs, steps_per_epoch=steps,
                                       callbacks=cbs, verbose=verbose, shuffle=False)  # the dataset shuffles
        ztr.extend_history(history, h.history)
        log.info("%s: best val mIoU %.4f", what, max(h.history.get("val_miou", [0])))
        return h.history.get("val_miou", [])

    head_best, kept = None, "head"
    if cfg.head_epochs > 0:
        seg.feature_network.trainable = False
        head_best = max(fit(cfg.head_epochs, cfg.head_lr, "head (frozen backbone)") or [0.0])
    if cfg.epochs > 0:
        snapshot = ztr.Snapshot(seg.segmentation_model) if head_best is not None else None
        ztr.unfreeze_backbone(seg, cfg.unfreeze, cfg.freeze_bn)
        after = fit(cfg.epochs, cfg.lr, "unfrozen")
        kept = ztr.keep_better(head_best, after, snapshot, out_dir)
    seg.history = history
    seg.training_config = {**{k: v for k, v in asdict(cfg).items() if k != "head_config"},
                           "scale_range": list(cfg.scale_range), "kept": kept,
                           "class_weights": weights, "train_images": int(len(x)),
                           "seconds": round(time.perf_counter() - t0, 1)}
    if out_dir:
        curves(history, Path(out_dir) / "curves.png", f"{seg.name} {head}")
        overlay_sheet(seg, (vx[:12], vy[:12]), Path(out_dir) / "overlays.png")
    return seg


def _resized(model, size):
    """The same backbone (and weights) at another input size."""
    from zoo.model import ZooModel

    other = ZooModel(model.entry, size, weights=None)
    other.feature_network.set_weights(model.feature_network.get_weights())
    return other


# ---- pictures --------------------------------------------------------------------------------
def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: black background, then well-separated hues."""
    import colorsys

    cols = [(0, 0, 0)] + [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95))
                          for i in range(max(n - 1, 0))]
    return np.array(cols[:n], np.uint8)


def colorize(mask: np.ndarray, n: int) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) colours (255, the ignore label, in white)."""
    pal = np.concatenate([palette(n), np.full((256 - n, 3), 255, np.uint8)])
    return pal[np.asarray(mask).astype(np.int64).clip(0, 255)]


def overlay(image, mask: np.ndarray, n: int, alpha: float = 0.55) -> np.ndarray:
    """The image with coloured classes blended over it (background left as is); uint8 (H,W,3)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3]
    col = colorize(mask, n).astype(np.float32)
    fg = (np.asarray(mask) > 0)[..., None]
    out = np.where(fg, (1 - alpha) * img + alpha * col, img)
    return out.astype(np.uint8)


def class_areas(mask: np.ndarray, class_names) -> dict:
    """Fraction of the image's pixels in each class present."""
    counts = np.bincount(np.asarray(mask).ravel(), minlength=len(class_names))
    total = max(int(np.asarray(mask).size), 1)
    return {class_names[i]: counts[i] / total for i in range(len(class_names)) if counts[i]}


def overlay_sheet(seg, data, path, n: int = 12) -> Path:
    """A PNG grid: per image, the image, the true mask and the predicted mask overlaid, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    imgs, masks = (data[0], data[1]) if isinstance(data, tuple) else (data.images, data.masks)
    k = min(n, len(masks))
    preds = seg.segment(imgs[:k], progress=False)
    nc = seg.num_classes
    cols = 3
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols * 3, figsize=(cols * 3 * 1.6, rows * 1.7 + 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(k):
        r, c = divmod(i, cols)
        img = np.asarray(imgs[i])
        for j, (pic, title) in enumerate(((img, "image"), (overlay(img, masks[i], nc), "truth"),
                                          (overlay(img, preds[i], nc), "predicted"))):
            axes[r, c * 3 + j].imshow(pic)
            if r == 0:
                axes[r, c * 3 + j].set_title(title, fontsize=8)
    pal = palette(nc) / 255.0
    fig.legend(handles=[Patch(color=pal[i], label=name) for i, name in enumerate(seg.class_names) if i],
               loc="lower center", ncol=min(nc - 1, 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    from zoo.plots import save_figure

    return save_figure(fig, path, dpi=100)


def curves(history: dict, path, title: str = "") -> Path:
    """Loss and mIoU per epoch (train and validation); the unfreezing is marked."""
    from zoo.plots import training_curves

    return training_curves(history, path, title, metric="miou")
