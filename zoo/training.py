"""Fine-tuning: a new head on frozen features, then unfreeze and train on, BatchNorm frozen.

``finetune`` is a short composition of named steps (fastai's ``fine_tune``): adapt the data,
copy the backbone under the strategy, fit the head on cached features (the frozen body runs
once, not every epoch), unfreeze (all or the last N stages, BatchNorm in inference mode), fit
with augmentation, AdamW and a cosine schedule with warm-up, keep the better phase on
validation, write plots. The steps other than the head-on-features one are generic
(:func:`unfreeze_backbone`, :func:`cosine_adamw`, :func:`fit_callbacks`, :class:`Snapshot`,
:func:`keep_better`) and serve any trainer built on a zoo backbone.
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
from zoo.compat import multi_worker_fit_fix
from zoo.errors import DataError
from zoo.model import PRECISIONS, Progress, ZooModel, dtype_policy
from zoo.tasks.classifier import FineTunedClassifier

log = logging.getLogger(__name__)


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
    backup_dir: str | None = None    # BackupAndRestore for the unfrozen phase: a killed job resumes its epoch


class Throughput(keras.callbacks.Callback):
    """Prints images/s and seconds per epoch."""

    def __init__(self, n_images, verbose):
        super().__init__()
        self.n, self.verbose = n_images, verbose

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        dt = time.perf_counter() - self.t
        if self.verbose:
            print(f"epoch {epoch + 1}: {self.n / dt:.1f} img/s, {dt:.0f}s", file=sys.stderr, flush=True)


# ---- generic steps ---------------------------------------------------------------------------
def worker_role(strategy) -> tuple[bool, int]:
    """(is_chief, task id) under ``strategy``; (True, 0) for single-process strategies.

    Keras 3 callbacks know nothing of workers, so under MultiWorkerMirroredStrategy only the
    chief writes ``out_dir`` (checkpoints, plots); every worker trains the same replicated model.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True, 0
    return bool(strategy.extended.should_checkpoint), int(resolver.task_id or 0)


def backup_dir_for(backup_dir, strategy) -> Path | None:
    """Where this worker keeps its BackupAndRestore files: ``backup_dir`` itself in a one-process
    run, ``backup_dir/worker-N`` under MultiWorkerMirroredStrategy. Each worker restores its own
    copy, so no two write one file, and each removes only its own folder when training ends."""
    if backup_dir is None:
        return None
    if getattr(strategy, "cluster_resolver", None) is None or \
            not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return Path(backup_dir)
    return Path(backup_dir) / f"worker-{worker_role(strategy)[1]}"


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Shard ``ds`` across workers by element (DATA): our datasets come from arrays or decoded
    files in one pipeline, which FILE sharding (the AUTO default's first try) cannot split."""
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def policy_for(precision: str) -> str:
    """Keras dtype policy: mixed float16 on GPU by default, float32 on CPU (bfloat16 on request)."""
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return PRECISIONS.get(precision, precision)


def copy_backbone(model: ZooModel, policy: str) -> ZooModel:
    """A copy of ``model``'s body to train: training never changes ``model``, and variables are
    created under the current strategy scope and ``policy``."""
    with dtype_policy(policy):
        body = ZooModel(model.entry, model.input_size, weights=None,
                        precision={v: k for k, v in PRECISIONS.items()}[policy])
    body.feature_network.set_weights(model.feature_network.get_weights())
    return body


def unfreeze_backbone(model: ZooModel, unfreeze="all", freeze_bn: bool = True):
    """Train all layers (or those after the last ``unfreeze`` pyramid stages); BatchNorm stays frozen."""
    net_layers = model.network.layers
    start = 0
    if unfreeze != "all":
        n = int(unfreeze)
        levels = [lvl for lvl in ("P2", "P3", "P4", "P5") if lvl in model.pyramid_levels]
        cut = levels[-n - 1] if n < len(levels) else None
        if cut is not None:
            tensor = model.feature_network.output[cut]
            start = next(i for i, l in enumerate(net_layers) if l.output is tensor) + 1
    model.network.trainable = True
    for i, layer in enumerate(net_layers):
        layer.trainable = i >= start and not (freeze_bn and isinstance(layer, keras.layers.BatchNormalization))


def cosine_adamw(lr: float, total_steps: int, weight_decay: float, warmup_fraction: float = 0.05):
    """AdamW with cosine decay after a linear warm-up."""
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, total_steps, alpha=0.01, warmup_target=lr, warmup_steps=max(1, int(warmup_fraction * total_steps)))
    return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)


def fit_callbacks(monitor: str | None, patience: int, out_dir=None, extra=(), mode: str = "max"):
    """Early stopping on ``monitor`` (best weights restored) and a best checkpoint in ``out_dir``."""
    cbs = list(extra)
    if monitor:
        cbs.append(keras.callbacks.EarlyStopping(monitor, patience=patience, restore_best_weights=True, mode=mode))
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            cbs.append(keras.callbacks.ModelCheckpoint(str(Path(out_dir) / "best.weights.h5"), monitor=monitor,
                                                       mode=mode, save_best_only=True, save_weights_only=True))
    return cbs


class Snapshot:
    """The weights of a Keras model at one moment, to return to."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.values = {v.path: v.numpy() for v in model.weights}

    def restore(self):
        for v in self.model.weights:
            v.assign(self.values[v.path])


def keep_better(before: float | None, after: list, snapshot: Snapshot | None, out_dir=None, what="head") -> str:
    """Restore ``snapshot`` when no epoch of the later phase beat ``before`` on validation.

    Returns the phase kept ("finetuned" or ``what``); the checkpoint in ``out_dir`` is
    rewritten to hold the model returned.
    """
    if snapshot is None or before is None or not after or max(after) >= before:
        return "finetuned"
    snapshot.restore()
    if out_dir:
        save_weights_atomic(snapshot.model, Path(out_dir) / "best.weights.h5")
    log.warning("unfreezing did not beat the %s alone on validation (%.4f < %.4f): kept the %s-only model; "
                "try a lower lr or more epochs", what, max(after), before, what)
    return what


def save_weights_atomic(model: keras.Model, path: Path):
    tmp = path.with_name(f".{os.getpid()}-{path.name}")  # keeps the .weights.h5 suffix Keras needs
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def extend_history(history, new):
    for k, v in new.items():
        history.setdefault(k, []).extend(float(x) for x in v)


def use_xla() -> bool:
    """XLA only on GPU: on CPU it compiles slowly and ran depthwise nets 10-30x slower here."""
    return bool(tf.config.list_physical_devices("GPU"))


def verbosity(verbose: int | None) -> int:
    return verbose if verbose is not None else (1 if sys.stderr.isatty() else 2)


# ---- the classifier's steps ------------------------------------------------------------------
def prepare_data(train, val, cfg: FinetuneConfig, class_names=None):
    """(train, val) as labelled collections; val defaults to a stratified, seeded hold-out."""
    train = zdata.as_labeled(train, class_names)
    if val is None and isinstance(train, zdata.LabeledImages) and cfg.val_fraction > 0:
        train, val = train.split(cfg.val_fraction, seed=cfg.seed)
    val = zdata.as_labeled(val, train.class_names) if val is not None else None
    if val is not None and val.class_names != train.class_names:
        raise DataError("train and validation data have different class names")
    if len(train) == 0:
        raise DataError("no training images")
    return train, val


def embed_labeled(model: ZooModel, d, batch_size: int, what: str):
    """(embeddings, labels) of a labelled collection through the frozen body, un-augmented."""
    fn = model._fn("embed", model.embedding_model)
    xs, ys = [], []
    bar = Progress(len(d), what)
    for x, y in d.batches(model.input_size, batch_size * 2):
        xs.append(fn(x).numpy())
        ys.append(y.numpy())
        bar.update(len(ys[-1]))
    bar.close()
    return np.concatenate(xs), np.concatenate(ys)


def fit_head(clf: FineTunedClassifier, train, val, cfg: FinetuneConfig, strategy, callbacks, verbose):
    """Phase 1: the head on cached embeddings. Returns (Keras history, last val accuracy)."""
    feats = embed_labeled(clf, train, cfg.batch_size, "cache features")
    vfeats = embed_labeled(clf, val, cfg.batch_size, "cache val features") if val is not None else None
    n = len(train.class_names)
    with strategy.scope():
        head_in = keras.Input((clf.feature_dim,))
        head_model = keras.Model(head_in, clf.head(head_in))
        head_model.compile(keras.optimizers.AdamW(cfg.head_lr, weight_decay=cfg.weight_decay),
                           keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                           metrics=["accuracy"], jit_compile=use_xla())
    multi_worker_fit_fix(head_model, strategy)
    # tf.data rather than arrays: Keras 3 cannot distribute arrays under MultiWorkerMirroredStrategy
    def dataset(f, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((f[0], keras.utils.to_categorical(f[1], n)))
        if shuffle:
            ds = ds.shuffle(len(f[0]), seed=cfg.seed, reshuffle_each_iteration=True)
        return shard_by_data(ds.batch(256))

    h = head_model.fit(dataset(feats, True), epochs=cfg.head_epochs, verbose=0 if verbose == 1 else verbose, shuffle=False,
                       validation_data=dataset(vfeats, False) if vfeats else None, callbacks=list(callbacks or []))
    head_val = h.history.get("val_accuracy", [None])[-1]
    log.info("head: val accuracy %s", head_val)
    return h.history, head_val


def fit_unfrozen(clf: FineTunedClassifier, train, val, cfg: FinetuneConfig, strategy, callbacks, verbose, out_dir):
    """Phase 2: the whole network (or its last stages) with augmentation. Returns the Keras history.

    With ``cfg.backup_dir`` a ``BackupAndRestore`` callback saves weights, optimizer and epoch at
    each epoch's end; a job killed and started again with the same arguments resumes from the
    last finished epoch (the cached-feature head phase before it is simply run again)."""
    n = len(train.class_names)
    steps = max(1, math.ceil(len(train) / cfg.batch_size))
    augment = build_augmentation(cfg.augment, cfg.seed)
    onehot = lambda x, y: (x, tf.one_hot(y, n))  # noqa: E731
    tds = shard_by_data(train.batches(clf.input_size, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                                      repeat=True).map(onehot))
    vds = shard_by_data(val.batches(clf.input_size, cfg.batch_size).map(onehot)) if val is not None else None
    with strategy.scope():
        unfreeze_backbone(clf, cfg.unfreeze, cfg.freeze_bn)
        clf.classifier_model.compile(
            cosine_adamw(cfg.lr, steps * cfg.epochs, cfg.weight_decay, cfg.warmup_fraction),
            keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing), metrics=["accuracy"],
            jit_compile=use_xla(), run_eagerly=cfg.run_eagerly)
    multi_worker_fit_fix(clf.classifier_model, strategy)
    backup = backup_dir_for(cfg.backup_dir, strategy)
    first = [keras.callbacks.BackupAndRestore(str(backup))] if backup is not None else []
    cbs = fit_callbacks("val_accuracy" if vds is not None else None, cfg.patience,
                        out_dir if worker_role(strategy)[0] else None,
                        [*first, Throughput(steps * cfg.batch_size, verbose), *(callbacks or [])])
    h = clf.classifier_model.fit(tds, validation_data=vds, epochs=cfg.epochs, steps_per_epoch=steps,
                                 callbacks=cbs, verbose=verbose, shuffle=False)  # the dataset shuffles
    return h.history


def write_reports(clf: FineTunedClassifier, val, cfg: FinetuneConfig, out_dir):
    """``curves.png`` and ``confusion_val.png`` in ``out_dir``."""
    plots.training_curves(clf.history, Path(out_dir) / "curves.png", f"{clf.name} fine-tuning")
    if val is not None:
        clf.evaluate(val, cfg.batch_size, plot=Path(out_dir) / "confusion_val.png")


def finetune(model: ZooModel, train, val=None, *, strategy: tf.distribute.Strategy | None = None,
             out_dir=None, class_names=None, callbacks=None, **kwargs) -> FineTunedClassifier:
    """Fine-tune ``model`` on labelled ``train`` data; returns a :class:`FineTunedClassifier`.

    ``val`` defaults to a stratified ``val_fraction`` of ``train``. Keyword arguments are
    the fields of :class:`FinetuneConfig`. ``out_dir`` receives the best checkpoint,
    ``curves.png`` and ``confusion_val.png``. ``callbacks``: Keras callbacks given to both phases'
    ``fit`` (the head on cached features, then the unfrozen network; each phase begins with
    ``on_train_begin``), e.g. for live progress in the apps. Which phase was kept is in
    ``clf.training_config["kept"]`` and the saved folder's config.

    ``strategy``: e.g. ``tf.distribute.MultiWorkerMirroredStrategy()`` (created first thing in
    each worker, with ``TF_CONFIG`` set): every worker calls ``finetune`` with the same
    arguments and seed; the data are sharded by element, and only the chief writes ``out_dir``
    (see tests/test_distributed.py and docs/scale.md).
    """
    cfg = FinetuneConfig(**kwargs)
    verbose = verbosity(cfg.verbose)
    strategy = strategy or tf.distribute.get_strategy()
    chief = worker_role(strategy)[0]
    if not chief:  # under MultiWorkerMirroredStrategy only the chief writes out_dir
        out_dir = None
    train, val = prepare_data(train, val, cfg, class_names)
    keras.utils.set_random_seed(cfg.seed)
    policy = policy_for(cfg.precision)
    with strategy.scope(), dtype_policy(policy):
        clf = FineTunedClassifier(copy_backbone(model, policy), train.class_names, cfg.dropout)
    history: dict = {"phase_starts": []}
    head_val, kept = None, "head" if cfg.epochs <= 0 else "finetuned"
    if cfg.head_epochs > 0:
        history["phase_starts"].append(0)
        h, head_val = fit_head(clf, train, val, cfg, strategy, callbacks, verbose)
        extend_history(history, h)
    if cfg.epochs > 0:
        history["phase_starts"].append(len(history.get("loss", [])))
        snapshot = Snapshot(clf.classifier_model) if head_val is not None else None
        h = fit_unfrozen(clf, train, val, cfg, strategy, callbacks, verbose, out_dir)
        extend_history(history, h)
        kept = keep_better(head_val, h.get("val_accuracy", []), snapshot, out_dir)
    clf.history = history
    clf.training_config = {**asdict(cfg), "kept": kept}
    if out_dir:
        write_reports(clf, val, cfg, out_dir)
    return clf
