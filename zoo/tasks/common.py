"""Pieces the embedding tasks share (few-shot, verifier, image-text): model resolution, embedding,
re-loading the backbone a folder records."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import RecipeError, SavedRecipeError


def resolve_model(model, input_size: int | None = None):
    """None, a ZooModel, or a registry name / saved-model folder for ``zoo.load``."""
    if model is None or (hasattr(model, "embed") and hasattr(model, "fingerprint")):
        return model
    return _zoo_load(model, input_size=input_size)


def is_embeddings(x) -> bool:
    """A 2-D float array is taken as precomputed embeddings (no image is 2-D in a batch)."""
    return isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.floating)


def embed(model, x, batch_size: int = 64, runtime: str = "auto") -> np.ndarray:
    """(N, D) float32 embeddings of images ``x`` (or ``x`` itself if already embeddings), run by
    :func:`zoo.runtimes.bulk_runtime` (TFLite on a CPU-only machine for jobs of 200 images or more)."""
    if is_embeddings(x):
        if model is not None and x.shape[1] != model.feature_dim:
            raise RecipeError(f"embeddings have {x.shape[1]} dimensions but {model.name} makes "
                              f"{model.feature_dim}: embed with the same model or pass images")
        return np.asarray(x, np.float32)
    if model is None:
        raise RecipeError("this object has no model, so it takes only precomputed embeddings (a 2-D float "
                          "array); pass model='efficientnet_lite0' (or a ZooModel) to use images")
    from zoo.runtimes import bulk_model

    n = len(x) if isinstance(x, (list, tuple, np.ndarray)) else None
    return bulk_model(model, runtime, n).embed(x, batch_size=batch_size, progress=False)


def model_record(model) -> dict | None:
    """What a saved task records about its backbone: name, input size, fingerprint, folder."""
    if model is None:
        return None
    src = getattr(model, "weights_source", None)
    return {"name": model.name, "input_size": model.input_size, "fingerprint": model.fingerprint(),
            "source": src if src and Path(src).is_dir() else None}


def load_recorded_model(rec: dict | None, model=None, what: str = "this recipe"):
    """The model a recipe was saved with: re-loaded, or ``model`` (checked against its fingerprint)."""
    if model is not None:
        model = resolve_model(model)
        if rec and model.fingerprint() != rec["fingerprint"]:
            raise RecipeError(f"{model.name} ({model.fingerprint()}) is not the model {what} was "
                              f"fitted with ({rec['fingerprint']})")
        return model
    if rec is None:
        return None
    name = f"{rec['name']}.{rec['tag']}" if rec.get("tag") else rec["name"]
    m = _zoo_load(rec["source"]) if rec.get("source") and Path(rec["source"]).is_dir() \
        else _zoo_load(name, input_size=rec["input_size"])
    if m.fingerprint() != rec["fingerprint"]:
        raise SavedRecipeError(f"the model loaded now ({m.fingerprint()}) differs from the one this was fitted "
                               f"with ({rec['fingerprint']}): pass that model to load(..., model=...) or refit")
    return m




def labelled_folder(root) -> tuple[list[str], list[str]]:
    """(file paths, labels) from a class-per-subfolder folder."""
    from zoo.images import list_image_files

    root = Path(root)
    if not root.is_dir():
        raise RecipeError(f"{root} is not a folder of class subfolders")
    files, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        found = list_image_files(sub)
        files += [str(f) for f in found]
        labels += [sub.name] * len(found)
    if not files:
        raise RecipeError(f"no images in subfolders of {root}: expected {root}/<class>/<image files>")
    return files, labels




def _zoo_load(*args, **kwargs):
    from zoo.model import load

    return load(*args, **kwargs)
