"""PNG figures: training curves and confusion matrices (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history: dict, path, title: str = "", metric: str | None = "accuracy") -> Path:
    """Loss and ``metric`` (None: loss only) per epoch for train and validation; phases are marked."""
    panels = ("loss", metric) if metric else ("loss",)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, metric in zip(axes[0], panels):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            if history.get(key):
                x = history.get(f"{key}_epochs")  # a score measured every few epochs only
                x = x if x and len(x) == len(history[key]) else epochs[: len(history[key])]
                ax.plot(x, history[key], style, label=key)
        for b in history.get("phase_starts", [])[1:]:
            ax.axvline(b + 0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def confusion_matrix(cm: np.ndarray, class_names, path, title: str = "") -> Path:
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {np.trace(cm) / max(cm.sum(), 1):.3f}")
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (folders made as needed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
