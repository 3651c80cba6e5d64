"""Bundled sample photos: scikit-image's public-domain test images (offline, inside the wheel).

``variant`` adds a cropped, mirrored copy of a photo: a "same thing, different view" pair for
the Verify page.
"""
from __future__ import annotations

import io

import numpy as np

PHOTOS = {
    "chelsea": "Cat (Chelsea)",
    "coffee": "Cup of coffee",
    "astronaut": "Astronaut (Eileen Collins)",
    "rocket": "Rocket on the launch pad",
    "camera": "Cameraman (grayscale)",
}
VARIANTS = {f"{k}:crop": f"{v}, cropped and mirrored" for k, v in PHOTOS.items() if k in ("chelsea", "astronaut", "coffee")}
ALL = {**PHOTOS, **VARIANTS}


def label(key: str) -> str:
    return ALL[key]


def load(key: str) -> np.ndarray:
    """float32 RGB [0, 255] of a sample (``"chelsea"`` or ``"chelsea:crop"``)."""
    from skimage import data

    from zoo.images import to_rgb

    base, _, how = key.partition(":")
    if base not in PHOTOS:
        raise KeyError(f"unknown sample {key!r}; choose one of {sorted(ALL)}")
    img = to_rgb(getattr(data, base)())
    if how == "crop":
        h, w = img.shape[:2]
        img = img[int(0.08 * h):int(0.92 * h), int(0.1 * w):int(0.95 * w)][:, ::-1].copy()
    return img


def png_bytes(key: str) -> bytes:
    """A sample as PNG file bytes (for tests and downloads)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(load(key), 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
