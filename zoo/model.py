"""``ZooModel``: a registry backbone with its preprocessing; every task holds one.

All inference goes through :mod:`zoo.inference`: compiled ``tf.function`` calls on batches from
a parallel input pipeline (measured here about 2x faster than ``model.predict``).
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
from pathlib import Path

import keras
import numpy as np

from zoo import inference
from zoo import io as zio
from zoo.backbone import build_network, find_taps
from zoo.errors import NoHeadError, SavedModelError, UnknownModelError, ZooError
from zoo.inference import Embedded, Progress, check_batch_size  # noqa: F401  (public here too)
from zoo.labels import check_top_k, imagenet_labels, top_classes
from zoo.layers import Normalize
from zoo.registry import ModelEntry, Preprocessing, get_entry
from zoo.kinds import get_kind, named_model, named_models, register_kind

log = logging.getLogger(__name__)
WEIGHTS_FILE = "model.weights.h5"
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


@register_kind("backbone")
class ZooModel:
    """A registry backbone: pooled embedding, P2..P5 pyramid and (where it has one) ImageNet classes."""

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
        pooled = taps.get("pooled")  # entries that define their embedding (ViTs: the class token)
        if pooled is None:
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
        k = (key, flip_tta)
        if k not in self._fns:
            self._fns[k] = inference.traced(model, self.input_size, flip_tta=flip_tta)
        return self._fns[k]

    def _run(self, key, model, images, batch_size, progress=True, flip_tta=False, value_range="auto") -> Embedded:
        check_batch_size(batch_size)
        stream = inference.resized(images, self.input_size, batch_size, self.preprocessing.interpolation,
                                   value_range)
        return inference.run(self._fn(key, model, flip_tta), stream, what=key, progress=progress)

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
        check_top_k(top_k)  # a bad top_k fails before any work
        r = self.predict(images, batch_size, return_sources=True, **kwargs)
        out = top_classes(r.outputs, self.labels, top_k)
        return r._replace(outputs=out) if return_sources else out

    # ---- training -------------------------------------------------------------------------
    def finetune(self, train, val=None, *, kind: str | None = None, multilabel: bool = False, **kwargs):
        """Train a task on this backbone: head first, then unfreeze (:func:`zoo.training.train`).

        ``kind``: "classifier" (default), "multilabel" (also ``multilabel=True``: labels are an
        (N, C) 0/1 array or lists of class names), "detector", "segmenter" or any registered kind
        with a training spec. Keyword arguments are :class:`zoo.training.TrainConfig`'s and the kind's.
        """
        kind = kind or ("multilabel" if multilabel else "classifier")
        return get_kind(kind).train(train, val, backbone=self, **kwargs)

    def copy(self, input_size: int | None = None, precision: str | None = None) -> "ZooModel":
        """The same backbone (and weights, trained or not) as a new model, at another input size or
        precision. Weights do not depend on the size, but for ViT position tables, which are
        resampled (:mod:`zoo.architectures.vit`)."""
        precision = precision or self.precision
        with dtype_policy(PRECISIONS[precision]):
            other = ZooModel(self.entry, input_size or self.input_size, weights=None, precision=precision)
        hub = getattr(other.network, "zoo_backbone", None)
        if hub is not None and getattr(self.entry.builder, "is_vit", False):
            from zoo.architectures.vit import copy_weights, prefix_tokens

            copy_weights(self.feature_network.weights, other.feature_network.weights,
                         prefix_tokens(getattr(self.entry.builder, "family", None), hub))
        else:
            other.feature_network.set_weights(self.feature_network.get_weights())
        return other  # weights_source None: a copy is saved with its weights, not re-loaded by name

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None, **options):
        """A serving graph on raw uint8 images, preprocessing included (see :mod:`zoo.export`)."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, **options)

    def export_signature(self, input_dtype: str = "uint8"):
        """``embedding`` (N, D) and, with the ImageNet head, ``probabilities`` (N, 1000)."""
        from zoo.export import Signature, backbone_trunk, model_metadata, pixel_input

        raw, x = pixel_input(self.input_size, input_dtype)
        model = keras.Model(raw, backbone_trunk(self)(x), name=f"{self.name}_export")
        meta = model_metadata(self, "backbone")
        if "probabilities" in model.output:
            meta["labels"] = list(self.labels)
        return Signature(model, meta)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write a folder (config.json + model.weights.h5, checksummed) atomically; ``zoo.load`` reads it."""
        config = {"base_model": self.entry.name, "tag": self.entry.tag, "input_size": self.input_size,
                  "preprocessing": self.preprocessing.to_dict()}
        return zio.write_folder(path, self.kind, config, {WEIGHTS_FILE: self.keras_model.save_weights})

    @classmethod
    def load(cls, path, cfg: dict, **_) -> "ZooModel":
        """Open a backbone folder written by :meth:`save`."""
        model = ZooModel(entry_of(cfg, path), cfg["input_size"], weights=None)
        model.keras_model.load_weights(Path(path) / WEIGHTS_FILE)
        model.weights_source = str(path)
        return model


def entry_of(cfg: dict, path) -> ModelEntry:
    zio.require(cfg, path, base_model=str, input_size=int)
    tag = cfg.get("tag")
    return get_entry(f"{cfg['base_model']}.{tag}" if isinstance(tag, str) and tag else cfg["base_model"])


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
    else:
        try:
            entry = get_entry(str(name_or_path))
        except UnknownModelError as exc:
            named = named_model(str(name_or_path))
            if named is not None:
                return named(**kwargs)
            close = difflib.get_close_matches(str(name_or_path), named_models(), n=3, cutoff=0.6)
            if close:
                raise UnknownModelError(f"unknown model {str(name_or_path)!r}. Did you mean: {', '.join(close)}? "
                                        "(a named model, not a registry backbone)") from None
            raise exc from None
        model = ZooModel(entry, input_size, weights, precision=precision)
    if runtime != "tensorflow":
        from zoo.runtimes import compile_model

        model = compile_model(model, runtime)
    return model

