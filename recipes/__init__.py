"""Transfer-learning recipes written against zoo's public interface (submodules load on first use).

- ``recipes.fewshot``: k-NN / nearest-prototype few-shot classification, episode evaluation;
- ``recipes.verification``: cosine image verification, calibration, metric fine-tuning;
- ``recipes.scenes``: composed demo scenes with boxes and masks; ``recipes.detection``,
  ``recipes.segmentation``: their trainers and readers; ``recipes.image_text``: LiT, ConSE,
  text search; ``recipes.simclr``: self-supervised pre-training and the linear probe.
"""
import importlib

__all__ = ["fewshot", "verification", "detection", "segmentation", "image_text", "simclr", "scenes"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"recipes.{name}")
    raise AttributeError(f"module 'recipes' has no attribute {name!r}")
