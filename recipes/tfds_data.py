"""Detection boxes and segmentation masks from tensorflow-datasets, by name.

```python
from recipes import tfds_data
train = tfds_data.detection_from_tfds("voc/2007", split="train", limit=500)   # -> detection.DetectionData
pets = tfds_data.masks_from_tfds("oxford_iiit_pet", split="train")          # -> segmentation.MaskedImages
```

The first call downloads and prepares the dataset into ``data_dir`` (tfds's default,
``~/tensorflow_datasets``, unless given); later calls read the prepared files and need no
network. With ``ZOO_OFFLINE=1`` or ``download=False`` nothing is downloaded: a dataset that is not
prepared raises :class:`zoo.errors.DataError` saying what to do. Local files need no tfds:
``detection.read_voc`` / ``read_coco`` and ``segmentation.read_masks``.

Conversions: tfds boxes are normalised ``(ymin, xmin, ymax, xmax)``; they become xyxy pixel
edges in each image's own pixels. VOC's tfds boxes keep VOC's 1-based inclusive pixel indices,
so ``xmin``/``ymin`` move by one pixel, as ``detection.read_voc`` does. Boxes are clipped to the
image; empty or inverted ones are dropped (counted in a log line). COCO crowd boxes are dropped.
Oxford-IIIT Pet trimaps (1 pet, 2 background, 3 border) become 0 background, 1 pet, 255 border
(ignored by the segmentation loss); any other value also becomes 255.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from zoo.errors import DataError, MissingDependencyError

log = logging.getLogger(__name__)

# tfds name -> how its boxes count pixels ("voc": 1-based inclusive indices, "coco": edges)
DETECTION_DATASETS = {"voc/2007": "voc", "voc/2012": "voc", "coco/2014": "coco", "coco/2017": "coco"}
MASK_DATASETS = ("oxford_iiit_pet",)
ALIASES = {"voc": "voc/2007", "coco": "coco/2017", "oxford_iiit_pet": "oxford_iiit_pet"}
PET_CLASSES = ["background", "pet"]


def _offline(download: bool) -> bool:
    return not download or os.environ.get("ZOO_OFFLINE", "") in ("1", "true", "yes")


def _split_name(name: str) -> tuple[str, str]:
    """(supported base name, name for tfds.builder) from e.g. ``"voc"``, ``"voc/2012:5.0.0"``."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    base, _, version = name.strip().lower().partition(":")
    base = ALIASES.get(base, base)
    return base, base + (":" + version if version else "")


def _load(full: str, split: str, data_dir, limit, download: bool, local: str):
    """(numpy example iterator, tfds DatasetInfo) of a prepared (or now prepared) dataset."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise MissingDependencyError("tensorflow-datasets is not installed: `pip install tensorflow-datasets`, "
                                     f"or read local files with {local}") from exc
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    try:
        builder = tfds.builder(full, data_dir=data_dir)
    except Exception as exc:  # unknown version or config, unreadable data_dir
        raise DataError(f"tensorflow-datasets has no dataset {full!r} ({exc})") from exc
    if not builder.is_prepared():
        where = builder.data_path
        if _offline(download):
            why = "download=False" if not download else "ZOO_OFFLINE=1 is set"
            raise DataError(
                f"tensorflow-datasets {full!r} is not prepared in {where} and downloading is off ({why}). "
                f"Run once online (unset ZOO_OFFLINE, download=True) to download and prepare it, pass "
                f"data_dir= where it is already prepared, or read local files with {local}")
        try:
            builder.download_and_prepare()
        except Exception as exc:  # network, disk space, manual-download datasets, checksum errors
            raise DataError(
                f"tensorflow-datasets could not download and prepare {full!r} into {where} ({exc}). Check the "
                f"network and disk space, pass data_dir= where it is already prepared, or read local files "
                f"with {local}") from exc
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as exc:  # unknown split
        splits = sorted(builder.info.splits.keys()) if builder.info.splits else []
        raise DataError(f"tensorflow-datasets {full!r} has no split {split!r}"
                        f"{' (splits: ' + ', '.join(splits) + ')' if splits else ''}: {exc}") from exc
    if limit is not None:
        ds = ds.take(int(limit))
    return tfds.as_numpy(ds), builder.info


def _text(v, default):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v) if v is not None and str(v) else default


def tfds_boxes(bbox, width: int, height: int, style: str = "coco") -> tuple[np.ndarray, np.ndarray]:
    """(boxes (k,4) float32 xyxy pixel edges clipped to the image, kept (n,) bool) from tfds's
    normalised (n,4) ``(ymin, xmin, ymax, xmax)``. ``style="voc"``: 1-based inclusive indices."""
    b = np.asarray(bbox, np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height
    if style == "voc":
        x1, y1 = x1 - 1, y1 - 1
    xyxy = np.stack([x1, y1, x2, y2], axis=1)
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    kept = np.isfinite(xyxy).all(axis=1) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return xyxy[kept].astype(np.float32), kept


def detection_from_tfds(name: str, split: str = "train", data_dir=None, limit: int | None = None,
                        download: bool = True):
    """A tfds detection dataset as :class:`recipes.detection.DetectionData` of uint8 (H,W,3) arrays.

    ``name``: "voc/2007", "voc/2012", "coco/2014" or "coco/2017" ("voc" = "voc/2007",
    "coco" = "coco/2017"; a ":version" suffix is passed on). ``split``: any tfds split string
    ("train", "validation", "test", "train[:10%]"). ``limit``: the first ``limit`` examples.
    Class names are tfds's. Images keep their own sizes; images without boxes are kept.
    """
    from recipes.detection import DetectionData

    base, full = _split_name(name)
    if base not in DETECTION_DATASETS:
        raise DataError(f"detection_from_tfds supports {', '.join(DETECTION_DATASETS)} (not {name!r}); "
                        "for other data use recipes.detection.read_voc/read_coco/read_yolo on local files")
    style = DETECTION_DATASETS[base]
    examples, info = _load(full, split, data_dir, limit, download,
                           "recipes.detection.read_voc/read_coco")
    class_names = list(info.features["objects"]["label"].names)
    images, boxes, labels, sources = [], [], [], []
    dropped = crowd = 0
    for i, ex in enumerate(examples):
        img = np.asarray(ex["image"], np.uint8)
        h, w = img.shape[:2]
        obj = ex["objects"]
        bbox = np.asarray(obj["bbox"], np.float32).reshape(-1, 4)
        lab = np.asarray(obj["label"], np.int64).reshape(-1)
        if len(bbox) != len(lab) or ("is_crowd" in obj and len(obj["is_crowd"]) != len(lab)):
            raise DataError(f"{full}:{split} example {i}: objects have {len(bbox)} boxes but {len(lab)} labels")
        keep = np.ones(len(lab), bool)
        if "is_crowd" in obj:
            is_crowd = np.asarray(obj["is_crowd"], bool).reshape(-1)
            crowd += int(is_crowd.sum())
            keep &= ~is_crowd
        b, ok = tfds_boxes(bbox[keep], w, h, style)
        dropped += int((~ok).sum())
        images.append(img)
        boxes.append(b)
        labels.append(lab[keep][ok])
        sources.append(f"{full}:{split}:{_text(ex.get('image/filename'), str(i))}")
    if not images:
        raise DataError(f"tensorflow-datasets {full!r} split {split!r} has no examples")
    if dropped or crowd:
        log.info("%s %s: dropped %d crowd and %d empty or inverted boxes", full, split, crowd, dropped)
    return DetectionData(images, boxes, labels, class_names, sources)


def pet_mask(trimap) -> np.ndarray:
    """(H,W) uint8 label map from an Oxford-IIIT Pet trimap: 2 -> 0 background, 1 -> 1 pet,
    3 (border) and anything else -> 255 (ignored)."""
    lut = np.full(256, 255, np.uint8)
    lut[1], lut[2] = 1, 0
    t = np.asarray(trimap)
    if t.ndim == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    return lut[t.astype(np.uint8)]


def masks_from_tfds(name: str, split: str = "train", data_dir=None, limit: int | None = None,
                    download: bool = True):
    """A tfds segmentation dataset as :class:`recipes.segmentation.MaskedImages` of uint8 (H,W,3)
    images and (H,W) uint8 masks (255 = ignore).

    ``name``: "oxford_iiit_pet" (classes background, pet; the trimap border is ignored).
    tfds's "voc" has boxes only, no masks: read VOC's SegmentationClass PNGs with
    ``recipes.segmentation.read_masks``. ``split``/``limit`` as in :func:`detection_from_tfds`.
    """
    from recipes.segmentation import MaskedImages

    base, full = _split_name(name)
    if base not in MASK_DATASETS:
        extra = (" (tensorflow-datasets' voc has boxes only, no segmentation masks: use "
                 "recipes.segmentation.read_masks on VOC's JPEGImages/ and SegmentationClass/)"
                 if base.startswith("voc") else "")
        raise DataError(f"masks_from_tfds supports {', '.join(MASK_DATASETS)} (not {name!r}){extra}; "
                        "for other data use recipes.segmentation.read_masks on local files")
    examples, info = _load(full, split, data_dir, limit, download, "recipes.segmentation.read_masks")
    images, masks, sources = [], [], []
    for i, ex in enumerate(examples):
        img = np.asarray(ex["image"], np.uint8)
        m = pet_mask(ex["segmentation_mask"])
        src = f"{full}:{split}:{_text(ex.get('file_name'), str(i))}"
        if m.shape != img.shape[:2]:
            raise DataError(f"{src}: mask {m.shape} and image {img.shape[:2]} differ in size")
        images.append(img)
        masks.append(m)
        sources.append(src)
    if not images:
        raise DataError(f"tensorflow-datasets {full!r} split {split!r} has no examples")
    return MaskedImages(images, masks, list(PET_CLASSES), sources)
