"""zoo: pretrained Keras backbones with the metadata that drives their preprocessing."""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from zoo.errors import (  # noqa: E402
    ChecksumMismatchError, ImageError, InputShapeError, NoHeadError, SavedModelError, UnknownModelError,
    WeightsNotFoundError, ZooError,
)
from zoo.model import ZooModel, load  # noqa: E402
from zoo.registry import ModelEntry, get_entry, info, list_models, register  # noqa: E402

__all__ = [
    "ZooModel", "load", "list_models", "info", "get_entry", "register", "ModelEntry",
    "ZooError", "UnknownModelError", "WeightsNotFoundError", "ChecksumMismatchError",
    "ImageError", "InputShapeError", "NoHeadError", "SavedModelError",
]
