"""What every image-text model shares (:class:`DualEncoder`): the text side, zero-shot with prompt
ensembling, retrieval metrics, the index interface, and the heads kept as numpy arrays."""
from __future__ import annotations

import hashlib  # noqa: F401
import math  # noqa: F401
from pathlib import Path

import numpy as np

from zoo import io as zio
from zoo.errors import DataError, InputShapeError, SavedModelError
from zoo.inference import Embedded
from zoo.model import ZooModel
from zoo.tasks.base import Task
from zoo.text import TextTower, check_texts, load_text_tower, text_spec

KIND = "image_text"
DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "{}")
IMAGE_WEIGHTS, TEXT_WEIGHTS, HEADS = "image.weights.h5", "text.weights.h5", "heads.npz"
ACTIVATIONS = {None: lambda x: x, "relu": lambda x: np.maximum(x, 0.0)}


def l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Head:
    """A small MLP kept as numpy arrays: ``[(w, b, activation), ...]`` applied in order."""

    def __init__(self, layers):
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32), act) for w, b, act in layers]
        for _, _, act in self.layers:
            if act not in ACTIVATIONS:
                raise SavedModelError(f"unknown head activation {act!r}; known: {[a for a in ACTIVATIONS if a]}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for w, b, act in self.layers:
            x = ACTIVATIONS[act](x @ w + b)
        return x

    @property
    def in_dim(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.layers[-1][0].shape[1])

    def arrays(self, prefix: str) -> dict:
        out = {}
        for i, (w, b, _) in enumerate(self.layers):
            out[f"{prefix}.{i}.w"], out[f"{prefix}.{i}.b"] = w, b
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str, activations: list) -> "Head":
        return cls([(arrays[f"{prefix}.{i}.w"], arrays[f"{prefix}.{i}.b"], act) for i, act in enumerate(activations)])

    def digest(self, h):
        for w, b, act in self.layers:
            h.update(w.tobytes()), h.update(b.tobytes()), h.update(str(act).encode())


def _pairs_parts(pairs):
    """(images, captions, labels or None) from a Pairs-like object or a tuple."""
    if hasattr(pairs, "images") and hasattr(pairs, "captions"):
        return pairs.images, list(pairs.captions), getattr(pairs, "labels", None)
    if isinstance(pairs, (tuple, list)) and len(pairs) in (2, 3):
        return pairs[0], list(pairs[1]), (pairs[2] if len(pairs) == 3 else None)
    raise DataError("pairs must be (images, captions[, labels]) or an object with .images and .captions "
                    "(zoo.tasks.image_text.read_pairs)")


def _rows_of(sources, images) -> np.ndarray:
    """Row of the original input that each embedded source is (paths or indices)."""
    if sources and isinstance(sources[0], (int, np.integer)):
        return np.asarray(sources, int)
    where = {str(p): i for i, p in enumerate(images)} if isinstance(images, (list, tuple)) else {}
    return np.asarray([where.get(str(s), i) for i, s in enumerate(sources)], int)


def retrieval_metrics(img: np.ndarray, txt: np.ndarray, cap_ids: np.ndarray, ks=(1, 5, 10), labels=None,
                      cap_labels=None) -> dict:
    """Recall@k for L2-normalised image rows and unique-caption rows, ``cap_ids[i]`` the caption of image i.

    image->text: the image's own caption is among the k best of all distinct captions.
    text->image: one of the images paired with that caption is among the k best images (identical
    captions are one query). With ``labels`` (per image) and ``cap_labels`` (per caption), also the
    share of the k best images that have the caption's label (text->image precision@k).
    """
    s = img @ txt.T
    n, u = s.shape
    own = s[np.arange(n), cap_ids]
    rank = (s > own[:, None]).sum(1)
    kmax = min(max(ks), n)
    top = np.argpartition(-s, kmax - 1, axis=0)[:kmax] if kmax < n else np.arange(n)[:, None].repeat(u, 1)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 0), axis=0), 0)  # (kmax, U) best first
    hit = cap_ids[top] == np.arange(u)[None]
    out = {}
    for k in ks:
        out[f"i2t_recall@{k}"] = float((rank < k).mean())
        out[f"t2i_recall@{k}"] = float(hit[:k].any(0).mean())
    if labels is not None and cap_labels is not None:
        same = np.asarray(labels)[top] == np.asarray(cap_labels)[None]
        for k in ks:
            out[f"t2i_precision@{k}"] = float(same[:k].mean())
    return out


class DualEncoder(Task):
    """What ConSE, trained (LiT) and pretrained (CLIP / SigLIP) image-text models share: text side,
    zero-shot, evaluation, index use. The task's backbone is the image tower."""

    kind = KIND
    method = "dual"

    def __init__(self, image_tower: ZooModel, text_tower: TextTower, templates=DEFAULT_TEMPLATES):
        super().__init__(image_tower)
        self.text_tower = text_tower
        self.templates = list(templates)

    @property
    def image_tower(self) -> ZooModel:
        return self.backbone

    # ---- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.method}:{self.image_tower.entry.full_name}+{self.text_tower.spec.name}"

    def _head_digest(self) -> str:
        return ""

    def fingerprint(self) -> dict:
        """What an embedding in the joint space depends on: both towers, the heads, preprocessing."""
        return {"model": self.name, "weights": self.image_tower.weights_digest(),
                "preprocessing": self.preprocessing.fingerprint(self.input_size),
                **self.text_tower.fingerprint(), "heads": self._head_digest()}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} {self.input_size}px dim={self.feature_dim}>"

    @property
    def feature_dim(self) -> int:
        raise NotImplementedError

    # ---- encoders -------------------------------------------------------------------------
    def _image_outputs(self, images, batch_size, progress, value_range) -> Embedded:
        raise NotImplementedError

    def _project_images(self, outputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _project_text(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_images(self, images, batch_size: int = 64, progress: bool = False, return_sources: bool = False,
                      value_range: str = "auto"):
        """(N, dim) L2-normalised image vectors in the joint space; ``return_sources`` as in ZooModel.embed."""
        r = self._image_outputs(images, batch_size, progress, value_range)
        v = l2(self._project_images(r.outputs))
        return r._replace(outputs=v) if return_sources else v

    def embed(self, images, batch_size: int = 64, normalize: bool = True, progress: bool = True,
              return_sources: bool = False, value_range: str = "auto"):
        """``encode_images`` with ZooModel.embed's signature (vectors are always L2-normalised), so that
        ``zoo.index.build(..., model=this)`` indexes the joint space."""
        return self.encode_images(images, batch_size, progress, return_sources, value_range)

    def encode_text(self, texts, batch_size: int = 256) -> np.ndarray:
        """(N, dim) L2-normalised text vectors in the joint space."""
        return l2(self._project_text(self.text_tower.encode(check_texts(texts), batch_size)))

    def class_embeddings(self, class_names, templates=None) -> np.ndarray:
        """One vector per class: the normalised mean of its names in every template (prompt ensembling)."""
        names = check_texts(class_names)
        templates = list(templates) if templates is not None else self.templates
        if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
            raise InputShapeError("templates must be strings with a '{}' where the class name goes, "
                                  "e.g. ['a photo of a {}.']")
        e = self.encode_text([t.format(n) for n in names for t in templates]).reshape(len(names), len(templates), -1)
        return l2(e.mean(1))

    @property
    def zero_shot_scale(self) -> float:
        return 100.0

    def seen_penalty(self, class_vectors: np.ndarray) -> np.ndarray:
        """Per class, what is subtracted from its cosines before the softmax (0: none)."""
        return np.zeros(len(class_vectors), np.float32)

    def zero_shot_embeddings(self, image_vectors: np.ndarray, class_names, templates=None) -> np.ndarray:
        """Class probabilities for image vectors already in the joint space."""
        c = self.class_embeddings(class_names, templates)
        logits = self.zero_shot_scale * (np.asarray(image_vectors) @ c.T - self.seen_penalty(c)[None])
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def zero_shot(self, images, class_names, templates=None, batch_size: int = 64, return_sources: bool = False):
        """(N, len(class_names)) probabilities over the given names: softmax of the scaled cosine
        between each image and each class's prompt-ensembled text vector."""
        r = self.encode_images(images, batch_size, return_sources=True)
        p = self.zero_shot_embeddings(r.outputs, class_names, templates)
        return r._replace(outputs=p) if return_sources else p

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, pairs, class_names=None, templates=None, ks=(1, 5, 10), batch_size: int = 64) -> dict:
        """Recall@k image->text and text->image on ``pairs`` (images, captions[, labels]; the images may be
        given as their ``encode_images`` vectors); with labels,
        text->image precision@k and, when ``class_names`` are given (or the labels are strings),
        zero-shot accuracy over those names."""
        images, captions, labels = _pairs_parts(pairs)
        if isinstance(images, np.ndarray) and images.ndim == 2 and images.dtype.kind == "f":  # vectors given
            if images.shape[1] != self.feature_dim:
                raise InputShapeError(f"got {images.shape[1]}-d vectors; {self.name} makes {self.feature_dim}-d")
            r = Embedded(l2(images), list(range(len(images))), [])
        else:
            r = self.encode_images(images, batch_size, return_sources=True)
        rows = _rows_of(r.sources, images)
        captions = [captions[i] for i in rows]
        uniq, cap_ids = np.unique(np.asarray(captions, dtype=object).astype(str), return_inverse=True)
        txt = self.encode_text(list(uniq))
        out = {"n_images": int(len(rows)), "n_captions": int(len(uniq))}
        lab = None
        if labels is not None:
            lab = np.asarray(labels)[rows]
            cap_labels = np.array([lab[cap_ids == u][0] for u in range(len(uniq))])
            out.update(retrieval_metrics(r.outputs, txt, cap_ids, ks, lab, cap_labels))
        else:
            out.update(retrieval_metrics(r.outputs, txt, cap_ids, ks))
        if lab is not None and (class_names is not None or lab.dtype.kind in "UO"):
            names = list(class_names) if class_names is not None else sorted(set(lab.tolist()))
            y = lab if lab.dtype.kind in "iu" else np.array([names.index(v) for v in lab])
            pred = self.zero_shot_embeddings(r.outputs, names, templates).argmax(1)
            out["zero_shot_accuracy"] = float((pred == y).mean())
        return out

    # ---- persistence ----------------------------------------------------------------------
    def _text_config(self) -> dict:
        spec = self.text_tower.spec
        return {"name": self.text_tower.name, "files": dict(spec.files), "trained": False}

    def _image_config(self) -> dict:
        t = self.image_tower
        return {"base_model": t.entry.name, "tag": t.entry.tag, "input_size": t.input_size,
                "preprocessing": t.preprocessing.to_dict()}


def _savez(path, arrays: dict):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _text_tower_of(cfg: dict, path, text_weights=None) -> TextTower:
    path = Path(path)
    zio.require(cfg, path, text=dict)
    t = cfg["text"]
    name = t.get("name", "minilm")
    spec = text_spec(name)
    if t.get("files") and t["files"] != spec.files:
        raise SavedModelError(f"{path} was saved with other {spec.name} files ({t['files']}) than this zoo "
                              f"verifies ({spec.files}): upgrade zoo or re-train")
    if not t.get("trained"):
        return load_text_tower(name, text_weights)
    tower = load_text_tower(name, text_weights, shared=False)
    tower.backbone.load_weights(path / TEXT_WEIGHTS)
    tower.changed()
    return tower
