"""The multi-label classifier's part of the one trainer: binary cross-entropy per class, the head
first on cached pooled features, image augmentation that
keeps every label (flips, shifts, colour); per-class thresholds chosen on validation at the end.
Validation loss (binary cross-entropy, a proper scoring rule) picks the better epoch and phase: it
needs no boolean ops, which TensorFlow's oneDNN build logs an error about for Keras' AUC metric."""
from __future__ import annotations

from dataclasses import dataclass

import keras

from zoo.augment import build_augmentation
from zoo.errors import DataError
from zoo.tasks.multilabel.data import as_multilabel
from zoo.training import TrainingSpec, holdout


@dataclass
class MultiLabelOptions:
    dropout: float = 0.2


class MultiLabelTraining(TrainingSpec):
    options = MultiLabelOptions
    monitor, mode = "val_loss", "min"
    cached_head = True
    curve_metric = None

    def read(self, text):
        from zoo.tasks.multilabel.data import read_csv

        return read_csv(text)

    def prepare(self, train, val, cfg, opts, class_names=None):
        train = as_multilabel(train, class_names)
        train, val = holdout(train, as_multilabel(val, train.class_names) if val is not None else None,
                             cfg.val_fraction, cfg.seed)
        if val is not None and val.class_names != train.class_names:
            raise DataError("train and validation data have different class names")
        if len(train) == 0:
            raise DataError("no training images")
        return train, val, train.class_names, cfg.input_size

    def build(self, kind, backbone, class_names, cfg, opts):
        return kind(backbone, class_names, opts.dropout)

    def loss(self, task, cfg, opts):
        return keras.losses.BinaryCrossentropy()

    def head_targets(self, task, labels, opts):
        return labels

    def dataset(self, task, data, cfg, opts, training):
        if not training:
            return data.batches(task.input_size, cfg.batch_size)
        return data.batches(task.input_size, cfg.batch_size, shuffle=True, seed=cfg.seed, repeat=True,
                            augment=build_augmentation(cfg.augment, cfg.seed))

    def finish(self, task, train, val, cfg, opts):
        task.choose_thresholds(val if val is not None else train, cfg.batch_size)

    def record(self, task, train, cfg, opts):
        return {"thresholds": [round(float(t), 4) for t in task.thresholds]}
