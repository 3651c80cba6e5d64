"""Offline demo scenes for detection and segmentation, composed from real objects on real photos.

Each scene pastes a few Fashion-MNIST items (tinted, scaled, flipped) on a crop of a
scikit-image photo; later items occlude earlier ones. Every scene comes with exact labels:

- ``boxes[i]``: (k, 4) float32 xyxy in pixel-edge coordinates, tight around each item's
  *visible* pixels (``x0 = min column``, ``x1 = max column + 1``);
- ``labels[i]``: (k,) int64 Fashion-MNIST class ids 0-9 (``class_names``);
- ``masks[i]``: (H, W) uint8 class map, 0 = background, ``c + 1`` = class ``c``;
- ``instances[i]``: (H, W) int32, 0 = background, ``j + 1`` = item ``j`` (row ``j`` of boxes).

Scenes are deterministic by ``(seed, split, style, index)``: scene ``i`` is the same whatever
``n`` is. Splits never share source items (train and val draw from disjoint parts of the
Fashion-MNIST training set, test from its test set) nor background photos. ``style="shifted"``
composes differently (other photos, wider scale range, vivid tints, more items, vertical flips of
backgrounds) to judge generalisation.

    >>> tr, va, te = scenes()                               # three splits at their default sizes
    >>> s = scenes("test", n=200, size=128, style="shifted")
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from zoo.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_N = {"train": 2000, "val": 200, "test": 500}
VAL_START = 54000  # Fashion-MNIST train indices [0, 54000) -> train scenes, [54000, 60000) -> val
ITEM_THRESHOLD = 40  # an item pixel is visible (part of its mask) where its resized grey value > this
MIN_VISIBLE = 0.5  # an earlier item must keep at least this fraction of its pixels visible

# Background photos (scikit-image, all offline). No photo serves two splits or two styles.
BACKGROUNDS = {
    "default": {"train": ["astronaut", "coffee", "rocket", "brick", "grass", "immunohistochemistry", "camera"],
                "val": ["gravel", "moon"],
                "test": ["chelsea", "hubble_deep_field", "coins"]},
    "shifted": {"train": ["retina", "clock"],
                "val": ["page", "cell"],
                "test": ["stereo_motorcycle", "colorwheel", "text"]},
}
STYLES = {
    # items per scene, item side as a fraction of min(H, W), tint saturation and value ranges
    "default": dict(count=(1, 5), scale=(0.22, 0.45), sat=(0.0, 0.7), val=(0.75, 1.0),
                    crop=(0.35, 1.0), vflip=False, aspect=(0.85, 1.18)),
    "shifted": dict(count=(2, 6), scale=(0.16, 0.55), sat=(0.6, 1.0), val=(0.5, 0.9),
                    crop=(0.2, 0.6), vflip=True, aspect=(0.75, 1.33)),
}


@dataclass
class Scenes:
    """Composed scenes with boxes, labels and masks (see the module docstring)."""

    images: np.ndarray            # (N, H, W, 3) uint8
    boxes: list                   # N x (k, 4) float32 xyxy, tight around visible pixels
    labels: list                  # N x (k,) int64 class ids
    masks: np.ndarray             # (N, H, W) uint8: 0 background, c + 1 class c
    instances: np.ndarray         # (N, H, W) int32: 0 background, j + 1 item j
    class_names: list = field(default_factory=list)
    items: list = field(default_factory=list)        # N x (k,) source indices into ``source_split``
    backgrounds: list = field(default_factory=list)  # N background photo names
    split: str = "train"
    source_split: str = "train"   # the Fashion-MNIST split the items come from
    style: str = "default"

    def __len__(self):
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mask_class_names(self) -> list:
        """Names of the mask values: ``["background", *class_names]``."""
        return ["background", *self.class_names]

    def take(self, index) -> "Scenes":
        index = np.asarray(index, dtype=int).ravel()
        pick = lambda seq: [seq[i] for i in index]  # noqa: E731
        return Scenes(self.images[index], pick(self.boxes), pick(self.labels), self.masks[index],
                      self.instances[index], list(self.class_names), pick(self.items),
                      pick(self.backgrounds), self.split, self.source_split, self.style)


@functools.lru_cache(maxsize=2)
def _fashion(source_split: str):
    from zoo import data

    d = data.fashion_mnist(source_split)
    return d.images, d.labels, list(d.class_names)


@functools.lru_cache(maxsize=32)
def _photo(name: str) -> Image.Image:
    import skimage.data

    img = getattr(skimage.data, name)()
    img = np.asarray(img[0] if isinstance(img, tuple) else img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(img[..., :3].astype(np.uint8)))


def _pool(split: str) -> tuple[str, np.ndarray]:
    if split == "test":
        return "test", np.arange(10000)
    return "train", (np.arange(VAL_START) if split == "train" else np.arange(VAL_START, 60000))


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def _background(rng, names, hw, st) -> tuple[np.ndarray, str]:
    name = names[rng.integers(len(names))]
    photo = _photo(name)
    pw, ph = photo.size
    h, w = hw
    frac = rng.uniform(*st["crop"])
    ch = max(8, int(min(ph, pw * h / w) * frac))
    cw = max(8, int(ch * w / h))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    out = np.asarray(photo.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch), reducing_gap=2.0))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if st["vflip"] and rng.random() < 0.5:
        out = out[::-1]
    return np.array(out), name


def _compose(rng, hw, st, bg_names, src_images, src_labels, pool):
    h, w = hw
    canvas, bg = _background(rng, bg_names, hw, st)
    inst = np.zeros((h, w), np.int32)
    areas, visible, labels, items, places = [], [], [], [], []
    want = int(rng.integers(st["count"][0], st["count"][1] + 1))
    side = min(h, w)
    for _ in range(want * 4):  # a few attempts per wanted item
        if len(labels) == want:
            break
        idx = int(pool[rng.integers(len(pool))])
        s = rng.uniform(*st["scale"]) * side
        a = rng.uniform(*st["aspect"])
        ih, iw = max(6, int(round(s * np.sqrt(a)))), max(6, int(round(s / np.sqrt(a))))
        ih, iw = min(ih, h), min(iw, w)
        grey = np.asarray(Image.fromarray(src_images[idx]).resize((iw, ih), Image.BILINEAR))
        if rng.random() < 0.5:
            grey = grey[:, ::-1]
        m = grey > ITEM_THRESHOLD
        if m.sum() < 12:
            continue
        y0, x0 = int(rng.integers(0, h - ih + 1)), int(rng.integers(0, w - iw + 1))
        region = inst[y0:y0 + ih, x0:x0 + iw]
        covered = np.bincount(region[m], minlength=len(labels) + 1)[1:]
        left = np.asarray(visible, np.int64) - covered
        if len(labels) and np.any(left < MIN_VISIBLE * np.asarray(areas)):
            continue
        tint = _hsv_to_rgb(rng.random(), rng.uniform(*st["sat"]), rng.uniform(*st["val"]))
        shade = (0.3 + 0.7 * grey[m].astype(np.float32) / 255.0)[:, None] * tint[None] * 255.0
        canvas[y0:y0 + ih, x0:x0 + iw][m] = np.clip(shade, 0, 255).astype(np.uint8)
        region[m] = len(labels) + 1
        visible = [*left.tolist(), int(m.sum())]
        areas.append(int(m.sum()))
        places.append((y0, x0, ih, iw))
        labels.append(int(src_labels[idx]))
        items.append(idx)
    labels = np.asarray(labels, np.int64)
    boxes = np.zeros((len(labels), 4), np.float32)
    for j, (y0, x0, ih, iw) in enumerate(places):  # visible pixels lie inside the pasted rectangle
        ys, xs = np.nonzero(inst[y0:y0 + ih, x0:x0 + iw] == j + 1)
        boxes[j] = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
    lut = np.concatenate([[0], labels + 1]).astype(np.uint8)
    return canvas, boxes, labels, lut[inst], inst, np.asarray(items, np.int64), bg


def _one(split, n, hw, seed, style, count=None) -> Scenes:
    st = STYLES[style] if count is None else {**STYLES[style], "count": tuple(count)}
    source, pool = _pool(split)
    src_images, src_labels, names = _fashion(source)
    out = [_compose(np.random.default_rng([seed, SPLITS.index(split), list(STYLES).index(style), i]),
                    hw, st, BACKGROUNDS[style][split], src_images, src_labels, pool) for i in range(n)]
    images = np.stack([o[0] for o in out]) if n else np.zeros((0, *hw, 3), np.uint8)
    masks = np.stack([o[3] for o in out]) if n else np.zeros((0, *hw), np.uint8)
    inst = np.stack([o[4] for o in out]) if n else np.zeros((0, *hw), np.int32)
    return Scenes(images, [o[1] for o in out], [o[2] for o in out], masks, inst, names,
                  [o[5] for o in out], [o[6] for o in out], split, source, style)


def scenes(split="all", n=None, size=128, seed: int = 0, style: str = "default", count=None):
    """Demo scenes of ``split`` ("train", "val", "test"), or a tuple of all three (``"all"`` or a
    sequence of split names). ``n``: scenes per split (int, or dict by split; defaults
    train 2000, val 200, test 500). ``size``: int or (H, W). ``count``: (min, max) items per
    scene instead of the style's (denser training scenes show a model more objects per pixel)."""
    if style not in STYLES:
        raise DataError(f"style must be one of {list(STYLES)}, not {style!r}")
    hw = (int(size), int(size)) if np.isscalar(size) else tuple(int(v) for v in size)
    if len(hw) != 2 or min(hw) < 16:
        raise DataError(f"size must be an int or (height, width) of at least 16 pixels, not {size!r}")
    many = not isinstance(split, str) or split == "all"
    wanted = SPLITS if split == "all" else ((split,) if isinstance(split, str) else tuple(split))
    for s in wanted:
        if s not in SPLITS:
            raise DataError(f"split must be one of {SPLITS} (or 'all'), not {s!r}")
    counts = {s: (n.get(s, DEFAULT_N[s]) if isinstance(n, dict) else (DEFAULT_N[s] if n is None else int(n)))
              for s in wanted}
    if count is not None and not (len(count) == 2 and 1 <= int(count[0]) <= int(count[1])):
        raise DataError(f"count must be (min, max) items with 1 <= min <= max, not {count!r}")
    result = tuple(_one(s, counts[s], hw, seed, style, count) for s in wanted)
    return result if many else result[0]


def item_crops(data: Scenes, size: int = 48, context: float = 0.15):
    """Each scene item as a labelled square crop (``LabeledImages``, Fashion-MNIST class ids): the
    box's longer side plus ``context`` on each side, centred on the box (black beyond the scene),
    resized to ``size``. The items as the scenes show them: tinted, on photos, partly occluded."""
    from zoo.data import LabeledImages

    crops, labels = [], []
    for img, boxes, labs in zip(data.images, data.boxes, data.labels):
        pic = Image.fromarray(img)
        for (x0, y0, x1, y1), lab in zip(boxes, labs):
            half = max(x1 - x0, y1 - y0) * (0.5 + context)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
            crops.append(np.asarray(pic.crop(box).resize((size, size), Image.BILINEAR)))
            labels.append(int(lab))
    return LabeledImages(np.stack(crops), np.asarray(labels, np.int64), list(data.class_names))


def item_backbone(backbone="efficientnet_lite0", n=12000, input_size=48, head_epochs=3, epochs=1, seed=0,
                  verbose=None, source="fashion_mnist", canvas=None, jitter=0.05):
    """The demo recipes' first step: ``backbone`` fine-tuned as a classifier of ``n`` Fashion-MNIST
    training items drawn only from those the training scenes use (indices below ``VAL_START``), so
    that the body tells the ten classes apart before it learns where they are. ``source="scenes"``
    takes the items as training scenes show them (:func:`item_crops` of scenes composed with
    another seed; still training-split items only) instead of the plain grey 28x28 images;
    ``source="boxes"`` the same items cut as a detector's second stage cuts its boxes
    (:func:`zoo.tasks.detector.second_stage.item_crops`: from the scenes letterboxed to ``canvas``,
    box edges moved by up to ``jitter``), so that the classifier can serve as that stage."""
    import zoo
    from zoo import data

    if source in ("scenes", "boxes"):
        mean_items = sum(STYLES["default"]["count"]) / 2
        composed = scenes("train", n=int(math.ceil(n / mean_items)), size=128, seed=seed + 1000)
        if source == "scenes":
            items = item_crops(composed, size=input_size)
        else:
            from zoo.tasks.detector import second_stage

            items = second_stage.item_crops(composed, size=input_size, jitter=jitter, canvas=canvas, seed=seed)
    elif source == "fashion_mnist":
        items = data.fashion_mnist("train").take(np.arange(VAL_START)).subset(total=n, seed=seed)
    else:
        raise DataError(f"source must be 'fashion_mnist', 'scenes' or 'boxes', not {source!r}")
    return zoo.load(backbone, input_size=input_size).finetune(items, epochs=epochs, head_epochs=head_epochs,
                                                              val_fraction=0.05, seed=seed, verbose=verbose)


def cli_data(kind: str, n_train: int = 2000, n_val: int = 200, size: int = 128, seed: int = 0):
    """``(train, val)`` scenes for the CLI's train commands (``zoo train-detector scenes``): the
    entry point ``scenes`` of ``zoo.datasets`` (pyproject.toml). The same scenes serve every kind:
    boxes for a detector, masks for a segmenter, which classes appear for a multi-label classifier."""
    return scenes(("train", "val"), n={"train": n_train, "val": n_val}, size=size, seed=seed)
