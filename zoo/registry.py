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


_REGISTRY: dict[str, ModelEntry] = {}   # "name.tag" -> entry
_DEFAULT_TAG: dict[str, str] = {}       # name -> the tag a bare name means


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(entry: ModelEntry, default: bool | None = None) -> ModelEntry:
    """Add an entry under ``name.tag`` (e.g. ``efficientnet_lite0.simclr_fmnist``).

    The first entry of a name is what the bare name means; ``default=True`` makes this one so.
    """
    full = _key(entry.full_name)
    if full in _REGISTRY:
        raise ValueError(f"model {entry.full_name!r} is registered twice")
    _REGISTRY[full] = entry
    name = _key(entry.name)
    if default or name not in _DEFAULT_TAG:
        _DEFAULT_TAG[name] = entry.tag
    return entry


def unregister(full_name: str):
    """Remove ``name.tag`` (e.g. a custom entry in a test); the bare name falls back to another tag."""
    entry = get_entry(full_name)
    del _REGISTRY[_key(entry.full_name)]
    name = _key(entry.name)
    if _DEFAULT_TAG.get(name) == entry.tag:
        rest = [e.tag for e in _REGISTRY.values() if _key(e.name) == name]
        if rest:
            _DEFAULT_TAG[name] = rest[0]
        else:
            del _DEFAULT_TAG[name]


def list_models(pattern: str = "*", pretrained: bool = False, tags: bool = False) -> list[str]:
    """Registered names matching a shell-style wildcard, e.g. ``"resnet*"``.

    Bare names by default; ``tags=True`` (or a pattern with a dot, ``"*.imagenet"``) lists
    ``name.tag`` for every entry. ``pretrained=True`` keeps only entries whose weights can be
    loaded here and now.
    """
    pattern = _key(pattern)
    if tags or "." in pattern:
        pat = pattern if "." in pattern else pattern + ".*"
        entries = [e for k, e in sorted(_REGISTRY.items()) if fnmatch.fnmatch(k, pat)]
        label = lambda e: e.full_name  # noqa: E731
    else:
        entries = [_REGISTRY[f"{n}.{t}"] for n, t in sorted(_DEFAULT_TAG.items()) if fnmatch.fnmatch(n, pattern)]
        label = lambda e: e.name  # noqa: E731
    if pretrained:
        from zoo.weights.resolve import weights_available

        entries = [e for e in entries if weights_available(e)]
    return [label(e) for e in entries]


def get_entry(name: str) -> ModelEntry:
    """Look an entry up by ``name`` (its default tag) or ``name.tag``."""
    key = _key(str(name))
    base, _, tag = key.partition(".")
    entry = _REGISTRY.get(f"{base}.{tag or _DEFAULT_TAG.get(base, '')}")
    if entry is None:
        names = list(_DEFAULT_TAG) + list(_REGISTRY)
        close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        if base in _DEFAULT_TAG:
            tags = sorted(e.tag for e in _REGISTRY.values() if _key(e.name) == base)
            hint = f" {base} has the tags: {', '.join(tags)}."
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Run `zoo list` or zoo.list_models() to see all "
            f"{len(_DEFAULT_TAG)} names, or pass a folder written by model.save()."
        )
    return entry


def info(name: str) -> dict:
    """The entry's metadata as a plain dict."""
    return get_entry(name).to_dict()


from zoo import catalog  # noqa: E402,F401  (registers the built-in entries, eagerly)
