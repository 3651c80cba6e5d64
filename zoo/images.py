"""The one pixel path: anything users call "images" -> RGB float32 pixels in [0, 255].

Inference, training, evaluation and every recipe go through :func:`pixel_scale` (how raw
values map to [0, 255]) and :func:`to_pixels` (scale, clip, channels to RGB), so a model sees
the same pixels whichever way an image arrives.

Accepted: a numpy array (N,H,W,C) or (N,H,W) of uint8/uint16/float/bool, one image (H,W,C),
a list of arrays or PIL images of any sizes, file paths, a directory (searched recursively),
or a ``tf.data.Dataset`` of images or (image, label) pairs. Grayscale, RGBA (alpha dropped),
palette and 16-bit images are converted; JPEG EXIF orientation is applied. Unreadable files
are skipped with a warning; one bad file never ends a run.

Float pixels: ``value_range="auto"`` (default) decides ONCE per call, over the whole input,
that floats are in [0, 1] when their maximum is <= 1 (then x 255), else in [0, 255]; pass
``"0-1"`` or ``"0-255"`` to say so. uint16 is divided by 257, bool is 0 or 255.

For detection and segmentation: :func:`letterbox` resizes keeping the aspect ratio and
returns the scale and padding that map boxes back (:func:`unletterbox_boxes`), and
:func:`resize_mask` resizes label maps with nearest-neighbour sampling.
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
VALUE_RANGES = ("auto", "0-1", "0-255")
_TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP"}
_EXIF_ORIENTATION = 0x0112


@dataclass
class ImageBatches:
    """A dataset of resized float32 RGB batches and where each row came from."""

    dataset: tf.data.Dataset
    sources: list = field(default_factory=list)   # path or index of each image, in order
    skipped: list = field(default_factory=list)   # (path, reason) of unreadable files
    labels: np.ndarray | None = None


# ---- the converter ---------------------------------------------------------------------------
def check_dtype(dtype):
    dtype = np.dtype(dtype)
    if not (dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputShapeError(f"unsupported image dtype {dtype}: pass uint8, uint16, float or bool pixels")
    return dtype


def pixel_scale(dtype, max_value: float | None = None, value_range: str = "auto") -> float:
    """The factor that takes raw values of ``dtype`` to [0, 255].

    ``max_value``: the largest value of the whole input (used for floats under "auto").
    """
    if value_range not in VALUE_RANGES:
        raise InputShapeError(f"value_range must be one of {VALUE_RANGES}; got {value_range!r}")
    dtype = check_dtype(dtype)
    if dtype == np.bool_:
        return 255.0
    if dtype == np.uint16:
        return 1.0 / 257.0
    if np.issubdtype(dtype, np.integer):
        return 1.0
    if value_range == "0-1":
        return 255.0
    if value_range == "0-255":
        return 1.0
    return 255.0 if max_value is not None and max_value <= 1.0 else 1.0


def as_uint8(pixels) -> np.ndarray:
    """Float pixels in [0, 255] as uint8: rounded, clipped (what a uint8 image or runtime takes)."""
    return np.clip(np.round(np.asarray(pixels)), 0, 255).astype(np.uint8)


def to_pixels(x, scale: float) -> tf.Tensor:
    """Raw images (..., H, W, C) with C in 1..4 -> float32 RGB in [0, 255]: scale, clip, gray
    to RGB, alpha dropped. The single conversion every path uses."""
    x = tf.cast(x, tf.float32) * scale
    x = tf.clip_by_value(x, 0.0, 255.0)
    c = x.shape[-1]
    if c is None:
        c_t = tf.shape(x)[-1]
        return tf.cond(c_t < 3, lambda: tf.repeat(x[..., :1], 3, axis=-1), lambda: x[..., :3])
    return tf.repeat(x[..., :1], 3, axis=-1) if c < 3 else x[..., :3]


def _array_scale(a: np.ndarray, value_range: str) -> float:
    dtype = check_dtype(a.dtype)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(a).all():
            raise InputShapeError("images contain NaN or infinite values")
        return pixel_scale(dtype, float(a.max()) if a.size else None, value_range)
    return pixel_scale(dtype, None, value_range)


def to_rgb(img, value_range: str = "auto") -> np.ndarray:
    """One image (array or PIL) as float32 RGB in [0, 255], shape (H, W, 3)."""
    if isinstance(img, Image.Image):
        img = pil_to_array(img)
    a = _as_image(np.asarray(img))
    return to_pixels(a, _array_scale(a, value_range)).numpy()


def _as_image(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise InputShapeError(
            f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputShapeError(f"an image must have at least one pixel; got shape {a.shape}")
    check_dtype(a.dtype)
    return a


def pil_to_array(im: Image.Image) -> np.ndarray:
    """PIL image to a uint8/uint16 (float32 for mode "F") array with 1, 3 or 4 channels, EXIF
    orientation applied."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode == "F":  # 32-bit float (TIFF): keep the values; their range is read like arrays'
        return np.asarray(im, np.float32)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im)
        return (a.astype(np.uint16) if a.max() > 255 else a.astype(np.uint8)) if im.mode != "I" \
            else np.clip(a, 0, 65535).astype(np.uint16)
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    return np.asarray(im)


def rgb(img) -> np.ndarray:
    """One image as float32 RGB in [0, 255], shape (H, W, 3): a file path is read
    (:func:`read_image`), an array or PIL image converted (:func:`to_rgb`)."""
    return read_image(img) if isinstance(img, (str, Path)) else to_rgb(img)


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
    """Header check: returns (decoder, JPEG downscale ratio) or raises ImageError.

    Decoder 1: TensorFlow's JPEG decoder (scaled while decoding), 2: TensorFlow's PNG/GIF/BMP
    decoder, 3: PIL (other formats, CMYK, and JPEGs whose EXIF says to rotate).
    """
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file (pass the folder itself to read all its images)")
    try:
        with Image.open(path) as im:
            _check_size(im.size, path)
            fmt, (w, h), mode = im.format, im.size, im.mode
            rotated = fmt == "JPEG" and im.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    if fmt == "JPEG" and mode != "CMYK" and not rotated:
        ratio = 1
        while ratio < 8 and min(w, h) // (ratio * 2) >= size:
            ratio *= 2
        return 1, ratio
    if fmt in _TF_FORMATS and mode != "CMYK" and not rotated:
        return 2, 1
    return 3, 1


def _resize(img, size, method):
    return tf.image.resize(img, (size, size), method=method)


def _decode_file(path, kind, ratio, size, method):
    data = tf.io.read_file(path)

    def jpeg():
        # libjpeg scales by 1/r while decoding: far less work than decoding, then resizing
        branches = [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_FAST")
                    for r in (1, 2, 4, 8)]
        idx = tf.cast(tf.math.log(tf.cast(ratio, tf.float32)) / tf.math.log(2.0) + 0.5, tf.int32)
        return to_pixels(tf.switch_case(idx, branches), 1.0)

    def other():
        img = tf.io.decode_image(data, channels=3, dtype=tf.uint16, expand_animations=False)
        return to_pixels(img, pixel_scale(np.uint16))

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
        if len(paths) == 1:
            raise ImageError(skipped[0][1])
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


def as_image_array(images) -> np.ndarray:
    """A numpy input as (N, H, W, C) with C in 1..4, or a clear error."""
    a = images
    if a.ndim == 3 and a.shape[-1] == 2:
        raise InputShapeError(
            f"shape {a.shape} is ambiguous: one (H, W, 2) gray+alpha image or {a.shape[0]} images of width 2? "
            "pass (1, H, W, 2) for one image or (N, H, W, 1) for grayscale images")
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
        a = a[None]  # one (H, W, C) image
    if a.ndim == 3:
        a = a[..., None]  # (N, H, W) grayscale
    if a.ndim != 4 or a.shape[-1] not in (1, 2, 3, 4):
        raise InputShapeError(
            f"expected images shaped (N, H, W), (N, H, W, C) with C in 1..4, or (H, W, C); got {images.shape}")
    if len(a) == 0:
        raise InputShapeError("no images given (array of length 0)")
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise InputShapeError(f"images must have at least one pixel; got shape {images.shape}")
    check_dtype(a.dtype)
    return a


def from_arrays(images, size: int, batch_size: int = 32, method: str = "bilinear",
                value_range: str = "auto") -> ImageBatches:
    """Batches from a numpy array (N,H,W[,C]) or a list of arrays / PIL images."""
    if isinstance(images, np.ndarray):
        a = as_image_array(images)
        scale = _array_scale(a, value_range)  # one decision for the whole call
        n = len(a)

        def gen():
            for start in range(0, n, batch_size):
                chunk = to_pixels(a[start:start + batch_size], scale)
                yield _resize(chunk, size, method) if chunk.shape[1:3] != (size, size) else chunk
        spec = tf.TensorSpec((None, size, size, 3), tf.float32)
        ds = tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2)
        return ImageBatches(ds, list(range(n)))
    items = [_as_image(pil_to_array(x) if isinstance(x, Image.Image) else np.asarray(x)) for x in images]
    if not items:
        raise InputShapeError("no images given (empty list)")
    floats = [x for x in items if np.issubdtype(x.dtype, np.floating)]
    top = max((float(x.max()) for x in floats if x.size), default=None)
    if floats and not all(np.isfinite(x).all() for x in floats):
        raise InputShapeError("images contain NaN or infinite values")
    resized = np.stack([_resize(to_pixels(x, pixel_scale(x.dtype, top, value_range)), size, method).numpy()
                        for x in items])
    return ImageBatches(tf.data.Dataset.from_tensor_slices(resized).batch(batch_size), list(range(len(items))))


def dataset_scale(ds: tf.data.Dataset, value_range: str = "auto", peek: int = 16) -> float:
    """The pixel scale of a dataset of images (or (image, label)): decided once, on its first
    ``peek`` elements when "auto" must tell [0, 1] floats from [0, 255] ones."""
    spec = ds.element_spec[0] if isinstance(ds.element_spec, tuple) else ds.element_spec
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    if not np.issubdtype(dtype, np.floating) or value_range != "auto":
        return pixel_scale(dtype, None, value_range)
    top = None
    for el in ds.take(peek):
        x = el[0] if isinstance(el, tuple) else el
        if not bool(tf.reduce_all(tf.math.is_finite(tf.cast(x, tf.float32)))):
            raise InputShapeError("images contain NaN or infinite values")
        m = float(tf.reduce_max(x))
        top = m if top is None else max(top, m)
    return pixel_scale(dtype, top, value_range)


def dataset_pixels(x, scale: float, size: int, method: str = "bilinear"):
    """One dataset batch (B,H,W[,C]) -> checked, converted, resized pixels."""
    if x.shape.rank == 3:
        x = x[..., None]
    if x.dtype.is_floating:
        x = tf.debugging.check_numerics(tf.cast(x, tf.float32), "images contain NaN or infinite values")
    x = to_pixels(x, scale)
    x.set_shape((None, None, None, 3))
    return _resize(x, size, method)


def from_dataset(ds: tf.data.Dataset, size: int, batch_size: int = 32, method: str = "bilinear",
                 value_range: str = "auto") -> ImageBatches:
    """Batches from a tf.data.Dataset of images or (image, label), batched or not."""
    spec = ds.element_spec
    if isinstance(spec, tuple):
        ds = ds.map(lambda x, *_: x)
        spec = spec[0]
    check_dtype(spec.dtype.as_numpy_dtype)
    rank = spec.shape.rank
    if rank in (2, 3):
        ds = ds.batch(batch_size)
        rank += 1
    if rank not in (3, 4):
        raise InputShapeError(f"dataset elements must be images (H,W[,C]) or batches; got {spec.shape}")
    scale = dataset_scale(ds, value_range)
    return ImageBatches(ds.map(lambda x: dataset_pixels(x, scale, size, method),
                               num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def batches(images, size: int, batch_size: int = 32, method: str = "bilinear", value_range: str = "auto") -> ImageBatches:
    """Dispatch any supported input to :class:`ImageBatches`."""
    if isinstance(images, tf.data.Dataset):
        return from_dataset(images, size, batch_size, method, value_range)
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
        return from_arrays(images, size, batch_size, method, value_range)
    raise InputShapeError(
        f"cannot read images from {type(images).__name__}: pass a numpy array, file paths, "
        "a directory or a tf.data.Dataset")


# ---- geometry for boxes and masks ------------------------------------------------------------
def letterbox(img, size: int, fill: float = 114.0, method: str = "bilinear"):
    """Resize one image (H, W, C) into a ``size`` x ``size`` canvas keeping its aspect ratio.

    Returns ``(canvas float32, scale, (pad_x, pad_y))``: a point (x, y) of the image lands on
    (x * scale + pad_x, y * scale + pad_y) of the canvas.
    """
    img = np.asarray(img, np.float32)
    h, w = img.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    pad_y, pad_x = (size - nh) // 2, (size - nw) // 2
    resized = tf.image.resize(img, (nh, nw), method=method).numpy()
    canvas = np.full((size, size, img.shape[2]), fill, np.float32)
    canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return canvas, scale, (pad_x, pad_y)


def unletterbox_boxes(boxes, scale: float, pad, image_shape=None) -> np.ndarray:
    """Boxes (n, 4) xyxy on a letterboxed canvas -> the original image's pixels (clipped to it)."""
    b = (np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)) / scale
    if image_shape is not None:
        h, w = image_shape[:2]
        b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
    return b


def letterbox_boxes(boxes, scale: float, pad) -> np.ndarray:
    """Boxes (n, 4) xyxy in image pixels -> the letterboxed canvas's pixels."""
    return np.asarray(boxes, np.float32).reshape(-1, 4) * scale + np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)


def resize_mask(mask, shape) -> np.ndarray:
    """A label map (H, W) resized to ``shape`` (h, w) by nearest neighbour: labels never blend."""
    m = np.asarray(mask)
    h, w = int(shape[0]), int(shape[1])
    if m.shape[:2] == (h, w):
        return m.copy()
    rows = np.minimum(((np.arange(h) + 0.5) * m.shape[0] / h).astype(np.int64), m.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * m.shape[1] / w).astype(np.int64), m.shape[1] - 1)
    return m[rows[:, None], cols[None, :]]


# ---- streams of images of any size: letterboxed canvases, and each image's own shape ---------
class _Item:
    __slots__ = ("source", "canvas", "scale", "pad", "shape")

    def __init__(self, source, canvas, scale, pad, shape):
        self.source, self.canvas, self.scale, self.pad, self.shape = source, canvas, scale, pad, shape


class letterboxed:  # noqa: N801  (used like a function)
    """Every input image as a letterboxed float32 canvas with its scale, padding and own shape.

    Same inputs as :func:`zoo.images.batches` (and the same pixel conversion); files are read
    one at a time as batches are drawn, unreadable ones skipped with a warning.
    """

    def __init__(self, images, size: int, value_range: str = "auto", fill: float = 114.0):
        self.size, self.value_range, self.fill, self.skipped = int(size), value_range, float(fill), []
        self.images = materialize(images)
        self.total = len(self.images) if hasattr(self.images, "__len__") else None

    def _items(self):
        x, size = self.images, self.size
        if isinstance(x, np.ndarray):  # one decision on the pixel scale, one resize per chunk
            a = as_image_array(x)
            scale = _scale_of([a], self.value_range)
            h, w = a.shape[1:3]
            for start in range(0, len(a), 64):
                px = to_pixels(a[start:start + 64], scale)
                canvases, s, pad = _letterbox_batch(px, size, self.fill)
                for i, c in enumerate(canvases):
                    yield _Item(start + i, c, s, pad, (h, w))
            return
        if isinstance(x, (str, Path)) or (isinstance(x, (list, tuple)) and x and
                                          all(isinstance(v, (str, Path)) for v in x)):
            files = _files(x)
            for f in files:
                try:
                    img = read_image(f)
                except ImageError as exc:
                    log.warning("skipping %s", exc)
                    self.skipped.append((str(f), str(exc)))
                    continue
                yield _Item(str(f), *letterbox(img, size, self.fill), img.shape[:2])
            return
        if isinstance(x, Image.Image):
            x = [x]
        if not isinstance(x, (list, tuple)):
            raise InputShapeError(f"cannot read images from {type(x).__name__}: pass a numpy array, file paths, "
                                  "a directory, PIL images or a tf.data.Dataset")
        items = [_as_image(pil_to_array(v) if isinstance(v, Image.Image) else np.asarray(v)) for v in x]
        if not items:
            raise InputShapeError("no images given (empty list)")
        scale = _scale_of(items, self.value_range)
        for i, a in enumerate(items):
            px = to_pixels(a, scale).numpy()
            yield _Item(i, *letterbox(px, size, self.fill), a.shape[:2])

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
            files = list_image_files(p)
            if not files:
                raise ImageError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {p}")
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
    return pixel_scale(dtype, top, value_range)


def _letterbox_batch(px, size: int, fill: float):
    """Same-sized images (B, H, W, 3) -> canvases, scale, pad (one resize for the batch)."""
    h, w = int(px.shape[1]), int(px.shape[2])
    if (h, w) == (size, size):
        return px.numpy(), 1.0, (0, 0)
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    pad_y, pad_x = (size - nh) // 2, (size - nw) // 2
    resized = tf.image.resize(px, (nh, nw)).numpy()
    canvas = np.full((len(resized), size, size, 3), fill, np.float32)
    canvas[:, pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return canvas, scale, (pad_x, pad_y)


def materialize(images):
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


def original_shape(images, source) -> tuple[int, int]:
    """(H, W) of the input that ``source`` (an index or a path) names."""
    if isinstance(source, (int, np.integer)):
        if isinstance(images, np.ndarray):
            a = as_image_array(images) if images.ndim != 4 else images
            return int(a.shape[1]), int(a.shape[2])
        x = images[int(source)] if isinstance(images, (list, tuple)) else images
        if isinstance(x, Image.Image):
            return x.size[1], x.size[0]
        return int(np.shape(x)[0]), int(np.shape(x)[1])
    with Image.open(source) as im:
        w, h = im.size
        if im.format == "JPEG" and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w  # EXIF rotation by 90 degrees, applied when read
    return h, w


class originals(letterboxed):  # noqa: N801  (used like a function)
    """Each input image at its own size (float32 RGB [0, 255]) with its source."""

    def __init__(self, images, value_range="auto"):
        super().__init__(images, 1, value_range)

    def __iter__(self):
        x = self.images
        if isinstance(x, np.ndarray):
            a = as_image_array(x)
            scale = _scale_of([a], self.value_range)
            for i in range(len(a)):
                yield i, to_pixels(a[i], scale).numpy()
            return
        if isinstance(x, (str, Path)) or (isinstance(x, (list, tuple)) and x and
                                          all(isinstance(v, (str, Path)) for v in x)):
            for f in _files(x):
                try:
                    yield str(f), read_image(f)
                except ImageError as exc:
                    log.warning("skipping %s", exc)
                    self.skipped.append((str(f), str(exc)))
            return
        if isinstance(x, Image.Image):
            x = [x]
        items = [_as_image(pil_to_array(v) if isinstance(v, Image.Image) else np.asarray(v)) for v in x]
        if not items:
            raise InputShapeError("no images given (empty list)")
        scale = _scale_of(items, self.value_range)
        for i, a in enumerate(items):
            yield i, to_pixels(a, scale).numpy()
