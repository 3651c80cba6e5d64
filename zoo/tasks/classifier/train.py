"""The classifier's part of the one trainer: softmax cross-entropy with label smoothing, the head
first on cached pooled features, accuracy as the monitor, image augmentation (MixUp / CutMix on
request)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from zoo import data as zdata
from zoo.augment import batch_mixing, build_augmentation, check_mixing
from zoo.errors import DataError
from zoo.training import TrainingSpec, holdout


@dataclass
class ClassifierOptions:
    label_smoothing: float = 0.1
    dropout: float = 0.2
    mixup: float = 0.0               # MixUp's Beta parameter on the unfrozen phase's batches (e.g. 0.2); 0: off
    cutmix: float = 0.0              # CutMix's (e.g. 1.0); with both set, one of the two per batch

    def __post_init__(self):  # checked before the head phase, not when the unfrozen phase starts
        check_mixing(self.mixup, self.cutmix)


def prepare_labelled(train, val, cfg, class_names=None, as_data=zdata.as_labeled):
    """(train, val) as labelled collections; val defaults to a stratified, seeded hold-out."""
    train = as_data(train, class_names)
    if isinstance(train, zdata.LabeledImages):
        train, val = holdout(train, val, cfg.val_fraction, cfg.seed)
    val = as_data(val, train.class_names) if val is not None else None
    if val is not None and val.class_names != train.class_names:
        raise DataError("train and validation data have different class names")
    if len(train) == 0:
        raise DataError("no training images")
    return train, val


class ClassifierTraining(TrainingSpec):
    options = ClassifierOptions
    monitor, mode = "val_accuracy", "max"
    cached_head = True

    def read(self, text):
        return zdata.load(text, "train")

    def prepare(self, train, val, cfg, opts, class_names=None):
        train, val = prepare_labelled(train, val, cfg, class_names)
        return train, val, train.class_names, cfg.input_size

    def build(self, kind, backbone, class_names, cfg, opts):
        return kind(backbone, class_names, opts.dropout)

    def loss(self, task, cfg, opts):
        return keras.losses.CategoricalCrossentropy(label_smoothing=opts.label_smoothing)

    def metrics(self, task, cfg, opts):
        return ["accuracy"]

    def head_targets(self, task, labels, opts):
        return keras.utils.to_categorical(labels, task.num_classes)

    def dataset(self, task, data, cfg, opts, training):
        n = task.num_classes
        onehot = lambda x, y: (x, tf.one_hot(y, n))  # noqa: E731
        if not training:
            return data.batches(task.input_size, cfg.batch_size).map(onehot)
        augment = build_augmentation(cfg.augment, cfg.seed)
        ds = data.batches(task.input_size, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                          repeat=True).map(onehot)
        mix = batch_mixing(opts.mixup, opts.cutmix, cfg.seed)
        return ds if mix is None else ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)

    def reports(self, task, val, out_dir: Path, cfg, opts):
        if val is not None:
            task.evaluate(val, cfg.batch_size, plot=out_dir / "confusion_val.png")
