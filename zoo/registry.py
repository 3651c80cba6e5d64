"""The model registry: one :class:`ModelEntry` per pretrained backbone.

An entry is data (input size, normalisation, feature dim, weight file and checksum,
license, reference accuracy) plus a builder that makes the architecture. Everything
else (weight resolution, preprocessing, heads, pyramids) is generic, so adding a
model is one record in :mod:`zoo.catalog`.
"""
from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable

from zoo.errors import UnknownModelError


@dataclass(frozen=True)
class Preprocessing:
    """How raw RGB pixels in [0, 255] become network inputs: ``(x[..., order] - mean) / std``.

    ``in_model`` notes that the network normalises by itself (mean 0, std 1 here).
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    interpolation: str = "bilinear"
    in_model: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})

    def fingerprint(self, input_size: int) -> str:
        """Short hash of everything that shapes the network's input."""
        blob = json.dumps({**self.to_dict(), "input_size": input_size}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WeightFile:
    """One pretrained weight file and every place it may come from."""

    filename: str
    file_hash: str | None = None      # sha256 (64 hex) or, where upstream publishes only that, md5
    url: str | None = None
    package: str | None = None         # importable module that ships the file ...
    package_path: str | None = None    # ... at this path inside it
    format: str = "keras_h5"           # "keras_h5" | "torch_legacy"

    @property
    def hash_algorithm(self) -> str | None:
        if not self.file_hash:
            return None
        return "sha256" if len(self.file_hash) == 64 else "md5"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable = field(repr=False, compare=False)  # (input_shape, include_top) -> keras.Model
    input_size: int
    preprocessing: Preprocessing
    feature_dim: int
    params_m: float
    gmacs: float                       # multiply-adds at input_size (what papers often call FLOPs)
    top1: float | None                 # reference ImageNet-1k top-1 (%), from the weights' publisher
    license: str
    weights: WeightFile | None
    tag: str = "imagenet"
    block_pattern: str | None = None   # regex of layer names that end a block (pyramid taps)
    min_input_size: int = 32
    source: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name}.{self.tag}"

    @property
    def gflops(self) -> float:
        return 2 * self.gmacs

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "name", "tag", "family", "input_size", "feature_dim", "params_m", "gmacs",
            "top1", "license", "source", "min_input_size")}
        d["full_name"] = self.full_name
        d["gflops"] = round(self.gflops, 2)
        d["preprocessing"] = self.preprocessing.to_dict()
        d["weights"] = asdict(self.weights) if self.weights else None
        return d


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _ensure_catalog():
    if not _REGISTRY:
        from zoo import catalog  # noqa: F401  (registers the built-in entries)


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell-style wildcard, e.g. ``"resnet*"``.

    ``pretrained=True`` keeps only entries whose weights can be loaded here and now.
    """
    _ensure_catalog()
    names = sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern.split(".")[0]))
    if pretrained:
        from zoo.weights.resolve import weights_available

        names = [n for n in names if weights_available(_REGISTRY[n])]
    return names


def get_entry(name: str) -> ModelEntry:
    """Look an entry up by name (``resnet50`` or ``resnet50.imagenet``)."""
    _ensure_catalog()
    base, _, tag = name.partition(".")
    key = base.lower().replace("-", "_")
    entry = _REGISTRY.get(key)
    if entry is None or (tag and tag != entry.tag):
        close = difflib.get_close_matches(key, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Run `zoo list` or zoo.list_models() to see all "
            f"{len(_REGISTRY)} names, or pass a folder written by model.save()."
        )
    return entry


def info(name: str) -> dict:
    """The entry's metadata as a plain dict."""
    return get_entry(name).to_dict()
