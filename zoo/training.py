"""The one trainer: every kind that trains a backbone goes through :func:`train`.

A short composition of named steps (fastai's ``fine_tune``): adapt the data, copy the backbone
(the caller's model never changes) under the strategy and precision, fit the head with the
backbone frozen (on cached pooled features where the head allows it: the frozen body runs once,
not every epoch), unfreeze (all or the last N stages, BatchNorm in inference mode), fit with
augmentation, AdamW and a cosine schedule with warm-up, keep the better phase on validation,
record the same result for every kind, write the curves.

The argument names mean the same for every kind (:class:`TrainConfig`): ``head_epochs`` and
``head_lr`` with the backbone frozen, ``epochs`` and ``lr`` with it unfrozen. A kind supplies only
what is its own, as a :class:`TrainingSpec` (``Task.training``): its options and defaults, data
preparation, loss, metrics and the monitor, target encoding and augmentation that moves boxes
and masks with the pixels (its ``dataset``), validation callbacks and pictures. What was kept is
``task.training_config["kept"]``: "head" or "finetuned".
"""
from __future__ import annotations

import dataclasses
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

from zoo import inference, plots
from zoo.compat import multi_worker_fit_fix, untracked
from zoo.errors import DataError, RecipeError
from zoo.model import PRECISIONS, dtype_policy

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """What every kind's training takes (a kind's spec changes the defaults, not the meaning)."""

    epochs: int = 3                  # epochs with the backbone unfrozen (0: head only)
    head_epochs: int = 10            # epochs with the backbone frozen (only the head trains)
    batch_size: int = 64
    head_lr: float = 3e-3            # peak learning rate, backbone frozen
    lr: float = 5e-4                 # peak learning rate, backbone unfrozen
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    clipnorm: float | None = None    # global gradient-norm clipping
    unfreeze: str | int = "all"      # "all" or the number of last stages (pyramid levels) to train
    freeze_bn: bool = True           # BatchNorm in inference mode when unfrozen (Keras guide)
    augment: object = "light"        # the kind's augmentation preset (or its settings)
    patience: int | None = 3         # early stopping on the monitor (None: run every epoch)
    val_fraction: float = 0.1        # held out of train when no val is given
    input_size: int | None = None    # default: the backbone's (a kind may choose from the data)
    precision: str = "auto"          # "auto" | "float32" | "mixed_float16" | "mixed_bfloat16"
    seed: int = 0
    verbose: int | None = None
    run_eagerly: bool = False        # debug / one-step smoke runs: skips graph tracing
    backup_dir: str | None = None    # BackupAndRestore for the unfrozen phase: a killed job resumes its epoch
    max_minutes: float | None = None  # wall-clock cap on both phases; the learning rate decays over it (see TimeBudget)
    ema: float | None = None         # momentum of an exponential moving average of the weights (e.g. 0.99) and
                                     # of the statistics of BatchNorm layers that train, used for validation,
                                     # checkpoints and the returned model


class TrainingSpec:
    """What a kind supplies to :func:`train`; every hook has the kind's data and settings.

    Subclasses set ``defaults`` (TrainConfig fields), ``options`` (a dataclass of the kind's own
    settings), ``monitor``/``mode`` and ``cached_head``, and implement :meth:`prepare`,
    :meth:`build`, :meth:`loss`, :meth:`dataset` (and :meth:`head_targets` for a cached head).
    """

    defaults: dict = {}
    options: type | None = None
    monitor = "val_loss"             # what validation picks the better epoch and phase by
    mode = "min"
    cached_head = False              # head phase on cached pooled features (heads on the embedding)
    curve_metric = "accuracy"        # the second panel of curves.png

    def read(self, text: str):
        """Training data named on the command line (``zoo train KIND DATA``)."""
        raise DataError(f"`zoo train` cannot read {text!r} for this kind: give a named demo dataset or use the "
                        "kind's Python API")

    def prepare(self, train, val, cfg: TrainConfig, opts, class_names=None):
        """(train, val, class names, input size) in the kind's data types; val split off when None."""
        raise NotImplementedError

    def build(self, kind, backbone, class_names, cfg: TrainConfig, opts):
        """The untrained task on ``backbone`` (already copied, at the training size)."""
        raise NotImplementedError

    def loss(self, task, cfg, opts):
        raise NotImplementedError

    def metrics(self, task, cfg, opts) -> list:
        return []

    def dataset(self, task, data, cfg, opts, training: bool) -> tf.data.Dataset:
        """Batches of (pixels, targets[, sample weights]); repeating and augmented when ``training``."""
        raise NotImplementedError

    def steps(self, data, cfg) -> int:
        return max(1, math.ceil(len(data) / cfg.batch_size))

    def monitored(self, cfg, opts) -> bool:
        """Whether every epoch reports the monitor (else no early stopping or best checkpoint)."""
        return True

    def callbacks(self, task, val, cfg, opts, epochs: int, first_epoch: int, history: dict, verbose) -> list:
        """Callbacks that add validation scores to the epoch logs (e.g. COCO mAP)."""
        return []

    def head_targets(self, task, labels, opts) -> np.ndarray:
        """For a cached head: what the head learns for these labels."""
        raise NotImplementedError

    def finish(self, task, train, val, cfg, opts):
        """After both phases: what the kind settles on the trained network (e.g. thresholds)."""

    def record(self, task, train, cfg, opts) -> dict:
        """Extra facts for ``training_config`` (data sizes, chosen settings)."""
        return {}

    def reports(self, task, val, out_dir: Path, cfg, opts):
        """Pictures beside curves.png (confusion matrix, overlays, predictions)."""


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


class TimeBudget(keras.callbacks.Callback):
    """Stops ``fit`` once a wall-clock budget is spent (after the batch that crosses it; Keras still
    validates that epoch), and writes the fraction spent into ``spent``, the variable a
    :class:`BudgetCosine` schedule reads, so that the learning rate decays over the minutes given.

    ``TimeBudget(seconds)`` counts from the start of the first ``fit`` it is given to (one budget
    across several fits); ``deadline`` is a ``time.monotonic()`` instant (the trainer's two phases).
    ``steps`` counts the training steps run."""

    def __init__(self, seconds: float | None = None, *, deadline: float | None = None, spent=None):
        super().__init__()
        if (seconds is None) == (deadline is None):
            raise RecipeError("give TimeBudget either seconds or deadline")
        self.seconds, self.deadline, self.spent = seconds, deadline, spent
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        if self.deadline is None:
            self.deadline = self.start + self.seconds
        self.stopped = False

    def on_train_batch_begin(self, batch, logs=None):
        if self.spent is not None:
            span = max(self.deadline - self.start, 1e-9)
            self.spent.assign(min(1.0, (time.monotonic() - self.start) / span))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() >= self.deadline:
            self.model.stop_training = self.stopped = True


class BudgetCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then cosine decay to ``alpha * peak``, over the training's progress:
    the larger of the fraction of ``total_steps`` done and ``spent`` (a variable :class:`TimeBudget`
    updates), so a time-capped run still ends at a low learning rate."""

    def __init__(self, peak: float, total_steps: int, warmup_fraction: float = 0.05, alpha: float = 0.01,
                 spent=None):
        self.peak, self.total, self.warmup, self.alpha, self.spent = peak, max(1, total_steps), warmup_fraction, alpha, spent

    def __call__(self, step):
        ops = keras.ops
        p = ops.cast(step, "float32") / float(self.total)
        if self.spent is not None:
            p = ops.maximum(p, ops.cast(self.spent, "float32"))
        p = ops.minimum(p, 1.0)
        w = max(self.warmup, 1e-6)
        warm = self.peak * p / w
        cos = 0.5 * (1.0 + ops.cos(math.pi * ops.clip((p - w) / (1.0 - w), 0.0, 1.0)))
        return ops.where(p < w, warm, self.peak * (self.alpha + (1.0 - self.alpha) * cos))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_fraction": self.warmup, "alpha": self.alpha}


class AdamW(keras.optimizers.AdamW):
    """Keras's AdamW whose moving average of the weights (``use_ema``) warms up: its momentum is
    ``min(ema_momentum, (1 + t) / (10 + t))`` at step t (timm's ModelEmaV3), so a short run averages
    its recent weights rather than its first ones. The average also covers the variables given to
    :meth:`also_average` before the first step (the BatchNorm moving means and variances that
    training updates), as timm's ModelEma averages a model's buffers, so averaged weights meet
    statistics of their own."""

    averaged_statistics = ()

    @untracked
    def also_average(self, variables):
        """Average these model variables too (kept out of the optimizer's own variables)."""
        self.averaged_statistics = tuple(variables)

    @property
    def ema_momentum(self):
        if not hasattr(self, "_iterations"):
            return self._ema_target
        t = keras.ops.cast(self.iterations, "float32")
        return keras.ops.minimum(self._ema_target, (1.0 + t) / (10.0 + t))

    @ema_momentum.setter
    def ema_momentum(self, value):
        self._ema_target = value

    def get_config(self):
        return {**super().get_config(), "ema_momentum": self._ema_target}

    @untracked
    def build(self, variables):
        super().build(variables)
        self._statistic_averages = [self.add_variable_from_reference(v, "average")
                                    for v in self.averaged_statistics] if self.use_ema else []

    def _update_model_variables_moving_average(self, trainable_variables):
        super()._update_model_variables_moving_average(trainable_variables)
        if self.use_ema and self._statistic_averages:
            momentum = self.ema_momentum * keras.ops.cast(keras.ops.not_equal(self.iterations, 0), "float32")
            for var, average in zip(self.averaged_statistics, self._statistic_averages):
                m = keras.ops.cast(momentum, var.dtype)
                average.assign(m * average + (1.0 - m) * var)

    def finalize_variable_values(self, var_list):
        super().finalize_variable_values(var_list)
        for var, average in zip(self.averaged_statistics, getattr(self, "_statistic_averages", [])):
            var.assign(average)


def updated_statistics(model) -> list:
    """The BatchNorm moving means and variances that training ``model`` updates (layers that train)."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            found += [layer.moving_mean, layer.moving_variance]
        stack += getattr(layer, "layers", [])
    return list({id(v): v for v in found}.values())


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras's EMA swap (``swap_on_epoch``): validation, early stopping and checkpoints see the
    averaged weights (and the averaged BatchNorm statistics of :class:`AdamW`), and ``fit`` ends with
    them, also when a time budget stops it before its last epoch (Keras's own callback settles them
    only after the last)."""

    def __init__(self):
        super().__init__(swap_on_epoch=True)

    def _statistics(self):
        opt = self.model.optimizer
        return zip(getattr(opt, "averaged_statistics", ()), getattr(opt, "_statistic_averages", ()))

    def _swap_variables(self):
        super()._swap_variables()
        for var, average in self._statistics():
            held = keras.ops.convert_to_numpy(var)
            var.assign(average)
            average.assign(held)

    def _finalize_ema_values(self):
        super()._finalize_ema_values()
        for var, average in self._statistics():
            average.assign(var)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.model.stop_training and epoch != self.params["epochs"] - 1:
            self._finalize_ema_values()


# ---- the trainer ----------------------------------------------------------------------------------
def configure(spec: TrainingSpec, kwargs: dict):
    """(TrainConfig, the kind's options) from keyword arguments; unknown names are an error."""
    common = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {f.name for f in dataclasses.fields(spec.options)} if spec.options else set()
    unknown = sorted(set(kwargs) - common - own)
    if unknown:
        raise RecipeError(f"unknown training settings {unknown}: every kind takes {sorted(common)}"
                          + (f"; this one also {sorted(own)}" if own else ""))
    cfg = TrainConfig(**{**spec.defaults, **{k: v for k, v in kwargs.items() if k in common}})
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:  # checked here: the cached head builds its own optimizer
        raise RecipeError(f"ema is the moving average's momentum, between 0 and 1 (e.g. 0.99), not {cfg.ema}")
    opts = spec.options(**{k: v for k, v in kwargs.items() if k in own}) if spec.options else None
    return cfg, opts


def train(kind, backbone, train, val=None, *, strategy: tf.distribute.Strategy | None = None, out_dir=None,
          class_names=None, callbacks=None, **kwargs):
    """Train a task of ``kind`` (a Task class with a ``training`` spec) on ``backbone``.

    ``backbone``: a ZooModel or registry name (copied: never changed). ``val`` defaults to a
    ``val_fraction`` of ``train``. Keyword arguments are :class:`TrainConfig`'s and the kind's
    options. ``out_dir`` receives ``best.weights.h5``, ``curves.png`` and the kind's pictures.
    ``callbacks``: Keras callbacks given to both phases' ``fit`` (e.g. live progress in the apps).
    ``strategy``: any ``tf.distribute`` strategy, e.g. ``MultiWorkerMirroredStrategy()`` created
    first thing in each worker with ``TF_CONFIG`` set: every worker calls ``train`` with the same
    arguments; data are sharded by element and only the chief writes ``out_dir``.
    """
    spec = kind.training
    if spec is None:
        raise RecipeError(f"a {kind.kind} has no backbone to train")
    cfg, opts = configure(spec, kwargs)
    verbose = verbosity(cfg.verbose)
    strategy = strategy or tf.distribute.get_strategy()
    if not worker_role(strategy)[0]:  # under MultiWorkerMirroredStrategy only the chief writes out_dir
        out_dir = None
    train, val, names, size = spec.prepare(train, val, cfg, opts, class_names)
    keras.utils.set_random_seed(cfg.seed)
    policy = policy_for(cfg.precision)
    t0 = time.perf_counter()
    deadline = budget_deadline(cfg, strategy)
    with strategy.scope(), dtype_policy(policy):
        body = _backbone(backbone, size).copy(size, {v: k for k, v in PRECISIONS.items()}[policy])
        task = spec.build(kind, body, names, cfg, opts)
    history: dict = {"phase_starts": []}
    before, kept = None, "head" if cfg.epochs <= 0 else "finetuned"
    if cfg.head_epochs > 0:
        history["phase_starts"].append(0)
        head_deadline = deadline if deadline is None or cfg.epochs <= 0 else \
            time.monotonic() + (deadline - time.monotonic()) / 3  # the head's share: a third at most
        if spec.cached_head:
            h = fit_cached_head(task, spec, train, val, cfg, opts, strategy, callbacks, verbose, head_deadline)
            restored = False
        else:
            task.feature_network.trainable = False
            h, restored = fit_phase(task, spec, train, val, cfg, opts, cfg.head_epochs, cfg.head_lr, strategy,
                                    callbacks, verbose, out_dir, history, backup=False, deadline=head_deadline)
            task.feature_network.trainable = True
        extend_history(history, h)
        before = phase_score(h.get(spec.monitor), spec.mode, restored)
    if cfg.epochs > 0 and deadline is not None and time.monotonic() >= deadline:
        log.warning("the %s-minute budget was spent on the head phase: the backbone stays frozen", cfg.max_minutes)
        kept = "head"
    elif cfg.epochs > 0:
        history["phase_starts"].append(len(history.get("loss", [])))
        snapshot = Snapshot(task.keras_model) if before is not None else None
        with strategy.scope():
            unfreeze_backbone(task, cfg.unfreeze, cfg.freeze_bn)
        h, _ = fit_phase(task, spec, train, val, cfg, opts, cfg.epochs, cfg.lr, strategy, callbacks, verbose,
                         out_dir, history, backup=True, deadline=deadline)
        extend_history(history, h)
        kept = keep_better(before, h.get(spec.monitor, []), snapshot, out_dir, mode=spec.mode)
    spec.finish(task, train, val, cfg, opts)
    task.history = history
    task.training_config = {**asdict(cfg), **(asdict(opts) if opts is not None else {}), "input_size": size,
                            "kept": kept, "train_images": len(train), "seconds": round(time.perf_counter() - t0, 1),
                            **spec.record(task, train, cfg, opts)}
    if out_dir:
        out = Path(out_dir)
        plots.training_curves(history, out / "curves.png", f"{task.name} {task.kind}", metric=spec.curve_metric)
        spec.reports(task, val, out, cfg, opts)
    return task


def _backbone(backbone, size):
    """A ZooModel from a registry name, a ZooModel, or a trained task (its fine-tuned backbone: e.g.
    a classifier of the objects, the first step of the demo recipes)."""
    from zoo.model import ZooModel, load

    if isinstance(getattr(backbone, "backbone", None), ZooModel):
        return backbone.backbone
    if isinstance(backbone, ZooModel):
        return backbone
    if not isinstance(backbone, (str, os.PathLike)):
        raise RecipeError(f"backbone must be a registry name, a ZooModel or a trained task, not {type(backbone).__name__}")
    return load(backbone, input_size=size)


def budget_deadline(cfg: TrainConfig, strategy) -> float | None:
    """The ``time.monotonic()`` instant ``max_minutes`` ends at (None: no cap)."""
    if cfg.max_minutes is None:
        return None
    if cfg.max_minutes <= 0:
        raise RecipeError(f"max_minutes must be positive, not {cfg.max_minutes}")
    if getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        raise RecipeError("max_minutes cannot cap multi-worker training (each worker's clock would stop it at "
                          "another step); give epochs instead")
    return time.monotonic() + 60.0 * cfg.max_minutes


def fit_phase(task, spec, train, val, cfg, opts, epochs, lr, strategy, callbacks, verbose, out_dir, history,
              backup: bool, deadline: float | None = None):
    """One phase of ``fit`` on the kind's datasets, stopped at ``deadline`` (``time.monotonic()``);
    returns (Keras history, whether the best epoch's weights were restored at its end)."""
    steps = spec.steps(train, cfg)
    tds = shard_by_data(spec.dataset(task, train, cfg, opts, training=True))
    vds = shard_by_data(spec.dataset(task, val, cfg, opts, training=False)) if val is not None else None
    with strategy.scope():
        spent = keras.Variable(0.0, trainable=False, name="budget_spent") if deadline is not None else None
        opt = cosine_adamw(lr, steps * epochs, cfg.weight_decay, cfg.warmup_fraction, spent=spent, ema=cfg.ema)
        opt.also_average(updated_statistics(task.keras_model) if cfg.ema else ())
        if cfg.clipnorm:
            opt.global_clipnorm = cfg.clipnorm  # read when gradients are applied
        task.keras_model.compile(opt, spec.loss(task, cfg, opts), metrics=spec.metrics(task, cfg, opts),
                                 jit_compile=use_xla(), run_eagerly=cfg.run_eagerly)
    multi_worker_fit_fix(task.keras_model, strategy)
    first = len(history.get("loss", []))
    cbs = spec.callbacks(task, val, cfg, opts, epochs, first, history, verbose)
    folder = backup_dir_for(cfg.backup_dir, strategy) if backup else None
    if folder is not None:
        cbs.insert(0, keras.callbacks.BackupAndRestore(str(folder)))
    if cfg.ema:
        cbs.insert(0, EMAWeights())  # first: the callbacks after it score and save the averaged weights
    if deadline is not None:
        cbs.insert(0, TimeBudget(deadline=deadline, spent=spent))
    monitor = spec.monitor if val is not None and spec.monitored(cfg, opts) else None
    cbs = fit_callbacks(monitor, cfg.patience, out_dir if worker_role(strategy)[0] else None,
                        [*cbs, Throughput(steps * cfg.batch_size, verbose), *(callbacks or [])], spec.mode)
    h = task.keras_model.fit(tds, validation_data=vds, epochs=epochs, steps_per_epoch=steps, callbacks=cbs,
                             verbose=verbose, shuffle=False)  # the datasets shuffle themselves
    return h.history, monitor is not None and cfg.patience is not None


def fit_cached_head(task, spec, train, val, cfg, opts, strategy, callbacks, verbose, deadline=None) -> dict:
    """The head phase on cached pooled features: the frozen body runs once over train and val."""
    feats = embed_labelled(task, train, cfg.batch_size, "cache features")
    vfeats = embed_labelled(task, val, cfg.batch_size, "cache val features") if val is not None else None
    with strategy.scope():
        head_in = keras.Input((task.feature_dim,))
        head_model = keras.Model(head_in, task.head(head_in))
        head_model.compile(AdamW(cfg.head_lr, weight_decay=cfg.weight_decay, use_ema=bool(cfg.ema),
                                 ema_momentum=cfg.ema or 0.99),
                           spec.loss(task, cfg, opts), metrics=spec.metrics(task, cfg, opts), jit_compile=use_xla())
    multi_worker_fit_fix(head_model, strategy)

    def dataset(f, shuffle):  # tf.data: Keras 3 cannot distribute arrays under MultiWorkerMirroredStrategy
        ds = tf.data.Dataset.from_tensor_slices((f[0], spec.head_targets(task, f[1], opts)))
        if shuffle:
            ds = ds.shuffle(len(f[0]), seed=cfg.seed, reshuffle_each_iteration=True)
        return shard_by_data(ds.batch(256))

    cbs = [*([TimeBudget(deadline=deadline)] if deadline is not None else []), *([EMAWeights()] if cfg.ema else []),
           *(callbacks or [])]
    h = head_model.fit(dataset(feats, True), epochs=cfg.head_epochs, verbose=0 if verbose == 1 else verbose,
                       validation_data=dataset(vfeats, False) if vfeats else None, callbacks=cbs, shuffle=False)
    return h.history


def embed_labelled(task, data, batch_size: int, what: str):
    """(pooled embeddings, labels) of a labelled collection through the frozen body, un-augmented."""
    b = task.backbone
    fn = b._fn("embed", b.embedding_model)
    r = inference.run(fn, inference.labelled(data, b.input_size, batch_size * 2), what=what)
    return r.outputs


def phase_score(values, mode: str, restored: bool):
    """The validation score of the weights a phase ends with: its best epoch's when early stopping
    restored it, else its last epoch's."""
    if not values:
        return None
    return (max(values) if mode == "max" else min(values)) if restored else values[-1]


# ---- generic steps --------------------------------------------------------------------------------
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


def unfreeze_backbone(model, unfreeze="all", freeze_bn: bool = True):
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
    model.feature_network.trainable = True
    for i, layer in enumerate(net_layers):
        layer.trainable = i >= start and not (freeze_bn and isinstance(layer, keras.layers.BatchNormalization))


def cosine_adamw(lr: float, total_steps: int, weight_decay: float, warmup_fraction: float = 0.05, spent=None,
                 ema: float | None = None):
    """AdamW with cosine decay after a linear warm-up; over a time budget too when ``spent`` (the
    variable :class:`TimeBudget` updates) is given; ``ema``: the momentum of a moving average of the
    weights kept by the optimizer (see :class:`EMAWeights`)."""
    if spent is not None:
        schedule = BudgetCosine(lr, total_steps, warmup_fraction, alpha=0.01, spent=spent)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps, alpha=0.01, warmup_target=lr, warmup_steps=max(1, int(warmup_fraction * total_steps)))
    return AdamW(schedule, weight_decay=weight_decay, use_ema=bool(ema), ema_momentum=ema or 0.99)


def fit_callbacks(monitor: str | None, patience: int | None, out_dir=None, extra=(), mode: str = "max"):
    """Early stopping on ``monitor`` (best weights restored; none when ``patience`` is None) and a
    best checkpoint in ``out_dir``."""
    cbs = list(extra)
    if monitor:
        if patience is not None:
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


def keep_better(before: float | None, after: list, snapshot: Snapshot | None, out_dir=None, what="head",
                mode: str = "max") -> str:
    """Restore ``snapshot`` when no epoch of the later phase beat ``before`` on validation.

    Returns the phase kept ("finetuned" or ``what``); the checkpoint in ``out_dir`` is
    rewritten to hold the model returned.
    """
    if snapshot is None or before is None or not after:
        return "finetuned"
    best = max(after) if mode == "max" else min(after)
    if (best >= before) if mode == "max" else (best <= before):
        return "finetuned"
    snapshot.restore()
    if out_dir:
        save_weights_atomic(snapshot.model, Path(out_dir) / "best.weights.h5")
    log.warning("unfreezing did not beat the %s alone on validation (%.4f vs %.4f): kept the %s-only model; "
                "try a lower lr or more epochs", what, best, before, what)
    return what


def save_weights_atomic(model: keras.Model, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
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


def holdout(train, val, fraction: float, seed: int):
    """(train, val): ``val`` as given, or ``fraction`` of ``train`` held out (its ``split``)."""
    if val is not None or fraction <= 0:
        return train, val
    if not hasattr(train, "split"):
        raise DataError("pass val= (no way to hold out part of this training data)")
    return train.split(fraction, seed=seed)


__all__ = ["TrainConfig", "TrainingSpec", "train", "configure", "fit_phase", "fit_cached_head", "embed_labelled",
           "unfreeze_backbone", "cosine_adamw", "fit_callbacks", "Snapshot", "keep_better", "extend_history",
           "use_xla", "verbosity", "policy_for", "worker_role", "backup_dir_for", "shard_by_data", "holdout",
           "Throughput", "TimeBudget", "BudgetCosine", "EMAWeights", "budget_deadline"]
