"""``ZooModel``: a backbone (or a classifier fine-tuned from one) with its preprocessing.

All inference goes through compiled ``tf.function`` calls on fixed-size batches from a
parallel input pipeline (measured here about 2x faster than ``model.predict``).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from zoo import images as zimages
from zoo import io as zio
from zoo.backbone import build_network, find_taps
from zoo.errors import InputShapeError, NoHeadError, SavedModelError, ZooError
from zoo.labels import imagenet_labels
from zoo.layers import Normalize
from zoo.registry import ModelEntry, Preprocessing, get_entry

log = logging.getLogger(__name__)
WEIGHTS_FILE = "model.weights.h5"


class Embedded(NamedTuple):
    """What one call read: its outputs, the source of each row (path or index), and the
    ``(source, reason)`` of every input that was skipped."""

    outputs: object
    sources: list
    skipped: list


PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build Keras layers under a dtype policy, restoring the previous one after."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


class Progress:
    """A terminal progress line with images/s and ETA (quiet when not a TTY or few batches)."""

    def __init__(self, total: int | None, what: str, enabled: bool = True):
        self.total, self.what, self.done = total, what, 0
        self.enabled = enabled and (total is None or total > 1)
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, n: int):
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.5 and (self.total is None or self.done < self.total)):
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = f", ETA {(self.total - self.done) / rate:.0f}s" if self.total and rate > 0 else ""
        of = f"/{self.total}" if self.total else ""
        print(f"\r{self.what}: {self.done}{of} images, {rate:.1f} img/s{eta}   ", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.enabled and self.done:
            print(file=sys.stderr, flush=True)


class ZooModel:
    """A registry backbone, optionally with a trained classification head."""

    def __init__(self, entry: ModelEntry, input_size: int | None = None, weights="imagenet",
                 *, precision: str = "float32", _network=None):
        """``precision="bfloat16"`` computes in bfloat16 (weights stay float32): faster for
        ResNet-style nets on CPUs with AMX, slower for depthwise nets (see bench/embed.py)."""
        if precision not in PRECISIONS:
            raise ZooError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        with dtype_policy(PRECISIONS[precision]):
            self._build(entry, input_size, weights, _network)

    def _build(self, entry, input_size, weights, _network):
        self.entry = entry
        self.input_size = int(input_size or entry.input_size)
        self.preprocessing: Preprocessing = entry.preprocessing
        self.weights_source = weights if isinstance(weights, str) else (None if weights is None else str(weights))
        if _network is None:
            _network, has_top = build_network(entry, self.input_size, weights)
        else:
            has_top = any(l.name == "predictions" for l in _network.layers[-3:])
        self.network = _network
        taps = find_taps(_network, entry, self.input_size)
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(taps["body"])
        self.pyramid_levels = [k for k in ("P2", "P3", "P4", "P5") if k in taps]
        self.feature_network = keras.Model(_network.input, {"pooled": pooled, **{k: taps[k] for k in self.pyramid_levels}},
                                           name=f"{entry.name}_features")
        raw = keras.Input((self.input_size, self.input_size, 3), name="pixels")
        p = self.preprocessing
        x = Normalize(p.mean, p.std, p.channel_order, name="normalize")(raw)
        feats = self.feature_network(x)
        self.embedding_model = keras.Model(raw, feats["pooled"], name=f"{entry.name}_embed")
        self.pyramid_model = keras.Model(raw, {k: feats[k] for k in self.pyramid_levels}, name=f"{entry.name}_pyramid")
        self.imagenet_model = keras.Model(raw, _network(x), name=f"{entry.name}_imagenet") if has_top else None
        self._fns = {}

    # ---- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def feature_dim(self) -> int:
        return int(self.embedding_model.output.shape[-1])

    @property
    def keras_model(self) -> keras.Model:
        """The model whose weights ``save`` writes."""
        return self.imagenet_model or self.embedding_model

    @property
    def labels(self) -> list[str] | None:
        return imagenet_labels() if self.imagenet_model is not None else None

    def fingerprint(self) -> dict:
        """What an embedding depends on: model, weights and preprocessing hashes."""
        return {
            "model": self.entry.full_name,
            "weights": self.weights_digest(),
            "preprocessing": self.preprocessing.fingerprint(self.input_size),
        }

    def weights_digest(self) -> str:
        if getattr(self, "_weights_digest", None) is None:
            h = hashlib.sha256()
            for w in self.embedding_model.weights:
                h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
            self._weights_digest = h.hexdigest()[:16]
        return self._weights_digest

    def __repr__(self):
        return f"<ZooModel {self.entry.full_name} {self.input_size}px dim={self.feature_dim}>"

    # ---- inference ------------------------------------------------------------------------
    def _fn(self, key: str, model: keras.Model, flip_tta: bool = False):
        """A traced inference call of ``model``; ``flip_tta`` averages it with the mirrored image's."""
        key = key + "+flip" if flip_tta else key
        if key not in self._fns:
            spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)

            def call(x):
                y = model(x, training=False)
                return 0.5 * (y + model(tf.reverse(x, [2]), training=False)) if flip_tta else y
            self._fns[key] = tf.function(call, input_signature=[spec])
        return self._fns[key]

    def _run(self, key, model, images, batch_size, progress=True, flip_tta=False, value_range="auto") -> Embedded:
        check_batch_size(batch_size)
        src = zimages.batches(images, self.input_size, batch_size, self.preprocessing.interpolation,
                              value_range=value_range)
        fn = self._fn(key, model, flip_tta)
        total = len(src.sources) or None
        bar = Progress(total, key, progress)
        outs, seen = [], []
        try:
            for batch in src.dataset:
                if isinstance(batch, tuple):
                    idx, batch = batch
                    seen.append(idx.numpy())
                y = fn(batch)
                outs.append(tf.nest.map_structure(lambda t: t.numpy(), y))
                bar.update(int(batch.shape[0]))
        except tf.errors.InvalidArgumentError as exc:
            if "NaN or infinite" in str(exc):
                raise InputShapeError("images contain NaN or infinite values") from None
            raise
        finally:
            bar.close()
        sources, skipped = list(src.sources), list(src.skipped)
        if seen:
            got = np.concatenate(seen)
            lost = sorted(set(range(len(sources))) - set(got.tolist()))
            for i in lost:
                skipped.append((sources[i], "decode failed"))
                log.warning("skipping %s: could not decode", sources[i])
            sources = [sources[i] for i in got]
        if not outs:
            first = f": {skipped[0][0]} ({skipped[0][1]})" if skipped else ""
            raise zimages.ImageError(f"none of the {len(src.sources) + len(src.skipped)} images could be "
                                     f"read{first}")
        return Embedded(tf.nest.map_structure(lambda *xs: np.concatenate(xs), *outs), sources, skipped)

    def embed(self, images, batch_size: int = 64, normalize: bool = False, progress: bool = True,
              return_sources: bool = False, value_range: str = "auto"):
        """(N, D) float32 pooled features; L2-normalised when ``normalize``.

        Unreadable files are skipped with a warning; ``return_sources=True`` returns an
        :class:`Embedded` ``(vectors, sources, skipped)`` saying which input each row is.
        ``value_range``: how float pixels are read (see :func:`zoo.images.pixel_scale`).
        """
        r = self._run("embed", self.embedding_model, images, batch_size, progress, value_range=value_range)
        e = r.outputs.astype(np.float32)
        if normalize:
            e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return r._replace(outputs=e) if return_sources else e

    def features(self, images, batch_size: int = 16, value_range: str = "auto") -> dict[str, np.ndarray]:
        """Multi-scale feature maps ``{"P2": (N,H/4,W/4,C), ..., "P5": (N,H/32,W/32,C)}``."""
        return self._run("features", self.pyramid_model, images, batch_size, value_range=value_range).outputs

    def predict(self, images, batch_size: int = 64, return_sources: bool = False, value_range: str = "auto"):
        """(N, classes) probabilities of the model's classification head."""
        if self.imagenet_model is None:
            raise NoHeadError(f"{self.name} at {self.input_size}px has no classification head; "
                              f"load it at {self.entry.input_size}px or fine-tune one")
        r = self._run("predict", self.imagenet_model, images, batch_size, value_range=value_range)
        return r if return_sources else r.outputs

    def classify(self, images, top_k: int = 5, batch_size: int = 64, return_sources: bool = False, **kwargs):
        """Per image, the ``top_k`` (class index, label, probability), best first."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise InputShapeError(f"top_k must be a positive integer; got {top_k!r}")
        r = self.predict(images, batch_size, return_sources=True, **kwargs)
        probs, labels = r.outputs, self.labels
        top = np.argsort(-probs, axis=1)[:, :top_k]
        out = [[(int(c), labels[c], float(p[c])) for c in row] for row, p in zip(top, probs)]
        return r._replace(outputs=out) if return_sources else out

    # ---- training -------------------------------------------------------------------------
    def finetune(self, train, val=None, **kwargs):
        """Fine-tune a new classifier on ``train``: head first, then unfreeze. See zoo.training."""
        from zoo.training import finetune

        return finetune(self, train, val, **kwargs)

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None, **options):
        """A serving graph on raw uint8 images, preprocessing included (see :mod:`zoo.export`)."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, **options)

    # ---- persistence ----------------------------------------------------------------------
    kind = "backbone"

    def _config(self) -> dict:
        """The kind's own fields of config.json."""
        return {}

    def save(self, path) -> Path:
        """Write a folder (config.json + model.weights.h5, checksummed) atomically; ``zoo.load`` reads it."""
        config = {"base_model": self.entry.name, "tag": self.entry.tag, "input_size": self.input_size,
                  "preprocessing": self.preprocessing.to_dict(), **self._config()}
        return zio.write_folder(path, self.kind, config, {WEIGHTS_FILE: self.keras_model.save_weights})

    @classmethod
    def _from_folder(cls, path: Path, cfg: dict) -> "ZooModel":
        """Build the kind's model from its config (weights are loaded by :func:`open_folder`)."""
        return ZooModel(entry_of(cfg, path), cfg["input_size"], weights=None)


def entry_of(cfg: dict, path) -> ModelEntry:
    zio.require(cfg, path, base_model=str, input_size=int)
    tag = cfg.get("tag")
    return get_entry(f"{cfg['base_model']}.{tag}" if isinstance(tag, str) and tag else cfg["base_model"])


def open_folder(cls):
    """A loader for :func:`zoo.io.register_kind` that builds ``cls`` and loads its weights."""
    def loader(path: Path, cfg: dict, **_):
        model = cls._from_folder(path, cfg)
        model.keras_model.load_weights(path / WEIGHTS_FILE)
        model.weights_source = str(path)
        return model
    return loader


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputShapeError(f"batch_size must be a positive integer; got {batch_size!r}")


replace_dir = zio.replace_dir  # kept for callers of the earlier name


def load(name_or_path, weights="imagenet", input_size: int | None = None, precision: str = "float32",
         runtime: str = "tensorflow", **kwargs):
    """Load a registry model by name (``"efficientnet_lite0"``, ``"resnet50.imagenet"``) or any
    folder written by ``save`` (a classifier, a few-shot head, a verifier, ...).

    ``weights``: "imagenet" (default, verified by checksum), a weight-file path, or None for
    random init. ``input_size`` overrides the entry's resolution; ``precision`` may be
    "bfloat16" (CPU with AMX) or "float16" (GPU). ``runtime="tflite"|"onnxruntime"`` runs
    ``embed``/``predict``/``classify`` through that runtime (converted once, cached; see
    :mod:`zoo.runtimes` and bench/runtimes.py).
    """
    p = Path(str(name_or_path)).expanduser()
    if p.is_dir():
        model = zio.load_folder(p, **kwargs)
    elif isinstance(name_or_path, (os.PathLike,)) or str(name_or_path).endswith(("/", os.sep)):
        raise SavedModelError(f"{p} is not a model folder")
    elif str(name_or_path) in zio.NAMED_MODELS:
        import importlib

        return importlib.import_module(zio.NAMED_MODELS[str(name_or_path)]).load_named(str(name_or_path), **kwargs)
    else:
        model = ZooModel(get_entry(str(name_or_path)), input_size, weights, precision=precision)
    if runtime != "tensorflow":
        from zoo.runtimes import compile_model

        model = compile_model(model, runtime)
    return model


zio.register_kind("backbone", open_folder(ZooModel))
