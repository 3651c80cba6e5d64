"""``Task``: what every kind of model is, on top of the backbone it HOLDS.

A task holds a :class:`zoo.model.ZooModel` (composition: the backbone is ``task.backbone``) and
adds a head. Every kind gets from here (keras-hub's ``Task`` and preset folders are the model):

- identity through the backbone (``name``, ``entry``, ``input_size``, ``preprocessing``,
  ``fingerprint``, ``embed``/``features`` of the backbone it holds);
- inference through the one loop (:mod:`zoo.inference`): :meth:`_predict` with a stream and a
  postprocess hook, ``return_sources``, progress, ``value_range``;
- ``get_config`` / ``from_config`` and one folder layout for :meth:`save` / :meth:`load`::

      config.json          kind, backbone record, task config, labels, history, training record
                           (+ format, versions and the sha256 of every file: zoo.io)
      backbone.weights.h5  the backbone's weights, when training changed them (else the record
                           names the registry model and its fingerprint, checked on load)
      task.weights.h5      the head's Keras weights (keras.saving.save_weights skipping the backbone)
      <name>.npy           head arrays (a few-shot support set, a verifier's matrix...)

- an export signature (:meth:`export_signature`, used by :mod:`zoo.export` and the runtimes);
- training through the one trainer (:mod:`zoo.training`) when the kind has a ``training``
  spec, and registration with :func:`zoo.kinds.register_kind`.

Folders of earlier formats open through each kind's ``load_legacy``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from zoo import inference
from zoo import io as zio
from zoo.errors import RecipeError, SavedModelError

BACKBONE_WEIGHTS, TASK_WEIGHTS = "backbone.weights.h5", "task.weights.h5"
FORMAT_VERSION = 3


class Task:
    """A kind of model: a backbone (``ZooModel``, or None for embeddings-only use) and a head."""

    kind = "task"
    load_error = SavedModelError  # what a folder that cannot be read raises (a subclass per kind family)
    stores_backbone = True   # training changes the backbone: its weights are saved with the task
    training = None          # the kind's spec for zoo.training (None: the kind does not train a backbone)

    def __init__(self, backbone, class_names=()):
        self.backbone = backbone
        self.class_names = [str(c) for c in class_names]
        self.history: dict = {}
        self.training_config: dict = {}
        self.weights_source = None  # the folder it was loaded from or saved to (indexes record it)
        self._fns: dict = {}

    # ---- identity: the backbone's ----------------------------------------------------------------
    def _need_backbone(self):
        if self.backbone is None:
            raise RecipeError(f"this {self.kind} has no model (it takes precomputed embeddings): "
                              "create it with model='efficientnet_lite0' (or a ZooModel) to use images")
        return self.backbone

    @property
    def model(self):
        """The backbone (the name the embedding tasks have always used)."""
        return self.backbone

    name = property(lambda self: self._need_backbone().name)
    entry = property(lambda self: self._need_backbone().entry)
    input_size = property(lambda self: self._need_backbone().input_size)
    preprocessing = property(lambda self: self._need_backbone().preprocessing)
    feature_network = property(lambda self: self._need_backbone().feature_network)
    network = property(lambda self: self._need_backbone().network)
    pyramid_levels = property(lambda self: self._need_backbone().pyramid_levels)
    feature_dim = property(lambda self: self._need_backbone().feature_dim)
    embedding_model = property(lambda self: self._need_backbone().embedding_model)
    imagenet_model = None

    def fingerprint(self) -> dict:
        return self._need_backbone().fingerprint()

    def weights_digest(self) -> str:
        return self._need_backbone().weights_digest()

    def embed(self, images, **kwargs):
        """The backbone's pooled embedding (see ``ZooModel.embed``)."""
        return self._need_backbone().embed(images, **kwargs)

    def features(self, images, **kwargs):
        return self._need_backbone().features(images, **kwargs)

    @property
    def labels(self):
        return self.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def keras_model(self):
        """The Keras network the kind trains and saves (None for kinds whose head is arrays)."""
        return None

    def __repr__(self):
        what = f"{self.backbone.entry.full_name} {self.input_size}px" if self.backbone is not None else "embeddings"
        return f"<{type(self).__name__} on {what}, {self.num_classes} classes>"

    def on_pooled(self, head, name: str):
        """A Keras model: raw pixels -> normalisation -> backbone -> pooled embedding -> ``head``."""
        import keras

        from zoo.layers import Normalize

        raw = keras.Input((self.input_size, self.input_size, 3), name="pixels")
        p = self.preprocessing
        x = Normalize(p.mean, p.std, p.channel_order, name="normalize")(raw)
        return keras.Model(raw, head(self.feature_network(x)["pooled"]), name=f"{self.name}_{name}")

    # ---- inference: the one loop -------------------------------------------------------------------
    def _call(self, key, model=None, batch_size=None, flip_tta=False, post=None):
        """A traced call of ``model`` (default: the kind's network), cached per key."""
        k = (key, batch_size, flip_tta)
        if k not in self._fns:
            self._fns[k] = inference.traced(model if model is not None else self.keras_model, self.input_size,
                                            batch_size, flip_tta, post)
        return self._fns[k]

    def _predict(self, images, *, what: str, batch_size: int, value_range: str = "auto", progress: bool = True,
                 return_sources: bool = False, fn=None, stream=None, postprocess=None, pad_to=None, shapes=False):
        """Run the kind's network (or ``fn``) over ``images`` through :func:`zoo.inference.run`."""
        inference.check_batch_size(batch_size)
        if stream is None:
            stream = inference.resized(images, self.input_size, batch_size, self.preprocessing.interpolation,
                                       value_range, shapes=shapes)
        r = inference.run(fn or self._call(what), stream, postprocess=postprocess, what=what, progress=progress,
                          pad_to=pad_to)
        return r if return_sources else r.outputs

    def describe(self, output) -> dict:
        """One image's prediction as JSON-able facts (``zoo predict``): by default the three most
        probable classes of a probability vector."""
        p = np.asarray(output).reshape(-1)
        return {self.class_names[c]: round(float(p[c]), 4) for c in np.argsort(-p)[:3]}

    def predict_described(self, images, batch_size: int = 16):
        """``Embedded`` of :meth:`describe` per image (sources and skipped files as ``predict``)."""
        r = self.predict(images, batch_size=batch_size, return_sources=True)
        return r._replace(outputs=[self.describe(o) for o in r.outputs])

    # ---- training ---------------------------------------------------------------------------------
    @classmethod
    def train(cls, train, val=None, backbone="efficientnet_lite0", **kwargs):
        """Train this kind on ``train`` (validated on ``val``) with :func:`zoo.training.train`."""
        from zoo.training import train as fit

        return fit(cls, backbone, train, val, **kwargs)

    # ---- export -----------------------------------------------------------------------------------
    def export_signature(self, input_dtype: str = "uint8", **options):
        from zoo.export import ExportError

        raise ExportError(f"a {self.kind} cannot be exported yet")

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None, **options):
        """A serving graph on raw uint8 images, preprocessing included (see :mod:`zoo.export`)."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, **options)

    # ---- persistence ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The kind's own settings (JSON): what :meth:`from_config` needs besides backbone and arrays."""
        return {}

    def get_arrays(self) -> dict:
        """The head's numpy arrays, saved as ``<name>.npy`` (read back without pickle)."""
        return {}

    def extra_files(self) -> dict:
        """Other files the kind writes: ``{name: callable(path)}`` (e.g. a trained text tower's weights)."""
        return {}

    @classmethod
    def from_config(cls, backbone, config: dict, arrays: dict, class_names, path=None, **kwargs):
        """The task from what :meth:`save` wrote (``path``: its folder, for the kind's extra files)."""
        raise NotImplementedError

    def _stores_backbone(self) -> bool:
        """Whether the folder must hold the backbone's weights: the kind trains it, or it cannot be
        loaded again by name (random init, a weight file given by path) nor from a saved folder."""
        src = getattr(self.backbone, "weights_source", None)
        return bool(self.stores_backbone) or not (src == "imagenet" or _is_zoo_folder(src))

    def backbone_record(self) -> dict | None:
        """What the folder records of the backbone: registry name, tag, size, preprocessing,
        fingerprint; ``stored`` when its weights are in the folder, else the folder it came from."""
        b = self.backbone
        if b is None:
            return None
        src, stored = getattr(b, "weights_source", None), self._stores_backbone()
        return {"name": b.entry.name, "tag": b.entry.tag, "input_size": b.input_size,
                "preprocessing": b.preprocessing.to_dict(), "fingerprint": b.fingerprint(), "stored": stored,
                "source": src if not stored and _is_zoo_folder(src) else None}

    def save(self, path) -> Path:
        """Write the folder atomically (see the module docstring); ``zoo.load(path)`` reads it."""
        files: dict = {}
        if self.backbone is not None and self._stores_backbone():
            files[BACKBONE_WEIGHTS] = self.feature_network.save_weights
        if self.keras_model is not None:
            files[TASK_WEIGHTS] = lambda f: _save_task_weights(self, f)
        for name, a in self.get_arrays().items():
            files[f"{name}.npy"] = np.asarray(a)
        files.update(self.extra_files())
        config = {"format_version": FORMAT_VERSION, "backbone": self.backbone_record(), "task": self.get_config(),
                  "labels": list(self.class_names), "history": _jsonable(self.history),
                  "training": _jsonable(self.training_config)}
        out = zio.write_folder(path, self.kind, config, files, format_version=FORMAT_VERSION)
        self.weights_source = str(out)
        return out

    @classmethod
    def load(cls, path, config: dict | None = None, model=None, **kwargs):
        """Open a folder written by :meth:`save` (or an earlier format, through ``load_legacy``).

        ``model``: for kinds that record their backbone rather than store it, a model to use
        instead of re-loading it (checked against the recorded fingerprint)."""
        path = Path(path)
        config = config if config is not None else zio.read_config(path, cls.kind, cls.load_error)
        if config.get("format_version", 1) < FORMAT_VERSION:
            task = cls.load_legacy(path, config, model=model, **kwargs)
        else:
            zio.require(config, path, task=dict, labels=list)
            backbone = open_backbone(path, config.get("backbone"), model, cls.kind)
            arrays = {n[:-4]: np.load(path / n, allow_pickle=False) for n in config["files"] if n.endswith(".npy")}
            task = cls.from_config(backbone, config["task"], arrays, config["labels"], path=path, **kwargs)
            if task.keras_model is not None:
                _load_task_weights(task, path / TASK_WEIGHTS)
            task.history = config.get("history") or {}
            task.training_config = config.get("training") or {}
        task.weights_source = str(path)
        return task

    @classmethod
    def load_legacy(cls, path: Path, config: dict, model=None, **kwargs):
        """Folders of format v1/v2 for kinds with a Keras head: the base model named at the top of the
        config, the kind's fields beside it, one weights file of the whole network."""
        from zoo.model import WEIGHTS_FILE, ZooModel, entry_of

        if cls.keras_model.fget is Task.keras_model.fget or not (Path(path) / WEIGHTS_FILE).is_file():
            raise SavedModelError(f"{path} holds a {cls.kind} in format v{config.get('format_version', 1)}, which "
                                  "this zoo cannot open: save it again with the version that wrote it")
        zio.require(config, path, labels=list)
        task = cls.from_config(ZooModel(entry_of(config, path), config["input_size"], weights=None), config, {},
                               config["labels"])
        task.keras_model.load_weights(Path(path) / WEIGHTS_FILE)
        task.history = config.get("history") or {}
        task.training_config = config.get("training") or {}
        return task

    def head_digest(self) -> str:
        """A short hash of the head's weights and arrays (what the backbone fingerprint leaves out)."""
        h = hashlib.sha256()
        for v in (self.keras_model.weights if self.keras_model is not None else []):
            h.update(np.ascontiguousarray(np.asarray(v.numpy())).tobytes())
        for _, a in sorted(self.get_arrays().items()):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


# ---- the backbone part of a folder ---------------------------------------------------------------
def open_backbone(path: Path, record: dict | None, model=None, what: str = "this model",
                  weights_file: str = BACKBONE_WEIGHTS):
    """The backbone a folder records: rebuilt and loaded from ``weights_file`` when stored,
    else re-loaded by name (or from its source folder) and checked by fingerprint; ``model`` may
    stand in for a recorded one. None when the task was built on embeddings."""
    from zoo.tasks.common import load_recorded_model

    if record is None:
        return None
    if not record.get("stored"):
        return load_recorded_model(record, model, f"this {what}")
    from zoo.model import ZooModel, entry_of

    backbone = ZooModel(entry_of({"base_model": record["name"], "tag": record.get("tag"),
                                  "input_size": record["input_size"]}, path), record["input_size"], weights=None)
    backbone.feature_network.load_weights(path / weights_file)
    backbone.weights_source = str(path)
    return backbone


# ---- a task kept inside another's folder (a detector's crop classifier) ---------------------------
def nested_record(task) -> dict:
    """What a folder's config records of a task whose weights it holds as :func:`nested_files`."""
    return {"kind": task.kind, "backbone": {**task.backbone_record(), "stored": True, "source": None},
            "task": task.get_config(), "labels": list(task.class_names)}


def nested_files(task, prefix: str) -> dict:
    """The task's backbone and head weights as files of another task's folder, names prefixed."""
    return {prefix + BACKBONE_WEIGHTS: task.feature_network.save_weights,
            prefix + TASK_WEIGHTS: lambda f: _save_task_weights(task, f)}


def open_nested(path: Path, record: dict, prefix: str):
    """The task :func:`nested_record` and :func:`nested_files` wrote into the folder ``path``."""
    from zoo.kinds import get_kind

    zio.require(record, path, kind=str, backbone=dict, task=dict, labels=list)
    backbone = open_backbone(Path(path), {**record["backbone"], "stored": True}, weights_file=prefix + BACKBONE_WEIGHTS)
    task = get_kind(record["kind"]).from_config(backbone, record["task"], {}, record["labels"], path=path)
    _load_task_weights(task, Path(path) / (prefix + TASK_WEIGHTS))
    task.weights_source = str(path)
    return task


def _is_zoo_folder(path) -> bool:
    """A folder written by a zoo model's ``save`` (not, say, a Hugging Face checkpoint folder)."""
    import json

    f = Path(path) / zio.CONFIG_FILE if path else None
    try:
        return bool(f and f.is_file() and json.loads(f.read_text()).get("kind"))
    except (OSError, ValueError):
        return False


def backbone_layers(task) -> list:
    """Every layer of the backbone's feature network (what the task's weights file skips)."""
    out, todo = [], [task.feature_network]
    while todo:
        layer = todo.pop()
        out.append(layer)
        todo.extend(getattr(layer, "layers", []))
    return out


def _save_task_weights(task, f):
    import keras

    keras.saving.save_weights(task.keras_model, f, objects_to_skip=backbone_layers(task))


def _load_task_weights(task, f):
    import keras

    keras.saving.load_weights(task.keras_model, f, objects_to_skip=backbone_layers(task))


def _jsonable(d):
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, np.generic):
        return d.item()
    return d if isinstance(d, (str, int, float, bool, type(None))) else repr(d)
