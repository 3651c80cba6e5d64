"""``MultiLabelClassifier``: a sigmoid head on the pooled embedding, one threshold per class."""
from __future__ import annotations

import keras
import numpy as np

from zoo import inference
from zoo.errors import DataError
from zoo.kinds import register_kind
from zoo.tasks.base import Task
from zoo.tasks.multilabel.data import as_multilabel
from zoo.tasks.multilabel.train import MultiLabelTraining


@register_kind("multilabel")
class MultiLabelClassifier(Task):
    """A backbone with a sigmoid head: each class present or not, decided by its own threshold."""

    training = MultiLabelTraining()

    def __init__(self, backbone, class_names, dropout: float = 0.2, thresholds=None):
        super().__init__(backbone, class_names)
        if len(self.class_names) < 1:
            raise DataError("a multi-label classifier needs at least one class")
        self.dropout = dropout
        self.thresholds = np.full(len(self.class_names), 0.5, np.float32) if thresholds is None \
            else np.asarray(thresholds, np.float32)
        self.head = keras.Sequential([
            keras.layers.Dropout(dropout, name="head_dropout"),
            keras.layers.Dense(len(self.class_names), activation="sigmoid", dtype="float32", name="head_dense"),
        ], name="head")
        self.multilabel_model = self.on_pooled(self.head, "multilabel")

    @property
    def keras_model(self):
        return self.multilabel_model

    def predict(self, images, batch_size: int = 64, return_sources: bool = False, value_range: str = "auto",
                progress: bool = True):
        """(N, C) probabilities, one per class (they need not sum to 1)."""
        return self._predict(images, what="predict", batch_size=batch_size, value_range=value_range,
                             progress=progress, return_sources=return_sources)

    def predict_labels(self, images, batch_size: int = 64, return_sources: bool = False, **kwargs):
        """Per image, the names of the classes whose probability reaches their threshold (best first)."""
        r = self.predict(images, batch_size, return_sources=True, **kwargs)
        out = [[self.class_names[c] for c in np.argsort(-p) if p[c] >= self.thresholds[c]] for p in r.outputs]
        return r._replace(outputs=out) if return_sources else out

    def choose_thresholds(self, data, batch_size: int = 64) -> np.ndarray:
        """Each class's threshold: the probability that maximises its F1 on ``data`` (0.5 for a class
        without positives there)."""
        probs, y = self._labelled(data, batch_size)
        self.thresholds = np.array([best_f1_threshold(probs[:, c], y[:, c]) for c in range(self.num_classes)],
                                   np.float32)
        return self.thresholds

    def evaluate(self, test, batch_size: int = 64) -> dict:
        """``{"mAP", "f1_micro", "f1_macro", "per_class": {name: {"AP", "f1", "threshold", "support"}}, "n"}``.

        mAP averages average precision over the classes with positives in ``test``; F1 uses the
        per-class thresholds (micro: over every decision, macro: the mean of the classes' F1)."""
        from sklearn.metrics import average_precision_score, f1_score

        probs, y = self._labelled(test, batch_size)
        pred = (probs >= self.thresholds[None]).astype(int)
        per, aps = {}, []
        for c, name in enumerate(self.class_names):
            pos = int(y[:, c].sum())
            ap = float(average_precision_score(y[:, c], probs[:, c])) if pos else None
            if ap is not None:
                aps.append(ap)
            per[name] = {"AP": ap, "f1": float(f1_score(y[:, c], pred[:, c], zero_division=0)),
                         "threshold": float(self.thresholds[c]), "support": pos}
        return {"mAP": float(np.mean(aps)) if aps else None,
                "f1_micro": float(f1_score(y, pred, average="micro", zero_division=0)),
                "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
                "per_class": per, "n": int(len(y))}

    def _labelled(self, data, batch_size):
        data = as_multilabel(data, self.class_names)
        if data.class_names != self.class_names:
            raise DataError(f"the data's classes {data.class_names[:5]}... differ from the model's "
                            f"{self.class_names[:5]}...")
        probs, y = inference.run(self._call("predict"), inference.labelled(data, self.input_size, batch_size),
                                 what="evaluate").outputs
        return probs, y.astype(int)

    def describe(self, output) -> dict:
        """The classes at or above their thresholds, and the five most probable with their probabilities."""
        p = np.asarray(output)
        return {"labels": [self.class_names[c] for c in np.argsort(-p) if p[c] >= self.thresholds[c]],
                "probabilities": {self.class_names[c]: round(float(p[c]), 4) for c in np.argsort(-p)[:5]}}

    def export_signature(self, input_dtype: str = "uint8"):
        """``probabilities`` (N, C), ``present`` (N, C) bool at the per-class thresholds, ``embedding`` (N, D)."""
        from zoo.export import Signature, model_metadata, pixel_input

        m = self.multilabel_model
        probs = m.output
        present = keras.layers.Lambda(lambda p: p >= self.thresholds[None], name="present")(probs)
        inner = keras.Model(m.input, {"probabilities": probs, "present": present,
                                      "embedding": m.get_layer("head").input})
        raw, x = pixel_input(self.input_size, input_dtype)
        return Signature(keras.Model(raw, inner(x), name=f"{self.name}_multilabel_export"),
                         {**model_metadata(self, "multilabel"), "labels": list(self.class_names),
                          "thresholds": [float(t) for t in self.thresholds]})

    # ---- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"head": {"dropout": self.dropout}}

    def get_arrays(self) -> dict:
        return {"thresholds": self.thresholds}

    @classmethod
    def from_config(cls, backbone, config, arrays, class_names, **_):
        return cls(backbone, class_names, float(config["head"]["dropout"]), arrays.get("thresholds"))


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold on scores ``p`` with the best F1 for 0/1 truths ``y`` (midway to the next score)."""
    if not y.any():
        return 0.5
    order = np.argsort(-p)
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    f1 = 2 * tp / (np.arange(1, len(ys) + 1) + ys.sum())
    k = int(np.argmax(f1))
    nxt = ps[k + 1] if k + 1 < len(ps) else 0.0
    return float((ps[k] + nxt) / 2) if ps[k] > nxt else float(ps[k])


train = MultiLabelClassifier.train  # multilabel.train(train, val, backbone=..., **settings): see zoo.training.train
