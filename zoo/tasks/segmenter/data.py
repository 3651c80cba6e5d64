"""Segmentation data: images with (H, W) label maps (255: ignored), from folders of VOC-style PNGs
or tensorflow-datasets, and the arrays the trainer feeds."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zoo import tfds as ztfds
from zoo.errors import DataError, ImageError

IGNORE = 255  # label of pixels that count for nothing (VOC's border/void)
TFDS_DATASETS = ("oxford_iiit_pet",)
PET_CLASSES = ["background", "pet"]


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


def pet_mask(trimap) -> np.ndarray:
    """(H,W) uint8 label map from an Oxford-IIIT Pet trimap: 2 -> 0 background, 1 -> 1 pet,
    3 (border) and anything else -> 255 (ignored)."""
    lut = np.full(256, 255, np.uint8)
    lut[1], lut[2] = 1, 0
    t = np.asarray(trimap)
    if t.ndim == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    return lut[t.astype(np.uint8)]


def read_folder(folder) -> "MaskedImages":
    """A folder holding ``images/`` and ``masks/`` (PNG label maps named like the images)."""
    folder = Path(folder)
    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise DataError(f"{folder} must hold images/ and masks/ (PNG label maps named like the images)")
    return read_masks(folder / "images", folder / "masks")


def read_tfds(name: str = "oxford_iiit_pet", split: str = "train", data_dir=None, limit: int | None = None,
                    download: bool = True):
    """A tfds segmentation dataset as :class:`MaskedImages` of uint8 (H,W,3)
    images and (H,W) uint8 masks (255 = ignore).

    ``name``: "oxford_iiit_pet" (classes background, pet; the trimap border is ignored).
    tfds's "voc" has boxes only, no masks: read VOC's SegmentationClass PNGs with
    ``zoo.tasks.segmenter.read_masks``. ``split``/``limit`` as in :func:`detection_from_tfds`.
    """
    base, full = ztfds.split_name(name)
    if base not in TFDS_DATASETS:
        extra = (" (tensorflow-datasets' voc has boxes only, no segmentation masks: use "
                 "zoo.tasks.segmenter.read_masks on VOC's JPEGImages/ and SegmentationClass/)"
                 if base.startswith("voc") else "")
        raise DataError(f"masks_from_tfds supports {', '.join(TFDS_DATASETS)} (not {name!r}){extra}; "
                        "for other data use zoo.tasks.segmenter.read_masks on local files")
    examples, info = ztfds.load(full, split, data_dir, limit, download, "zoo.tasks.segmenter.read_masks")
    images, masks, sources = [], [], []
    for i, ex in enumerate(examples):
        img = np.asarray(ex["image"], np.uint8)
        m = pet_mask(ex["segmentation_mask"])
        src = f"{full}:{split}:{ztfds.text(ex.get('file_name'), str(i))}"
        if m.shape != img.shape[:2]:
            raise DataError(f"{src}: mask {m.shape} and image {img.shape[:2]} differ in size")
        images.append(img)
        masks.append(m)
        sources.append(src)
    if not images:
        raise DataError(f"tensorflow-datasets {full!r} split {split!r} has no examples")
    return MaskedImages(images, masks, list(PET_CLASSES), sources)
