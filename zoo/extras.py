"""Optional parts of the zoo and the extra that installs each: a missing one is one clear line.

``pip install keras-vision-zoo`` installs the core; features that need more name their extra
(``pip install "keras-vision-zoo[apps]"``) in a :class:`~zoo.errors.MissingDependencyError`
instead of an ImportError traceback. pyproject.toml declares the extras.
"""
from __future__ import annotations

import importlib

from zoo.errors import MissingDependencyError

DISTRIBUTION = "keras-vision-zoo"
# importable module -> (the PyPI package that provides it, the extra that installs it)
EXTRAS = {
    "faiss": ("faiss-cpu", "cpu"),           # or faiss-gpu: the [gpu] extra
    "streamlit": ("streamlit", "apps"),
    "apache_beam": ("apache-beam", "beam"),
    "mtcnn": ("mtcnn", "faces"),
    "tf2onnx": ("tf2onnx", "onnx"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "keras_cv": ("keras-cv", "bench"),
    "huggingface_hub": ("huggingface_hub", "hub"),
}


def install_hint(module: str) -> str:
    package, extra = EXTRAS[module]
    hint = f'pip install "{DISTRIBUTION}[{extra}]"'
    if extra == "cpu":
        return hint + ' (or "[gpu]" on a machine with CUDA)'
    return f"{hint} (or: pip install {package})"


def require(module: str, feature: str):
    """Import ``module`` for ``feature`` ("similarity search", ...) or raise
    :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package, _ = EXTRAS[module]
        raise MissingDependencyError(f"{feature} needs the package {package}, which is not installed: "
                                     f"{install_hint(module)}") from exc
