"""Pictures of detections: boxes with class colours and scores over the image, truth in green."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from zoo.tasks.detector.data import as_detection_data


PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def draw(image, detections: dict, truth=None, scale: int = 1) -> np.ndarray:
    """The image (array or file, as uint8) with ``detections`` drawn (class colours, "name score"), ground-truth
    boxes ``truth`` ((k, 4) array) thin green beneath; ``scale`` enlarges small images first."""
    from PIL import Image, ImageDraw

    from zoo.images import read_image, to_rgb

    img = read_image(image) if isinstance(image, (str, Path)) else to_rgb(image)
    img = np.clip(img, 0, 255).astype(np.uint8)
    im = Image.fromarray(img)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    lw = max(1, round(max(im.size) / 300))
    for b in (np.asarray(truth, np.float32).reshape(-1, 4) if truth is not None else []):
        d.rectangle([v * scale for v in b[:2]] + [v * scale - 1 for v in b[2:]], outline=(0, 255, 0), width=1)
    names = detections.get("names") or [str(c) for c in detections.get("labels", [])]
    for b, s, c, n in zip(detections["boxes"], detections["scores"], detections["labels"], names):
        color = PALETTE[int(c) % len(PALETTE)]
        x1, y1, x2, y2 = [float(v) * scale for v in b]
        d.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=color, width=lw)
        text = f"{n} {float(s):.2f}"
        tw, th = d.textbbox((0, 0), text)[2:]
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else y1 + 1
        d.rectangle([x1, ty, x1 + tw + 2, ty + th + 1], fill=color)
        d.text((x1 + 1, ty), text, fill=(0, 0, 0) if sum(color) > 400 else (255, 255, 255))
    return np.asarray(im)


def sheet(det, data, path, columns: int = 4, score_threshold: float = 0.3, scale: int = 2) -> Path:
    """A PNG grid of ``det``'s detections on ``data``'s images (truth in green)."""
    from PIL import Image

    from zoo.io import atomic_write

    data = as_detection_data(data)
    results = det.detect(data.images, score_threshold=score_threshold)
    tiles = [draw(img, r, t, scale) for img, r, t in zip(data.images, results, data.boxes)]
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * (h + 4), columns * (w + 4), 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * (h + 4):r * (h + 4) + t.shape[0], c * (w + 4):c * (w + 4) + t.shape[1]] = t
    buf = __import__("io").BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path
