"""``FineTunedClassifier``: a backbone with a trained softmax head and its class names."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from zoo import inference, plots
from zoo.data import as_labeled
from zoo.errors import DataError
from zoo.kinds import register_kind
from zoo.tasks.base import Task
from zoo.tasks.classifier.train import ClassifierTraining


@register_kind("classifier")
class FineTunedClassifier(Task):
    """A backbone with a trained classification head and its class names."""

    training = ClassifierTraining()

    def __init__(self, backbone, class_names, dropout: float = 0.2):
        super().__init__(backbone, class_names)
        self.dropout = dropout
        self.head = keras.Sequential([
            keras.layers.Dropout(dropout, name="head_dropout"),
            keras.layers.Dense(len(self.class_names), activation="softmax", dtype="float32", name="head_dense"),
        ], name="head")
        self.classifier_model = self.on_pooled(self.head, "classifier")

    @property
    def keras_model(self):
        return self.classifier_model

    def predict(self, images, batch_size: int = 64, tta: bool = False, return_sources: bool = False,
                value_range: str = "auto", progress: bool = True):
        """Class probabilities (N, classes); ``tta=True`` averages them with the mirrored images'."""
        return self._predict(images, what="predict", batch_size=batch_size, value_range=value_range,
                             progress=progress, return_sources=return_sources,
                             fn=self._call("predict", flip_tta=tta))

    def classify(self, images, top_k: int = 5, batch_size: int = 64, return_sources: bool = False, **kwargs):
        """Per image, the ``top_k`` (class index, class name, probability), best first."""
        from zoo.labels import check_top_k, top_classes

        check_top_k(top_k)  # a bad top_k fails before any work
        r = self.predict(images, batch_size, return_sources=True, **kwargs)
        out = top_classes(r.outputs, self.class_names, top_k)
        return r._replace(outputs=out) if return_sources else out

    def evaluate(self, test, batch_size: int = 64, plot: str | Path | None = None, tta: bool = False) -> dict:
        """Accuracy, loss and confusion matrix on labelled data (optionally a PNG of the matrix).

        Pixels go through the same converter as :meth:`predict`. ``tta=True``: horizontal-flip
        test-time augmentation (two forward passes per image).
        """
        test = as_labeled(test, self.class_names)
        if test.class_names != self.class_names:
            raise DataError(f"the test data's classes {test.class_names[:5]}... differ from the model's "
                            f"{self.class_names[:5]}...")
        probs, ys = inference.run(self._call("predict", flip_tta=tta),
                                  inference.labelled(test, self.input_size, batch_size), what="evaluate").outputs
        pred = probs.argmax(1)
        n = len(self.class_names)
        cm = np.bincount(ys * n + pred, minlength=n * n).reshape(n, n)
        loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(ys)), ys], 1e-12))))
        result = {"accuracy": float((pred == ys).mean()), "loss": loss, "n": int(len(ys)), "confusion_matrix": cm}
        if plot:
            plots.confusion_matrix(cm, self.class_names, plot)
        return result

    def export_signature(self, input_dtype: str = "uint8"):
        """``probabilities`` (N, classes) and ``embedding`` (N, D)."""
        from zoo.export import Signature, model_metadata, pixel_input

        cm = self.classifier_model
        inner = keras.Model(cm.input, {"probabilities": cm.output, "embedding": cm.get_layer("head").input})
        raw, x = pixel_input(self.input_size, input_dtype)
        return Signature(keras.Model(raw, inner(x), name=f"{self.name}_classifier_export"),
                         {**model_metadata(self, "classifier"), "labels": list(self.class_names)})

    # ---- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"head": {"dropout": self.dropout}}

    @classmethod
    def from_config(cls, backbone, config, arrays, class_names, **_):
        head = config.get("head") if isinstance(config.get("head"), dict) else {}
        return cls(backbone, class_names, float(head.get("dropout", 0.2)))
