"""Pictures of segmentations: coloured classes over the image, a legend, per-class areas."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


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
