"""Where weights live on this machine, and the digest they are checked by."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def zoo_home() -> Path:
    """``$ZOO_HOME`` (default ``~/.cache/zoo``): weights, compiled runtimes, the apps' caches."""
    return Path(os.environ.get("ZOO_HOME", Path.home() / ".cache" / "zoo")).expanduser()


def keras_cache() -> Path:
    base = os.environ.get("KERAS_HOME", Path.home() / ".keras")
    return Path(base).expanduser() / "models"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
