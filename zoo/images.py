"""Turn what users call "images" into batches of RGB float32 pixels in [0, 255].

Accepted: a numpy array (N,H,W,C) or (N,H,W) of uint8/uint16/float/bool, one image
(H,W,C), a list of arrays or PIL images of any sizes, file paths, a directory (searched
recursively), or a ``tf.data.Dataset`` of images or (image, label) pairs. Grayscale,
RGBA (alpha dropped), palette and 16-bit images are converted. Unreadable files are
skipped with a warning and counted; one bad file never ends a run.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from zoo.errors import ImageError, InputShapeError

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_PIXELS = 100_000_000  # refuse larger images (decompression bombs)
_TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP"}


@dataclass
class ImageBatches:
    """A dataset of resized float32 RGB batches and where each row came from."""

    dataset: tf.data.Dataset
    sources: list = field(default_factory=list)   # path or index of each image, in order
    skipped: list = field(default_factory=list)   # (path, reason) of unreadable files
    labels: np.ndarray | None = None


def to_rgb(img) -> np.ndarray:
    """One image (array or PIL) as float32 RGB in [0, 255], shape (H, W, 3)."""
    if isinstance(img, Image.Image):
        img = pil_to_array(img)
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise InputShapeError(
            f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    return _channels_to_rgb(_to_float255(a))


def _to_float255(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 257.0
    if a.dtype == np.bool_:
        return a.astype(np.float32) * 255.0
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise InputShapeError("image contains NaN or infinite values")
        return a * 255.0 if a.size and a.max() <= 1.0 else np.clip(a, 0, 255)
    raise InputShapeError(f"unsupported image dtype {a.dtype}")


def _channels_to_rgb(a):
    c = a.shape[-1]
    if c == 1 or c == 2:  # gray or gray+alpha
        return np.repeat(a[..., :1], 3, axis=-1)
    return a[..., :3]


def pil_to_array(im: Image.Image) -> np.ndarray:
    """PIL image to uint8/uint16 array with 1, 3 or 4 channels, EXIF orientation applied."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im)
        return (a.astype(np.uint16) if a.max() > 255 else a.astype(np.uint8)) if im.mode != "I" \
            else np.clip(a, 0, 65535).astype(np.uint16)
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    return np.asarray(im)


def read_image(path) -> np.ndarray:
    """Read one file as float32 RGB [0, 255]; raise ImageError with the reason if it cannot."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_size(im.size, path)
            im.load()
            return to_rgb(pil_to_array(im))
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{path}: not a readable image ({exc})") from exc


def _check_size(size, path):
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{path}: {w}x{h} is over the {MAX_PIXELS:,}-pixel limit (decompression bomb?)")
    if w < 1 or h < 1:
        raise ImageError(f"{path}: empty image")


def list_image_files(root) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root} is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _probe(path: Path, size: int):
    """Header check: returns (format flag, JPEG downscale ratio) or raises ImageError."""
    try:
        with Image.open(path) as im:
            _check_size(im.size, path)
            fmt = im.format
            w, h = im.size
            mode = im.mode
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    if fmt == "JPEG" and mode != "CMYK":
        ratio = 1
        while ratio < 8 and min(w, h) // (ratio * 2) >= size:
            ratio *= 2
        return 1, ratio
    if fmt in _TF_FORMATS and mode != "CMYK":
        return 2, 1
    return 3, 1  # other formats: decode with PIL


def _resize(img, size, method):
    return tf.image.resize(img, (size, size), method=method)


def _decode_file(path, kind, ratio, size, method):
    data = tf.io.read_file(path)

    def jpeg():
        # libjpeg scales by 1/r while decoding: far less work than decoding, then resizing
        branches = [lambda r=r: tf.cast(tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_FAST"),
                                        tf.float32) for r in (1, 2, 4, 8)]
        idx = tf.cast(tf.math.log(tf.cast(ratio, tf.float32)) / tf.math.log(2.0) + 0.5, tf.int32)
        return tf.switch_case(idx, branches)

    def other():
        img = tf.io.decode_image(data, channels=3, dtype=tf.float32, expand_animations=False)
        return img * 255.0

    def pil():
        img = tf.numpy_function(lambda p: read_image(p.decode()), [path], tf.float32)
        return tf.reshape(img, (tf.shape(img)[0], tf.shape(img)[1], 3))

    img = tf.case([(tf.equal(kind, 1), jpeg), (tf.equal(kind, 2), other)], default=pil)
    img.set_shape((None, None, 3))
    return _resize(img, size, method)


def from_files(paths, size: int, batch_size: int = 32, method: str = "bilinear") -> ImageBatches:
    """Decode, resize and batch image files in parallel, skipping unreadable ones."""
    paths = [Path(p) for p in paths]
    ok, kinds, ratios, skipped = [], [], [], []
    for p in paths:
        try:
            kind, ratio = _probe(p, size)
        except ImageError as exc:
            skipped.append((str(p), str(exc)))
            continue
        ok.append(str(p))
        kinds.append(kind)
        ratios.append(ratio)
    if not ok:
        first = skipped[0][1] if skipped else "no files given"
        raise ImageError(f"none of the {len(paths)} images could be read (first: {first})")
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(ok), dtype=np.int64), np.array(ok, dtype=str),
                                             np.array(kinds, np.int32), np.array(ratios, np.int32)))
    ds = ds.map(lambda i, p, k, r: (i, _decode_file(p, k, r, size, method)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)
    for path, reason in skipped:
        log.warning("skipping %s", reason)
    return ImageBatches(ds, ok, skipped)


def from_arrays(images, size: int, batch_size: int = 32, method: str = "bilinear") -> ImageBatches:
    """Batches from a numpy array (N,H,W[,C]) or a list of arrays / PIL images."""
    if isinstance(images, np.ndarray):
        a = images
        if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
            a = a[None]  # one (H, W, C) image
        if a.ndim == 3:
            a = a[..., None]  # (N, H, W) grayscale
        if a.ndim != 4 or a.shape[-1] not in (1, 2, 3, 4):
            raise InputShapeError(
                f"expected images shaped (N, H, W), (N, H, W, C) with C in 1..4, or (H, W, C); "
                f"got {images.shape}")
        if len(a) == 0:
            raise InputShapeError("no images given (array of length 0)")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise InputShapeError("images contain NaN or infinite values")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise InputShapeError(f"unsupported image dtype {a.dtype}")
        n = len(a)

        def gen():
            for start in range(0, n, batch_size):
                chunk = _channels_to_rgb(_to_float255(a[start:start + batch_size]))
                yield tf.image.resize(chunk, (size, size), method=method) if chunk.shape[1:3] != (size, size) \
                    else tf.constant(chunk)
        spec = tf.TensorSpec((None, size, size, 3), tf.float32)
        ds = tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2)
        return ImageBatches(ds, list(range(n)))
    items = [to_rgb(x) for x in images]
    if not items:
        raise InputShapeError("no images given (empty list)")
    resized = np.stack([_resize(x, size, method).numpy() for x in items])
    return ImageBatches(tf.data.Dataset.from_tensor_slices(resized).batch(batch_size), list(range(len(items))))


def from_dataset(ds: tf.data.Dataset, size: int, batch_size: int = 32, method: str = "bilinear") -> ImageBatches:
    """Batches from a tf.data.Dataset of images or (image, label), batched or not."""
    spec = ds.element_spec
    if isinstance(spec, tuple):
        ds = ds.map(lambda x, *_: x)
        spec = spec[0]
    rank = spec.shape.rank
    if rank == 3 or (rank == 2):
        ds = ds.batch(batch_size)
        rank += 1
    if rank not in (3, 4):
        raise InputShapeError(f"dataset elements must be images (H,W[,C]) or batches; got {spec.shape}")

    def prep(x):
        if x.shape.rank == 3:
            x = x[..., None]
        x = tf.image.convert_image_dtype(x, tf.float32) * 255.0 if x.dtype in (tf.uint8, tf.uint16) \
            else tf.cast(x, tf.float32)
        c = tf.shape(x)[-1]
        x = tf.cond(c < 3, lambda: tf.repeat(x[..., :1], 3, axis=-1), lambda: x[..., :3])
        x.set_shape((None, None, None, 3))
        return _resize(x, size, method)
    return ImageBatches(ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def batches(images, size: int, batch_size: int = 32, method: str = "bilinear") -> ImageBatches:
    """Dispatch any supported input to :class:`ImageBatches`."""
    if isinstance(images, tf.data.Dataset):
        return from_dataset(images, size, batch_size, method)
    if isinstance(images, (str, os.PathLike)):
        p = Path(images)
        if p.is_dir():
            files = list_image_files(p)
            if not files:
                raise ImageError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {p}")
            return from_files(files, size, batch_size, method)
        if not p.exists():
            raise ImageError(f"{p}: no such file or directory")
        return from_files([p], size, batch_size, method)
    if isinstance(images, (list, tuple)) and images and all(isinstance(x, (str, os.PathLike)) for x in images):
        return from_files(images, size, batch_size, method)
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (np.ndarray, list, tuple)):
        return from_arrays(images, size, batch_size, method)
    raise InputShapeError(
        f"cannot read images from {type(images).__name__}: pass a numpy array, file paths, "
        "a directory or a tf.data.Dataset")
