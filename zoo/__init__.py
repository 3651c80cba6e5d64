"""zoo: pretrained Keras backbones with the metadata that drives their preprocessing.

``import zoo`` is light: TensorFlow and Keras load only when something needs them
(``zoo.load``, ``zoo.ZooModel``, ``zoo.data``...), through PEP 562 ``__getattr__``, so
``zoo list``/``zoo info``/``zoo --help`` start in well under a second.
"""
import importlib as _importlib
import importlib.util as _importlib_util
import os as _os
import re as _re
import sys as _sys
import tempfile as _tempfile

if not _os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # TensorFlow's C++ logs: warnings and errors only
    _os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

__version__ = "0.1.0"

from zoo.errors import (  # noqa: E402
    ChecksumMismatchError, DataError, ImageError, InputShapeError, NoHeadError, SavedModelError,
    UnknownModelError, WeightsFormatError, WeightsNotFoundError, ZooError,
)

_LAZY = {
    "ZooModel": "zoo.model", "load": "zoo.model", "Embedded": "zoo.model",
    "ModelEntry": "zoo.registry", "get_entry": "zoo.registry", "info": "zoo.registry",
    "list_models": "zoo.registry", "register": "zoo.registry",
}

__all__ = [
    "ZooModel", "load", "list_models", "info", "get_entry", "register", "ModelEntry", "Embedded",
    "ZooError", "UnknownModelError", "WeightsNotFoundError", "ChecksumMismatchError", "WeightsFormatError",
    "ImageError", "InputShapeError", "NoHeadError", "SavedModelError", "DataError",
]


def __getattr__(name):
    """Resolve the lazy names above and submodules (``zoo.data``, ``zoo.index``) on first use."""
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


# ---- a quiet TensorFlow start-up -------------------------------------------------------------
# TensorFlow's C++ libraries print start-up lines straight to file descriptor 2 before absl
# logging is initialised ("Could not find cuda drivers", "failed call to cuInit", factory
# re-registration), whatever TF_CPP_MIN_LOG_LEVEL says. When zoo is imported first, the first
# `import tensorflow` (from zoo or from anywhere) runs with fd 2 captured; the known start-up
# noise is dropped and everything else is written back. CUDA lines are kept on machines that
# have an NVIDIA device, where they explain why a GPU is not used. Nothing is hidden when
# TF_CPP_MIN_LOG_LEVEL < 2 (asked for verbose logs).
_NOISE = _re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|Attempting to register factory for plugin"
    r"|computation_placer\.cc.*already registered"
    r"|This TensorFlow binary is optimized|^To enable the following instructions"
    r"|port\.cc.*oneDNN custom operations are on"  # informational, printed twice by TF 2.21's loaders
)
_CUDA_NOISE = _re.compile(r"cudart_stub\.cc.*Could not find cuda drivers|failed call to cuInit"
                          r"|Could not find TensorRT|TF-TRT Warning")


def _has_nvidia_device() -> bool:
    try:
        return any(_re.fullmatch(r"nvidia\d+", n) for n in _os.listdir("/dev"))
    except OSError:
        return False


def _filter_startup(text: str) -> str:
    cuda = not _has_nvidia_device()
    keep = [line for line in text.splitlines(keepends=True)
            if not _NOISE.search(line) and not (cuda and _CUDA_NOISE.search(line))]
    return "".join(keep)


def _quietly(run):
    """Call ``run()`` with fd 2 captured, then write back all but TensorFlow's start-up noise."""
    try:
        level = int(_os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 2:
        return run()
    try:
        _sys.stderr.flush()
        saved = _os.dup(2)
        tmp = _tempfile.TemporaryFile()
        _os.dup2(tmp.fileno(), 2)
    except (OSError, ValueError, AttributeError):
        return run()
    try:
        return run()
    finally:
        try:
            _sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        _os.dup2(saved, 2)
        _os.close(saved)
        tmp.seek(0)
        rest = _filter_startup(tmp.read().decode("utf-8", "replace"))
        tmp.close()
        if rest:
            _os.write(2, rest.encode())


class _QuietLoader:
    """Wraps TensorFlow's loader: executes the package (and probes devices) inside :func:`_quietly`."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        _QuietTensorFlowFinder.uninstall()
        real = self._loader
        module.__loader__ = real
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = real

        def run():
            real.exec_module(module)
            try:  # the CUDA probe ("failed call to cuInit") happens on first device use
                module.config.list_physical_devices()
            except Exception:  # noqa: BLE001  (a probe only: never fail the import for it)
                pass
        _quietly(run)


class _QuietTensorFlowFinder:
    """A ``sys.meta_path`` finder that wraps the loader of ``tensorflow``; it steps aside once
    TensorFlow is executed (a mere ``find_spec`` probe leaves it in place)."""

    _busy = False

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "tensorflow" or cls._busy:
            return None
        cls._busy = True
        try:
            spec = _importlib_util.find_spec(name)  # the other finders' answer
        finally:
            cls._busy = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec

    @classmethod
    def uninstall(cls):
        if cls in _sys.meta_path:
            _sys.meta_path.remove(cls)


if "tensorflow" not in _sys.modules:
    _sys.meta_path.insert(0, _QuietTensorFlowFinder)
