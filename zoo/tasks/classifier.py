"""``FineTunedClassifier``: a backbone with a trained classification head and its class names."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from zoo import io as zio
from zoo import plots
from zoo.data import as_labeled
from zoo.errors import DataError
from zoo.layers import Normalize
from zoo.model import Progress, ZooModel, entry_of, open_folder


class FineTunedClassifier(ZooModel):
    """A backbone with a trained classification head and its class names."""

    kind = "classifier"

    def __init__(self, backbone: ZooModel, class_names, dropout: float = 0.2):
        self.__dict__.update({k: v for k, v in backbone.__dict__.items() if k != "_fns"})
        self._fns = {}
        self.class_names = list(class_names)
        self.dropout = dropout
        self.history: dict = {}
        self.training_config: dict = {}
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

    def predict(self, images, batch_size: int = 64, tta: bool = False, return_sources: bool = False,
                value_range: str = "auto"):
        """Class probabilities (N, classes); ``tta=True`` averages them with the mirrored images'."""
        r = self._run("predict", self.classifier_model, images, batch_size, flip_tta=tta, value_range=value_range)
        return r if return_sources else r.outputs

    def evaluate(self, test, batch_size: int = 64, plot: str | Path | None = None, tta: bool = False) -> dict:
        """Accuracy, loss and confusion matrix on labelled data (optionally a PNG of the matrix).

        Pixels go through the same converter as :meth:`predict`. ``tta=True``: horizontal-flip
        test-time augmentation (two forward passes per image).
        """
        test = as_labeled(test, self.class_names)
        if test.class_names != self.class_names:
            raise DataError(f"the test data's classes {test.class_names[:5]}... differ from the model's "
                                      f"{self.class_names[:5]}...")
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
        return {"labels": self.class_names, "head": {"dropout": self.dropout},
                "history": {k: [float(v) for v in vs] for k, vs in self.history.items()},
                "training": _jsonable(self.training_config)}

    @classmethod
    def _from_folder(cls, path, cfg) -> "FineTunedClassifier":
        zio.require(cfg, path, labels=list)
        backbone = ZooModel(entry_of(cfg, path), cfg["input_size"], weights=None)
        head = cfg.get("head") if isinstance(cfg.get("head"), dict) else {}
        clf = cls(backbone, cfg["labels"], float(head.get("dropout", 0.2)))
        clf.history = cfg.get("history") or {}
        clf.training_config = cfg.get("training") or {}
        return clf


def _jsonable(d: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v))
            for k, v in (d or {}).items()}


zio.register_kind("classifier", open_folder(FineTunedClassifier))
