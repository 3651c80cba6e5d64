"""Transfer-learning recipes written against zoo's public interface (submodules load on first use).

- ``recipes.fewshot``: k-NN / nearest-prototype few-shot classification, episode evaluation;
- ``recipes.verification``: cosine image verification, calibration, metric fine-tuning.
"""
import importlib

__all__ = ["fewshot", "verification"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"recipes.{name}")
    raise AttributeError(f"module 'recipes' has no attribute {name!r}")
