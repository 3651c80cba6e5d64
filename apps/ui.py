"""Input handling and error display shared by the pages.

Uploads are checked before anything decodes them: empty files, files over the upload limit and
images over ``MAX_PIXELS`` (decompression bombs) are refused from the header alone; the rest
go through ``zoo.images.read_image``, which converts grayscale, palette, RGBA and 16-bit images
to RGB and raises ``zoo.errors.ImageError`` for anything it cannot read. Every page body runs
inside :func:`guard`, so a failure is a short message on the page, never a traceback.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, UnidentifiedImageError

from zoo.errors import ImageError, ZooError

log = logging.getLogger("apps")

MAX_UPLOAD_MB = 20            # keep equal to server.maxUploadSize in apps/.streamlit/config.toml
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# A shared demo server decodes at most 40 MP per image (zoo.images allows 100 MP): an RGB
# float32 copy of a 40 MP photo is already about 480 MB.
MAX_PIXELS = 40_000_000
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm"]
UPLOAD_HELP = (f"PNG, JPEG, BMP, GIF, WebP, TIFF or PPM/PGM up to {MAX_UPLOAD_MB} MB and "
               f"{MAX_PIXELS // 1_000_000} megapixels. Grayscale, palette, RGBA and 16-bit images are "
               "converted to 8-bit RGB.")


def cache_dir(*parts: str) -> Path:
    """``$ZOO_HOME/apps/...`` (default ``~/.cache/zoo/apps``): the apps' disk cache."""
    from zoo.weights.resolve import zoo_home

    p = zoo_home().joinpath("apps", *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def guard(action: str):
    """Run a block; show a failure as ``st.error`` (the library's errors say what to do).

    Only ``Exception`` is caught: Streamlit's rerun/stop signals are BaseExceptions and pass.
    """
    try:
        yield
    except ZooError as exc:
        st.error(f"Could not {action}: {exc}", icon=":material/error:")
    except MemoryError:
        st.error(f"Could not {action}: out of memory. Try a smaller image or fewer items.",
                 icon=":material/error:")
    except Exception as exc:  # an unexpected failure: a message here, the traceback in the server log
        log.exception("could not %s", action)
        st.error(f"Could not {action}: {type(exc).__name__}: {exc}", icon=":material/error:")


@dataclass
class Loaded:
    """An uploaded image as float32 RGB in [0, 255] and what was done to it."""

    name: str
    image: np.ndarray
    note: str


def describe_header(data: bytes, name: str) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, (width, height)) from the header, without decoding the pixels."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return str(im.format), str(im.mode), im.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large to decode safely (decompression bomb?): {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is not an image that can be read ({', '.join(UPLOAD_TYPES)}): "
                         f"{type(exc).__name__}") from exc


def read_bytes(data: bytes, name: str = "upload") -> Loaded:
    """Check and decode one uploaded file; raises ``ImageError`` with a reason a user can act on."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes): choose an image file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB")
    fmt, mode, (w, h) = describe_header(data, name)
    if w < 1 or h < 1:
        raise ImageError(f"{name} is an empty image ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} MP (a tiny file that claims a huge image is a decompression bomb)")
    fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix.lower()[:8] or ".img", prefix="zoo-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        from zoo.images import read_image

        image = read_image(tmp)
    except ImageError as exc:  # its message names the temporary file: name the upload instead
        raise ImageError(str(exc).replace(tmp, name)) from exc
    finally:
        os.unlink(tmp)
    return Loaded(name, image, _note(fmt, mode, w, h))


def _note(fmt: str, mode: str, w: int, h: int) -> str:
    conv = {"RGBA": "alpha channel dropped", "LA": "grayscale, alpha dropped", "L": "grayscale -> RGB",
            "1": "1-bit -> RGB", "P": "palette -> RGB", "CMYK": "CMYK -> RGB", "I;16": "16-bit -> 8-bit RGB",
            "I;16B": "16-bit -> 8-bit RGB", "I;16L": "16-bit -> 8-bit RGB", "I": "32-bit -> 8-bit RGB"}.get(mode)
    return f"{fmt} {w}x{h} {mode}" + (f" ({conv})" if conv else "")


def read_upload(uploaded) -> Loaded | None:
    """An ``st.file_uploader`` value (or None) as a :class:`Loaded` image."""
    if uploaded is None:
        return None
    return read_bytes(uploaded.getvalue(), uploaded.name)


def read_uploads(files) -> tuple[list[Loaded], list[str]]:
    """(readable images, one error message per unreadable file)."""
    ok, bad = [], []
    for f in files or []:
        try:
            ok.append(read_upload(f))
        except ImageError as exc:
            bad.append(str(exc))
    return ok, bad


def short_reason(path, why) -> str:
    """``name: reason`` for a skipped file, without its folder."""
    name = Path(str(path)).name
    why = str(why).replace(str(path), name)
    return why if name in why else f"{name}: {why}"


def image_uploader(label: str, key: str, multiple: bool = False):
    return st.file_uploader(label, type=UPLOAD_TYPES, key=key, accept_multiple_files=multiple,
                            help=UPLOAD_HELP, max_upload_size=MAX_UPLOAD_MB)


def uploaded_image(key: str, prompt: str = "Choose an image file.", label: str = "Upload an image") -> Loaded | None:
    """One upload widget and its image: None (with ``prompt``) until a file is chosen, None with the
    reason shown when the file is not a readable image."""
    up = image_uploader(label, key=key)
    loaded = None
    with guard("read the upload"):
        loaded = read_upload(up)
    if up is None:
        st.info(prompt)
    return loaded


# ---- display helpers -------------------------------------------------------------------------
def to_uint8(image) -> np.ndarray:
    return np.clip(np.asarray(image), 0, 255).astype(np.uint8)


def display(image, max_side: int = 640) -> np.ndarray:
    """uint8 copy no larger than ``max_side`` (browsers need not receive 40 MP)."""
    a = to_uint8(image)
    h, w = a.shape[:2]
    if max(h, w) <= max_side:
        return a
    s = max_side / max(h, w)
    im = Image.fromarray(a.squeeze() if a.ndim == 3 and a.shape[-1] == 1 else a)
    return np.asarray(im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR))


def pixelated(small: np.ndarray, scale: int = 4) -> np.ndarray:
    """Nearest-neighbour enlargement for tiny images (Fashion-MNIST is 28x28)."""
    a = to_uint8(small)
    return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)


def grid(items, columns: int = 6):
    """Draw ``(image, caption)`` pairs in rows of ``columns``."""
    items = list(items)
    for start in range(0, len(items), columns):
        cols = st.columns(columns)
        for col, (img, caption) in zip(cols, items[start:start + columns]):
            with col:
                if img is None:
                    st.caption(f"(unreadable) {caption}")
                else:
                    st.image(img, caption=caption, width="stretch")


def zip_folder(folder, root: str | None = None) -> bytes:
    """A zip (in memory) of ``folder``, its files under ``root`` (default: the folder's name)."""
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, Path(root or folder.name) / p.relative_to(folder))
    return buf.getvalue()


def module_available(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
