"""Few-shot classification over frozen embeddings: k-NN or nearest prototype, SimpleShot style.

Features are centred on the support mean (or a given mean) and L2-normalised before cosine
search (Wang et al. 2019, "SimpleShot"). Measured on 5-way Fashion-MNIST episodes with
EfficientNet-Lite0 at 224px (``bench/fewshot.py``), centring adds about 1.5 points to k-NN.
``k`` is capped at the smallest class's support size, so a 1-shot fit is 1-NN.
Saved as kind "fewshot"; episode evaluation lives in ``recipes.fewshot``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import zoo.index as zindex
from zoo import io as zio
from zoo.errors import NotCalibratedError, NotFittedError, RecipeError, SavedRecipeError
from zoo.kinds import register_kind
from zoo.tasks.base import Task
from zoo.tasks.common import embed, is_embeddings, labelled_folder, load_recorded_model, resolve_model

MODES = ("knn", "prototype")


def _embed_labelled(model, images, labels, batch_size=64):
    """(embeddings, labels) keeping only the rows the model could read."""
    if labels is None:
        if isinstance(images, (str, Path)) and Path(images).is_dir():
            images, labels = labelled_folder(images)
        else:
            raise RecipeError("labels are required unless images is a folder with one subfolder per class")
    labels = np.asarray(labels)
    if model is not None and not is_embeddings(images) and isinstance(images, (list, tuple)):
        from zoo.runtimes import bulk_model

        r = bulk_model(model, "auto", len(images)).embed(images, batch_size=batch_size, progress=False,
                                                          return_sources=True)
        where = {str(Path(p)): i for i, p in enumerate(images)}
        e, labels = r.outputs, labels[[where[str(p)] for p in r.sources]]
    else:
        e = embed(model, images, batch_size)
    if len(e) != len(labels):
        raise RecipeError(f"{len(e)} images but {len(labels)} labels: pass one label per image")
    return e, labels


@register_kind("fewshot", aliases=("fewshot.KNNClassifier",))
class KNNClassifier(Task):
    """k-NN / nearest-prototype classifier on a frozen model's embeddings.

    ``model``: registry name, saved-model folder, ZooModel, or None to take only precomputed
    embeddings (2-D float arrays are always taken as embeddings). ``mode``: "knn" (similarity-
    weighted vote of the ``k`` nearest) or "prototype" (nearest class mean). ``center``: "support"
    (SimpleShot), "none", or a mean vector (e.g. of unlabelled images from the domain).
    ``power``: optional power transform ``sign(x)|x|**power`` before centring.
    """

    stores_backbone = False  # the backbone is the registry's (or a saved folder's): recorded, not copied
    load_error = SavedRecipeError

    def __init__(self, model="efficientnet_lite0", k: int = 5, metric: str = "cosine", mode: str = "knn",
                 center="support", power: float | None = None, unknown_threshold: float | None = None,
                 unknown_label="unknown", temperature: float = 0.1, input_size: int | None = None):
        if mode not in MODES:
            raise RecipeError(f"mode must be one of {MODES}; got {mode!r}")
        if metric not in ("cosine", "l2"):
            raise RecipeError(f"metric must be 'cosine' or 'l2'; got {metric!r}")
        if int(k) < 1:
            raise RecipeError(f"k must be >= 1; got {k}")
        if not (isinstance(center, np.ndarray) or center in ("support", "none", None)):
            raise RecipeError("center must be 'support', 'none' or a mean vector")
        super().__init__(resolve_model(model, input_size))
        self.k, self.metric, self.mode, self.center, self.power = int(k), metric, mode, center, power
        self.unknown_threshold, self.unknown_label, self.temperature = unknown_threshold, unknown_label, temperature
        self.classes_ = None

    # ---- features ---------------------------------------------------------------------------
    def _raw(self, x):
        e = np.asarray(x, np.float32) if is_embeddings(x) else embed(self.model, x)
        if self.power:
            e = np.sign(e) * np.abs(e) ** self.power
        return e

    def transform(self, x) -> np.ndarray:
        """Embeddings after power transform, centring and (cosine) L2 normalisation."""
        self._check_fitted()
        e = self._raw(x) - self.mean_
        if self.metric == "cosine":
            e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return e

    # ---- fit --------------------------------------------------------------------------------
    def fit(self, images, labels=None, batch_size: int = 64) -> "KNNClassifier":
        """Fit on support images (or embeddings) and labels, or a class-per-subfolder folder."""
        e, labels = _embed_labelled(self.model if not is_embeddings(images) else None, images, labels, batch_size)
        if self.power:
            e = np.sign(e) * np.abs(e) ** self.power
        return self._fit_raw(e, labels)

    def _fit_raw(self, e, labels):
        if len(e) == 0:
            raise RecipeError("no support examples")
        self.classes_, self._y = np.unique(labels, return_inverse=True)
        if self.center == "support":
            self.mean_ = e.mean(0)
        elif isinstance(self.center, np.ndarray):
            if self.center.shape != (e.shape[1],):
                raise RecipeError(f"center has shape {self.center.shape}; expected ({e.shape[1]},)")
            self.mean_ = self.center.astype(np.float32)
        else:
            self.mean_ = np.zeros(e.shape[1], np.float32)
        self._support_raw = e
        s = e - self.mean_
        if self.metric == "cosine":
            s /= np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        self._support = s
        counts = np.bincount(self._y)
        self.k_ = min(self.k, int(counts.min()))
        if self.mode == "prototype":
            protos = np.stack([s[self._y == c].mean(0) for c in range(len(self.classes_))])
            self._index = zindex.from_embeddings(protos, metric=self.metric, index_type="Flat")
        else:
            self._index = zindex.from_embeddings(s, metric=self.metric, index_type="Flat")
        return self

    def _check_fitted(self):
        if self.classes_ is None:
            raise NotFittedError("call fit(support_images, labels) first")

    # ---- predict ----------------------------------------------------------------------------
    def _search(self, q: np.ndarray, k: int):
        r = self._index.search_embeddings(q, k)
        score = r.scores if self.metric == "cosine" else -r.scores
        return r.ids, score

    def _class_scores(self, q) -> tuple[np.ndarray, np.ndarray]:
        """(per-class scores (N, C) for probabilities, confidence (N,) for the unknown test)."""
        n_cls = len(self.classes_)
        if self.mode == "prototype":
            ids, score = self._search(q, n_cls)
            out = np.full((len(q), n_cls), -np.inf, np.float32)
            np.put_along_axis(out, ids, score, axis=1)
            return out, score[:, 0]
        ids, score = self._search(q, self.k_)
        w = np.maximum(score, 1e-6) if self.metric == "cosine" else 1.0 / (1e-6 - score)
        votes = np.zeros((len(q), n_cls), np.float32)
        np.add.at(votes, (np.repeat(np.arange(len(q)), ids.shape[1]), self._y[ids].ravel()), w.ravel())
        return votes, score[:, 0]

    def predict_proba(self, images) -> np.ndarray:
        """(N, C) class probabilities in ``classes_`` order (vote shares, or a softmax over
        prototype similarities at ``temperature``)."""
        s, _ = self._class_scores(self.transform(images))
        if self.mode == "prototype":
            z = np.exp((s - s.max(1, keepdims=True)) / self.temperature)
            return z / z.sum(1, keepdims=True)
        return s / np.maximum(s.sum(1, keepdims=True), 1e-12)

    def confidence(self, images) -> np.ndarray:
        """Similarity to the nearest support example (k-NN) or prototype; -distance for L2."""
        return self._class_scores(self.transform(images))[1]

    def predict(self, images) -> np.ndarray:
        """Labels; ``unknown_label`` where confidence is below ``unknown_threshold`` (if set)."""
        s, conf = self._class_scores(self.transform(images))
        pred = self.classes_[np.argmax(s, axis=1)]
        if self.unknown_threshold is None:
            return pred
        pred = pred.astype(object)
        pred[conf < self.unknown_threshold] = self.unknown_label
        return pred

    def calibrate_unknown(self, images=None, reject_rate: float = 0.05) -> float:
        """Set ``unknown_threshold`` so that about ``reject_rate`` of known-class images are
        answered "unknown". ``images``: held-out images of the known classes; default:
        leave-one-out over the support set (needs 2+ examples per class)."""
        self._check_fitted()
        if not 0 <= reject_rate < 1:
            raise RecipeError(f"reject_rate must be in [0, 1); got {reject_rate}")
        if images is not None:
            conf = self.confidence(images)
        else:
            conf = self._loo_confidence()
        self.unknown_threshold = float(np.quantile(conf, reject_rate))
        return self.unknown_threshold

    def _loo_confidence(self) -> np.ndarray:
        counts = np.bincount(self._y)
        if counts.min() < 2:
            raise NotCalibratedError("leave-one-out calibration needs 2+ support examples per class: "
                                     "pass held-out images of the known classes to calibrate_unknown(images)")
        s = self._support
        if self.mode == "knn":
            ids, score = zindex.from_embeddings(s, metric=self.metric, index_type="Flat").search_embeddings(s, 2)[:2]
            score = score if self.metric == "cosine" else -score
            return np.where(ids[:, 0] == np.arange(len(s)), score[:, 1], score[:, 0])
        sums = np.stack([s[self._y == c].sum(0) for c in range(len(self.classes_))])
        own = (sums[self._y] - s) / (counts[self._y] - 1)[:, None]
        protos = sums / counts[:, None]
        if self.metric == "cosine":
            own /= np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)
            protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
            own_s = (own * s).sum(1)
        else:
            own_s = -np.linalg.norm(own - s, axis=1)
        idx = zindex.from_embeddings(protos, metric=self.metric, index_type="Flat")
        r = idx.search_embeddings(s, len(protos))
        other = r.scores if self.metric == "cosine" else -r.scores
        other = np.where(r.ids == self._y[:, None], -np.inf, other).max(1)
        return np.maximum(own_s, other)

    @property
    def class_names(self):
        return [str(c) for c in self.classes_] if self.classes_ is not None else []

    @class_names.setter
    def class_names(self, value):  # set by Task.__init__; the fitted classes are the truth
        pass

    def export_signature(self, input_dtype: str = "uint8"):
        """``probabilities`` (N, classes), ``confidence`` (N,), ``unknown`` (N,) bool: the support set,
        centring and unknown threshold are constants of the graph."""
        import keras

        from zoo.export import ExportError, Signature, _jsonable, backbone_trunk, export_layers, model_metadata
        from zoo.export import pixel_input, without_head

        if self.classes_ is None:
            raise ExportError("the few-shot classifier is not fitted: call fit(support_images, labels) before export")
        m = self.model
        if m is None:
            raise ExportError("this few-shot classifier has no model (it was fitted on embeddings): "
                              "create it with model=... to export an image graph")
        n_cls = len(self.classes_)
        s = np.asarray(self._support, np.float32)
        if self.mode == "prototype":
            s = np.stack([s[self._y == c].mean(0) for c in range(n_cls)])
            if self.metric == "cosine":
                s /= np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
            labels = np.arange(n_cls)
        else:
            labels = self._y
        head = export_layers().FewShotHead(s, labels, n_cls, self.mean_, self.mode, self.metric, self.k_, self.power,
                                           self.temperature, self.unknown_threshold, name="fewshot_head")
        raw, x = pixel_input(m.input_size, input_dtype)
        model = keras.Model(raw, head(backbone_trunk(without_head(m))(x)["embedding"]), name="fewshot_export")
        meta = {**model_metadata(m, "fewshot"), "labels": [_jsonable(c) for c in self.classes_],
                "unknown_threshold": self.unknown_threshold, "unknown_label": _jsonable(self.unknown_label),
                "mode": self.mode, "metric": self.metric, "k": int(self.k_), "support_size": int(len(self._support))}
        return Signature(model, meta)

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Folder: config.json (settings, classes, model record) + support.npy, labels.npy, mean.npy."""
        self._check_fitted()
        return super().save(path)

    def get_config(self) -> dict:
        return {"k": self.k, "metric": self.metric, "mode": self.mode,
                "center": self.center if isinstance(self.center, str) or self.center is None else "array",
                "power": self.power, "unknown_threshold": self.unknown_threshold,
                "unknown_label": self.unknown_label, "temperature": self.temperature,
                "classes": self.classes_.tolist()}

    def get_arrays(self) -> dict:
        if self.classes_ is None:
            return {}
        return {"support": self._support_raw.astype(np.float32), "labels": self._y.astype(np.int64),
                "mean": self.mean_.astype(np.float32)}

    @classmethod
    def from_config(cls, backbone, cfg, arrays, class_names, **_):
        center = arrays["mean"] if cfg["center"] == "array" else cfg["center"]
        out = cls(model=backbone, k=cfg["k"], metric=cfg["metric"], mode=cfg["mode"], center=center,
                  power=cfg["power"], unknown_threshold=cfg["unknown_threshold"],
                  unknown_label=cfg["unknown_label"], temperature=cfg["temperature"])
        out._fit_raw(arrays["support"], np.array(cfg["classes"])[arrays["labels"]])
        return out

    @classmethod
    def load_legacy(cls, path: Path, cfg: dict, model=None, **_) -> "KNNClassifier":
        zio.require(cfg, path, k=int, metric=str, mode=str, classes=list)
        arrays = {n: np.load(path / f"{n}.npy", allow_pickle=False) for n in ("support", "labels", "mean")}
        backbone = load_recorded_model(cfg["model"], model, "this classifier")
        return cls.from_config(backbone, cfg, arrays, cfg["classes"])


