"""Fine-tuning: a new head on frozen features, then unfreeze and train on, BatchNorm frozen.

The head phase trains on cached embeddings (the frozen body is run once, not every
epoch); the second phase trains the whole network (or its last N stages) with augmentation,
AdamW, a cosine learning-rate decay with warm-up and label smoothing, keeping the best
validation weights. Works under any ``tf.distribute`` strategy.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import data as zdata
from zoo import plots
from zoo.augment import build_augmentation
from zoo.errors import DataError
from zoo.layers import Normalize
from zoo.model import PRECISIONS, Progress, ZooModel, dtype_policy

log = logging.getLogger(__name__)


class FineTunedClassifier(ZooModel):
    """A backbone with a trained classification head and its class names."""

    def __init__(self, backbone: ZooModel, class_names, dropout: float = 0.2):
        self.__dict__.update({k: v for k, v in backbone.__dict__.items() if k != "_fns"})
        self._fns = {}
        self.class_names = list(class_names)
        self.dropout = dropout
        self.history: dict = {}
        raw = keras.Input((self.input_size, self.input_size, 3), name="pixels")
        p = self.preprocessing
        x = Normalize(p.mean, p.std, p.channel_order, name="normalize")(raw)
        pooled = self.feature_network(x)["pooled"]
        self.head = keras.Sequential([
            keras.layers.Dropout(dropout, name="head_dropout"),
            keras.layers.Dense(len(self.class_names), activation="softmax", dtype="float32", name="head_dense"),
        ], name="head")
        self.classifier_model = keras.Model(raw, self.head(pooled), name=f"{self.name}_classifier")
        self.imagenet_model = None

    @property
    def keras_model(self):
        return self.classifier_model

    @property
    def labels(self):
        return self.class_names

    def predict(self, images, batch_size: int = 64, tta: bool = False) -> np.ndarray:
        """Class probabilities (N, classes); ``tta=True`` averages them with the mirrored images'."""
        return self._run("predict", self.classifier_model, images, batch_size, flip_tta=tta)

    def evaluate(self, test, batch_size: int = 64, plot: str | Path | None = None, tta: bool = False) -> dict:
        """Accuracy, loss and confusion matrix on labelled data (optionally a PNG of the matrix).

        ``tta=True``: horizontal-flip test-time augmentation (two forward passes per image).
        """
        test = as_labeled(test, self.class_names)
        fn = self._fn("predict", self.classifier_model, flip_tta=tta)
        probs, ys = [], []
        bar = Progress(len(test) if hasattr(test, "__len__") else None, "evaluate")
        for x, y in test.batches(self.input_size, batch_size):
            probs.append(fn(x).numpy())
            ys.append(y.numpy())
            bar.update(len(ys[-1]))
        bar.close()
        probs, ys = np.concatenate(probs), np.concatenate(ys)
        pred = probs.argmax(1)
        n = len(self.class_names)
        cm = np.bincount(ys * n + pred, minlength=n * n).reshape(n, n)
        loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(ys)), ys], 1e-12))))
        result = {"accuracy": float((pred == ys).mean()), "loss": loss, "n": int(len(ys)), "confusion_matrix": cm}
        if plot:
            plots.confusion_matrix(cm, self.class_names, plot)
        return result

    def _config(self) -> dict:
        return {"kind": "classifier", "labels": self.class_names, "head": {"dropout": self.dropout},
                "history": {k: [float(v) for v in vs] for k, vs in self.history.items()}}

    @classmethod
    def from_config(cls, entry, cfg) -> "FineTunedClassifier":
        backbone = ZooModel(entry, cfg["input_size"], weights=None)
        clf = cls(backbone, cfg["labels"], cfg.get("head", {}).get("dropout", 0.2))
        clf.history = cfg.get("history", {})
        return clf


@dataclass
class FinetuneConfig:
    epochs: int = 3                  # epochs with the backbone unfrozen (0: head only)
    head_epochs: int = 10            # epochs of the head on cached frozen features
    batch_size: int = 64
    head_lr: float = 3e-3
    lr: float = 5e-4                 # peak learning rate once unfrozen
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    unfreeze: str | int = "all"      # "all" or the number of last stages (pyramid levels) to train
    augment: object = "light"
    dropout: float = 0.2
    patience: int = 3
    val_fraction: float = 0.1
    precision: str = "auto"          # "auto" | "float32" | "mixed_float16" | "mixed_bfloat16"
    seed: int = 0
    verbose: int | None = None
    freeze_bn: bool = True           # BatchNorm in inference mode when unfrozen (Keras guide)
    run_eagerly: bool = False        # debug / one-step smoke runs: skips graph tracing


class DatasetImages:
    """Adapter giving a ``tf.data.Dataset`` of (image, label) the LabeledImages interface."""

    def __init__(self, ds: tf.data.Dataset, class_names):
        self.ds, self.class_names = ds, list(class_names)
        spec = ds.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise DataError("a training dataset must yield (image, label) pairs")
        self._batched = spec[0].shape.rank == 4 or (spec[0].shape.rank == 3 and spec[1].shape.rank == 1)

    @property
    def num_classes(self):
        return len(self.class_names)

    def batches(self, size, batch_size=64, shuffle=False, augment=None, seed=0, repeat=False):
        ds = self.ds.unbatch() if self._batched else self.ds
        if shuffle:
            ds = ds.shuffle(5000, seed=seed)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size).map(lambda a, y: (zdata._to_rgb_batch(_nhwc(a), size), tf.cast(y, tf.int64)))
        if augment is not None:
            ds = ds.map(lambda a, y: (augment(a, training=True), y))
        return ds.prefetch(tf.data.AUTOTUNE)

    def __len__(self):
        n = self.ds.cardinality().numpy()
        if n < 0:
            n = sum(1 for _ in (self.ds.unbatch() if self._batched else self.ds))
        elif self._batched:
            n = sum(1 for _ in self.ds.unbatch())
        return int(n)


def _nhwc(a):
    return a[..., None] if a.shape.rank == 3 else a


def as_labeled(d, class_names=None):
    """LabeledImages or DatasetImages from any supported training-data form."""
    if isinstance(d, (zdata.LabeledImages, DatasetImages)):
        return d
    if isinstance(d, tf.data.Dataset):
        names = class_names or getattr(d, "class_names", None)
        if names is None:
            ys = np.concatenate([np.atleast_1d(y.numpy()) for _, y in d])
            names = [str(i) for i in range(int(ys.max()) + 1)]
        return DatasetImages(d, names)
    if isinstance(d, tuple) and len(d) == 2:
        return zdata.from_arrays(d[0], d[1], class_names)
    if isinstance(d, (str, Path)):
        return zdata.load(d)
    raise DataError(f"cannot use {type(d).__name__} as labelled data: pass zoo.data.LabeledImages, "
                    "(x, y) arrays, a tf.data.Dataset of (image, label), a folder or 'fashion_mnist'")


class _Throughput(keras.callbacks.Callback):
    def __init__(self, n_images, verbose):
        super().__init__()
        self.n, self.verbose = n_images, verbose

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        dt = time.perf_counter() - self.t
        if self.verbose:
            print(f"epoch {epoch + 1}: {self.n / dt:.1f} img/s, {dt:.0f}s", file=sys.stderr, flush=True)


def _policy(precision: str) -> str:
    """Keras dtype policy: mixed float16 on GPU by default, float32 on CPU (bfloat16 on request)."""
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return PRECISIONS.get(precision, precision)


def _unfreeze(clf: FineTunedClassifier, unfreeze, freeze_bn: bool = True):
    """Train all layers (or those after a stage boundary); BatchNorm stays frozen by default."""
    net_layers = clf.network.layers
    start = 0
    if unfreeze != "all":
        n = int(unfreeze)
        levels = [lvl for lvl in ("P2", "P3", "P4", "P5") if lvl in clf.pyramid_levels]
        cut = levels[-n - 1] if n < len(levels) else None
        if cut is not None:
            tensor = clf.feature_network.output[cut]
            start = next(i for i, l in enumerate(net_layers) if l.output is tensor) + 1
    clf.network.trainable = True
    for i, layer in enumerate(net_layers):
        layer.trainable = i >= start and not (freeze_bn and isinstance(layer, keras.layers.BatchNormalization))


def finetune(model: ZooModel, train, val=None, *, strategy: tf.distribute.Strategy | None = None,
             out_dir=None, class_names=None, callbacks=None, **kwargs) -> FineTunedClassifier:
    """Fine-tune ``model`` on labelled ``train`` data; returns a :class:`FineTunedClassifier`.

    ``val`` defaults to a stratified ``val_fraction`` of ``train``. Keyword arguments are
    the fields of :class:`FinetuneConfig`. ``out_dir`` receives the best checkpoint,
    ``curves.png`` and ``confusion_val.png``. ``callbacks``: Keras callbacks given to both phases'
    ``fit`` (the head on cached features, then the unfrozen network; each phase begins with
    ``on_train_begin``), e.g. for live progress in the apps.
    """
    cfg = FinetuneConfig(**kwargs)
    verbose = cfg.verbose if cfg.verbose is not None else (1 if sys.stderr.isatty() else 2)
    train = as_labeled(train, class_names)
    if val is None and isinstance(train, zdata.LabeledImages) and cfg.val_fraction > 0:
        train, val = train.split(cfg.val_fraction, seed=cfg.seed)
    val = as_labeled(val, train.class_names) if val is not None else None
    if val is not None and val.class_names != train.class_names:
        raise DataError("train and validation data have different class names")
    keras.utils.set_random_seed(cfg.seed)
    strategy = strategy or tf.distribute.get_strategy()
    policy = _policy(cfg.precision)
    size = model.input_size
    n_train = len(train)
    steps = max(1, math.ceil(n_train / cfg.batch_size))

    with strategy.scope(), dtype_policy(policy):
        # A copy: training must not change ``model``, and variables must be created under
        # the strategy and dtype policy.
        body = ZooModel(model.entry, size, weights=None,
                        precision={v: k for k, v in PRECISIONS.items()}[policy])
        body.feature_network.set_weights(model.feature_network.get_weights())
        clf = FineTunedClassifier(body, train.class_names, cfg.dropout)
    history: dict = {"phase_starts": []}
    head_val, kept = None, "head" if cfg.epochs <= 0 else "finetuned"

    # Phase 1: the head on cached embeddings of un-augmented images.
    if cfg.head_epochs > 0:
        history["phase_starts"].append(0)
        feats = _embed_labeled(clf, train, cfg.batch_size, "cache features")
        vfeats = _embed_labeled(clf, val, cfg.batch_size, "cache val features") if val is not None else None
        with strategy.scope():
            head_in = keras.Input((clf.feature_dim,))
            head_model = keras.Model(head_in, clf.head(head_in))
            head_model.compile(keras.optimizers.AdamW(cfg.head_lr, weight_decay=cfg.weight_decay),
                               keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                               metrics=["accuracy"], jit_compile=_use_xla())
        n = len(train.class_names)
        h = head_model.fit(feats[0], keras.utils.to_categorical(feats[1], n), batch_size=256,
                           epochs=cfg.head_epochs, verbose=0 if verbose == 1 else verbose,
                           validation_data=(vfeats[0], keras.utils.to_categorical(vfeats[1], n)) if vfeats else None,
                           callbacks=list(callbacks or []))
        _extend(history, h.history)
        head_val = h.history.get("val_accuracy", [None])[-1]
        log.info("head: val accuracy %s", head_val)

    # Phase 2: unfreeze and train end to end with augmentation.
    if cfg.epochs > 0:
        history["phase_starts"].append(len(history.get("loss", [])))
        augment = build_augmentation(cfg.augment, cfg.seed)
        n = len(train.class_names)
        onehot = lambda x, y: (x, tf.one_hot(y, n))  # noqa: E731
        tds = train.batches(size, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed, repeat=True).map(onehot)
        vds = val.batches(size, cfg.batch_size).map(onehot) if val is not None else None
        # The head-only model, to fall back to if unfreezing never beats it on validation
        # (small data and a short schedule can make the first full epochs worse).
        snapshot = {v.path: v.numpy() for v in clf.classifier_model.weights} if head_val is not None else None
        with strategy.scope():
            _unfreeze(clf, cfg.unfreeze, cfg.freeze_bn)
            total = steps * cfg.epochs
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0, total, alpha=0.01, warmup_target=cfg.lr, warmup_steps=max(1, int(cfg.warmup_fraction * total)))
            clf.classifier_model.compile(
                keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing), metrics=["accuracy"], jit_compile=_use_xla(),
                run_eagerly=cfg.run_eagerly)
        fit_callbacks = [_Throughput(steps * cfg.batch_size, verbose), *(callbacks or [])]
        if vds is not None:
            fit_callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=cfg.patience,
                                                           restore_best_weights=True, mode="max"))
            if out_dir:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                fit_callbacks.append(keras.callbacks.ModelCheckpoint(
                    str(Path(out_dir) / "best.weights.h5"), monitor="val_accuracy", mode="max",
                    save_best_only=True, save_weights_only=True))
        h = clf.classifier_model.fit(tds, validation_data=vds, epochs=cfg.epochs, steps_per_epoch=steps,
                                     callbacks=fit_callbacks, verbose=verbose)
        _extend(history, h.history)
        best_unfrozen = max(h.history["val_accuracy"]) if snapshot is not None else None
        if snapshot is not None and best_unfrozen < head_val:
            for v in clf.classifier_model.weights:
                v.assign(snapshot[v.path])
            kept = "head"
            if out_dir:  # the checkpoint holds the model returned, not the worse unfrozen one
                _save_weights_atomic(clf.classifier_model, Path(out_dir) / "best.weights.h5")
            log.warning("unfreezing did not beat the head alone on validation (%.4f < %.4f): "
                        "kept the head-only model; try a lower lr or more epochs", best_unfrozen, head_val)
    clf.history = history
    clf.training_config = {**asdict(cfg), "kept": kept}
    if out_dir:
        plots.training_curves(history, Path(out_dir) / "curves.png", f"{model.name} fine-tuning")
        if val is not None:
            clf.evaluate(val, cfg.batch_size, plot=Path(out_dir) / "confusion_val.png")
    return clf


def _save_weights_atomic(model: keras.Model, path: Path):
    tmp = path.with_name(f".{os.getpid()}-{path.name}")  # keeps the .weights.h5 suffix Keras needs
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _embed_labeled(clf, d, batch_size, what):
    fn = clf._fn("embed", clf.embedding_model)
    xs, ys = [], []
    bar = Progress(len(d), what)
    for x, y in d.batches(clf.input_size, batch_size * 2):
        xs.append(fn(x).numpy())
        ys.append(y.numpy())
        bar.update(len(ys[-1]))
    bar.close()
    return np.concatenate(xs), np.concatenate(ys)


def _extend(history, new):
    for k, v in new.items():
        history.setdefault(k, []).extend(float(x) for x in v)


def _use_xla() -> bool:
    """XLA only on GPU: on CPU it compiles slowly and ran depthwise nets 10-30x slower here."""
    return bool(tf.config.list_physical_devices("GPU"))
