"""What a registry entry is: a model's metadata (preprocessing, weight file, cost, license) and the
builder of its architecture. Plain data: :mod:`zoo.registry` keeps the entries, :mod:`zoo.catalog`
lists the built-in ones, :mod:`zoo.weights` finds their weight files."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable


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
