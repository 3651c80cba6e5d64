"""Image-text dual encoders: a zoo image tower and the text tower in one embedding space.

- :class:`ImageTextModel`: projections trained on image-caption pairs (LiT, "locked image tuning",
  Zhai et al. 2022; trained by ``zoo.tasks.image_text.train``).
- :class:`ConSE`: zero-shot with no image-text training at all (Norouzi et al. 2014): the ImageNet
  classifier's top-T probabilities weight the text embeddings of those ImageNet class names.
- :class:`~zoo.tasks.image_text.pretrained.PretrainedDualEncoder`: CLIP / SigLIP, both towers pretrained.

All have ``encode_images`` / ``encode_text`` (L2-normalised, same space), ``zero_shot`` (prompt
ensembling over templates), ``evaluate`` (recall@k both ways, zero-shot accuracy), ``embed`` and
``fingerprint`` (both towers), so ``zoo.index`` can index with them, and ``save`` / ``zoo.load``.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from zoo import io as zio
from zoo.errors import InputShapeError, RecipeError, SavedModelError
from zoo.kinds import register_kind
from zoo.model import ZooModel, entry_of
from zoo.tasks.image_text.dual import (  # noqa: F401  (re-exported)
    DEFAULT_TEMPLATES, HEADS, IMAGE_WEIGHTS, KIND, TEXT_WEIGHTS, DualEncoder, Head, _text_tower_of, l2,
    retrieval_metrics,
)
from zoo.tasks.image_text import pretrained
from zoo.text import TextTower, load_text_tower


class ImageTextModel(DualEncoder):
    """A zoo image tower and the text tower with trained projection heads (CLIP/SigLIP-style)."""

    method = "lit"

    def __init__(self, image_tower: ZooModel, text_tower: TextTower, image_head: Head, text_head: Head,
                 logit_scale: float = math.log(1 / 0.07), logit_bias: float | None = None, loss: str = "clip",
                 templates=DEFAULT_TEMPLATES, text_trained: bool = False, image_trained: bool = False):
        super().__init__(image_tower, text_tower, templates)
        if image_head.in_dim != image_tower.feature_dim or text_head.in_dim != text_tower.dim:
            raise InputShapeError(f"heads take {image_head.in_dim}/{text_head.in_dim} features; the towers make "
                                  f"{image_tower.feature_dim}/{text_tower.dim}")
        if image_head.out_dim != text_head.out_dim:
            raise InputShapeError(f"image head makes {image_head.out_dim}-d vectors, text head {text_head.out_dim}-d")
        self.image_head, self.text_head = image_head, text_head
        self.logit_scale, self.logit_bias, self.loss = float(logit_scale), logit_bias, loss
        self.text_trained, self.image_trained = text_trained, image_trained
        self.seen_text = None   # (U, dim) the training captions' vectors, for calibrated zero-shot
        self.calibration = 0.0  # gamma of calibrated stacking (Chao et al. 2016); 0: plain zero-shot
        self.history: dict = {}
        self.training_config: dict = {}

    @property
    def feature_dim(self) -> int:
        return self.image_head.out_dim

    @property
    def zero_shot_scale(self) -> float:
        return float(math.exp(self.logit_scale))

    def _head_digest(self) -> str:
        h = hashlib.sha256()
        self.image_head.digest(h), self.text_head.digest(h)
        h.update(np.float64(self.logit_scale).tobytes())  # calibration changes zero-shot only, not vectors
        return h.hexdigest()[:16]

    def seen_penalty(self, class_vectors):
        """Calibrated stacking (Chao et al. 2016), soft: a class whose text is close to the training
        captions ("seen") loses ``calibration`` x that closeness (max cosine), so that classes the model
        never saw are not always out-voted by seen ones. ``calibration = 0`` disables it."""
        if not self.calibration or self.seen_text is None:
            return super().seen_penalty(class_vectors)
        return (self.calibration * (class_vectors @ self.seen_text.T).max(1)).astype(np.float32)

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None,
               class_names=None, templates=None, **options):
        """The image side as a serving graph on raw pixels (see :mod:`zoo.export`): ``embedding``
        (N, dim), L2-normalised in the joint space; with ``class_names`` also ``probabilities``
        over them (their prompt-ensembled text vectors, scale and calibration are constants of
        the graph). Text is not in the graph: encode it with this model's ``encode_text``."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, class_names=class_names, templates=templates,
                      **options)

    def export_signature(self, input_dtype: str = "uint8", class_names=None, templates=None):
        import keras

        from zoo.export import Signature, backbone_trunk, export_layers, model_metadata, without_head, pixel_input

        m = self.image_tower
        raw, x = pixel_input(m.input_size, input_dtype)
        e = backbone_trunk(without_head(m))(x)["embedding"]
        for i, (w, b, act) in enumerate(self.image_head.layers):
            dense = keras.layers.Dense(w.shape[1], activation=act, name=f"image_head_{i}")
            e = dense(e)
            dense.set_weights([w, b])
        outs = {"embedding": export_layers().L2Normalize(name="joint_embedding")(e)}
        meta = {**model_metadata(m, "image_text"), "fingerprint": self.fingerprint(), "dim": int(self.feature_dim),
                "text_model": self.text_tower.name if hasattr(self.text_tower, "name") else None,
                "text_note": "text vectors come from encode_text; they are not part of this graph"}
        if class_names is not None:
            c = self.class_embeddings(class_names, templates)
            scale = self.zero_shot_scale
            zs = keras.layers.Dense(len(c), name="zero_shot_logits")
            logits = zs(outs["embedding"])
            zs.set_weights([(scale * c.T).astype(np.float32), (-scale * self.seen_penalty(c)).astype(np.float32)])
            outs["probabilities"] = keras.layers.Softmax(name="zero_shot")(logits)
            meta["labels"] = [str(n) for n in class_names]
        return Signature(keras.Model(raw, outs, name="image_text_export"), meta)

    def _image_outputs(self, images, batch_size, progress, value_range):
        return self.image_tower.embed(images, batch_size=batch_size, progress=progress, return_sources=True,
                                      value_range=value_range)

    def _project_images(self, feats):
        return self.image_head(feats)

    def _project_text(self, t):
        return self.text_head(t)

    stores_backbone = True  # the image tower's weights go with the heads (trained in mode="full")

    def get_config(self) -> dict:
        text = self._text_config()
        text["trained"] = bool(self.text_trained)
        return {"method": self.method, "text": text,
                "heads": {"image": [a for *_, a in self.image_head.layers], "text": [a for *_, a in self.text_head.layers]},
                "logit_scale": self.logit_scale, "logit_bias": self.logit_bias, "loss": self.loss,
                "templates": self.templates, "image_trained": self.image_trained,
                "calibration": float(self.calibration)}

    def get_arrays(self) -> dict:
        heads = {**self.image_head.arrays("image"), **self.text_head.arrays("text")}
        if self.seen_text is not None:
            heads["seen_text"] = np.asarray(self.seen_text, np.float32)
        return heads

    def extra_files(self) -> dict:
        return {TEXT_WEIGHTS: self.text_tower.backbone.save_weights} if self.text_trained else {}


class ConSE(DualEncoder):
    """Zero-shot from an ImageNet classifier and the text tower, no image-text training (Norouzi et al.
    2014): an image's vector is the probability-weighted mean of the text vectors of its top-T ImageNet
    class names, compared with the class names' text vectors."""

    method = "conse"

    def __init__(self, image_tower: ZooModel, text_tower: TextTower, top_t: int = 10, scale: float = 50.0,
                 templates=("{}",)):
        if image_tower.imagenet_model is None:
            raise InputShapeError(f"ConSE needs an ImageNet classifier; {image_tower.name} at "
                                  f"{image_tower.input_size}px has no classification head")
        if isinstance(top_t, bool) or not isinstance(top_t, int) or not 1 <= top_t <= 1000:
            raise InputShapeError(f"top_t must be an integer in 1..1000; got {top_t!r}")
        super().__init__(image_tower, text_tower, templates)
        self.top_t, self.scale = top_t, float(scale)
        self._label_vectors = None

    @property
    def feature_dim(self) -> int:
        return self.text_tower.dim

    @property
    def zero_shot_scale(self) -> float:
        return self.scale

    def _head_digest(self) -> str:
        return f"conse-top{self.top_t}"

    @property
    def label_vectors(self) -> np.ndarray:
        """(1000, dim) text vectors of the ImageNet class names."""
        if self._label_vectors is None:
            self._label_vectors = self.text_tower.encode(self.image_tower.labels)
        return self._label_vectors

    def _image_outputs(self, images, batch_size, progress, value_range):
        return self.image_tower.predict(images, batch_size=batch_size, return_sources=True, value_range=value_range)

    def _project_images(self, probs):
        probs = np.asarray(probs, np.float32)
        top = np.argpartition(-probs, self.top_t - 1, axis=1)[:, :self.top_t]
        w = np.take_along_axis(probs, top, 1)
        w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
        return np.einsum("nt,ntd->nd", w, self.label_vectors[top])

    def _project_text(self, t):
        return t

    stores_backbone = False  # the registry's classifier, re-loaded and checked by fingerprint

    def get_config(self) -> dict:
        return {"method": self.method, "text": self._text_config(), "top_t": self.top_t, "scale": self.scale,
                "templates": self.templates}


@register_kind(KIND, aliases=("pretrained_image_text",))
class ImageText(DualEncoder):
    """The image-text kind: opens the folders of every method (lit, conse, pretrained)."""

    @classmethod
    def from_config(cls, backbone, cfg, arrays, class_names, path=None, text_weights=None, **_):
        method = cfg.get("method")
        if method == "pretrained":
            return pretrained.from_config(backbone, cfg, arrays, path)
        if method == "conse":
            return ConSE(backbone, _text_tower_of(cfg, path, text_weights), top_t=int(cfg.get("top_t", 10)),
                         scale=float(cfg.get("scale", 50.0)), templates=cfg.get("templates") or ("{}",))
        if method == "lit":
            heads = cfg["heads"]
            m = ImageTextModel(backbone, _text_tower_of(cfg, path, text_weights),
                               Head.from_arrays(arrays, "image", heads["image"]),
                               Head.from_arrays(arrays, "text", heads["text"]),
                               logit_scale=cfg["logit_scale"], logit_bias=cfg.get("logit_bias"),
                               loss=cfg.get("loss", "clip"), templates=cfg.get("templates") or DEFAULT_TEMPLATES,
                               text_trained=bool(cfg["text"].get("trained")),
                               image_trained=bool(cfg.get("image_trained")))
            m.seen_text = arrays.get("seen_text")
            m.calibration = float(cfg.get("calibration") or 0.0)
            return m
        raise SavedModelError(f"an image-text model of method {method!r}, which this zoo cannot open "
                              "(known: lit, conse): upgrade zoo")

    @classmethod
    def load(cls, path, config=None, model=None, text_weights=None, **kwargs):
        """Open a saved image-text folder (``text_weights``: the text tower's folder, if not found)."""
        return super().load(path, config, model=model, text_weights=text_weights, **kwargs)

    @classmethod
    def load_legacy(cls, path, cfg, model=None, text_weights=None, **_):
        if cfg.get("method") == "pretrained" or cfg.get("kind") == "pretrained_image_text":
            return pretrained.load_v2(path, cfg)
        return _load_v2(path, cfg, text_weights)


def conse(image_model="efficientnet_lite0", text_model: str = "minilm", input_size: int | None = None,
          top_t: int = 10, text_weights=None, **kwargs) -> ConSE:
    """The zero-shot baseline from a registry classifier (name or ZooModel) and the text tower."""
    import zoo

    tower = image_model if isinstance(image_model, ZooModel) else zoo.load(image_model, input_size=input_size)
    return ConSE(tower, load_text_tower(text_model, text_weights), top_t=top_t, **kwargs)


def _load_v2(path: Path, cfg: dict, text_weights=None):
    """Image-text folders of format v2 (before the task contract)."""
    zio.require(cfg, path, method=str, image=dict)
    method = cfg["method"]
    img = cfg["image"]
    if method == "conse":
        import zoo

        zio.require(img, path, base_model=str, input_size=int)
        tower = zoo.load(entry_of(img, path).full_name, input_size=img["input_size"])
        if cfg.get("image_weights") and tower.weights_digest() != cfg["image_weights"]:
            raise SavedModelError(f"{path} records image weights {cfg['image_weights']} but "
                                  f"{tower.entry.full_name} now has {tower.weights_digest()}: the weight file changed")
        m = ImageText.from_config(tower, cfg, {}, [], path=path, text_weights=text_weights)
    elif method == "lit":
        zio.require(cfg, path, heads=dict, logit_scale=(int, float))
        tower = ZooModel(entry_of(img, path), img["input_size"], weights=None)
        tower.embedding_model.load_weights(path / IMAGE_WEIGHTS)
        tower.weights_source = str(path)
        with np.load(path / HEADS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        m = ImageText.from_config(tower, cfg, arrays, [], path=path, text_weights=text_weights)
        m.history = cfg.get("history") or {}
        m.training_config = cfg.get("training") or {}
    else:
        raise SavedModelError(f"{path} holds an image-text model of method {method!r}, which this zoo cannot "
                              "open (known: lit, conse): upgrade zoo")
    m.weights_source = str(path)
    return m


def search_text(index, model, text, k: int = 10):
    """Search an index built with image-text ``model`` for images matching ``text`` (str or list).

    Refused (``zoo.index.ModelMismatchError``) when the index was built by another model: its
    fingerprint must name both of ``model``'s towers and heads."""
    from zoo.index import ModelMismatchError

    if not hasattr(model, "encode_text"):
        raise ModelMismatchError(f"{getattr(model, 'name', model)!r} has no text tower: text search needs an "
                                 "image-text model (zoo.tasks.image_text.train or conse)")
    want = (index.model_info or {}).get("fingerprint") or {}
    if "text_model" not in want:
        raise ModelMismatchError(f"this index was built with {want.get('model', 'raw vectors')}, which has no text "
                                 f"tower: rebuild it with the image-text model (zoo.index.build(..., model=clip))")
    texts = [text] if isinstance(text, str) else list(text)
    return index.search_embeddings(model.encode_text(texts), k, fingerprint=model.fingerprint())


def zero_shot_files(images, class_names, model=None, templates=None):
    """(sources, probs, skipped) for image files or arrays with a saved image-text model folder (``model``) or,
    by default, the ConSE baseline from EfficientNet-Lite0."""
    import zoo

    m = zoo.load(model) if model is not None else conse("efficientnet_lite0")
    if not hasattr(m, "zero_shot"):
        raise RecipeError(f"{model} is not an image-text model folder (train one with zoo.tasks.image_text.train)")
    r = m.zero_shot(images, class_names, templates, return_sources=True)
    return r.sources, r.outputs, r.skipped
