"""Pretrained two-tower image-text models (CLIP, SigLIP 2): zero-shot and text search with no training.

```python
clip = zoo.tasks.image_text.load("siglip2_base_patch16_224")          # online: keras-hub's preset
clip = zoo.tasks.image_text.load("clip_vit_base_patch16", weights="clip-vit-base-patch16/")
clip.zero_shot(images, ["cat", "cup of coffee"])   # (N, 2) probabilities
clip.encode_text(["a red car"]) @ clip.encode_images(images).T                 # text search
zoo.index.build("photos/", model=clip); clip.save("runs/clip"); zoo.load("runs/clip")
```
The image tower is the registry entry of the same name (:mod:`zoo.architectures.hub`: embed,
features, fine-tune as any entry); the text tower is keras-hub's ``CLIPTextEncoder`` /
``SigLIPTextEncoder``. Both read the same checkpoint folder: a keras-hub preset (``CLIPBackbone`` /
``SigLIPBackbone`` with its tokenizer) or a Hugging Face ``CLIPModel`` / ``SiglipModel`` checkpoint
(``config.json``, ``model.safetensors`` and the tokenizer files). The interface is
:class:`zoo.tasks.image_text.dual.DualEncoder`'s (``encode_images``, ``encode_text``, ``class_embeddings``,
``zero_shot``, ``evaluate``, ``embed``, ``fingerprint``, ``export``, ``save``).

Tokenization follows the checkpoint: a ``tokenizer.json`` runs through the ``tokenizers`` library
(Hugging Face's own fast tokenizer: its normaliser, special tokens and truncation), padded on
the side ``tokenizer_config.json`` names (else the tokenizer class's default, as transformers does;
checked here for CLIP's tokenizer, not against a real SigLIP 2 Gemma tokenizer); a SentencePiece ``spiece.model`` (SigLIP's
``SiglipTokenizer``) gets SigLIP's canonicalisation (lower case, punctuation removed) and an end
token; keras-hub presets use keras-hub's preprocessors. SigLIP pools the last position, so its
texts are always padded to the trained length (64). Zero-shot probabilities are the softmax of
``exp(logit_scale) * cosine`` over the given names for both (SigLIP's sigmoid scores each pair on
its own: :meth:`PretrainedDualEncoder.match_probabilities`).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from zoo import io as zio
from zoo.errors import SavedModelError, WeightsFormatError
from zoo.model import ZooModel, entry_of
from zoo.tasks.image_text.dual import DEFAULT_TEMPLATES, KIND, DualEncoder

IMAGE_WEIGHTS, TEXT_WEIGHTS, HEADS = "image.weights.h5", "text.weights.h5", "heads.npz"  # format v2 folders
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model",
                   "vocab.json", "merges.txt")
FAMILIES = {"clip_vision": "clip", "siglip_vision": "siglip"}
_PUNCT = re.compile(r"[!\"#$%&\\'()*+,\-./:;<=>?@\[\]^_`{|}~]")


# ---- tokenizers ---------------------------------------------------------------------------------
class TextTokens:
    """Texts -> (N, L) int32 token ids the way the checkpoint's own tokenizer makes them."""

    def __init__(self, files: dict, family: str, max_length: int):
        """``files``: {file name: bytes} of the tokenizer files (kept, so a saved model carries them)."""
        self.files, self.family, self.max_length = dict(files), family, int(max_length)
        cfg = json.loads(files["tokenizer_config.json"]) if "tokenizer_config.json" in files else {}
        # as Hugging Face pads: the side the config names, else the tokenizer class's default (Gemma's: left)
        default = "left" if str(cfg.get("tokenizer_class", "")).startswith("Gemma") else "right"
        self.pad_right = cfg.get("padding_side", default) != "left"
        if "tokenizer.json" in files:
            from tokenizers import Tokenizer

            self.kind = "tokenizer.json"
            self.tok = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
            self.tok.no_padding()
            self.tok.enable_truncation(self.max_length)
            pad = cfg.get("pad_token")
            pad = pad.get("content") if isinstance(pad, dict) else pad
            self.pad_id = self.tok.token_to_id(pad) if pad else None
            if self.pad_id is None:
                self.pad_id = 0
            self.lower = False
        elif "spiece.model" in files:
            import sentencepiece as spm

            self.kind = "sentencepiece"
            self.sp = spm.SentencePieceProcessor(model_proto=files["spiece.model"])
            self.eos_id = self.sp.piece_to_id(cfg.get("eos_token") or "</s>")
            pad = cfg.get("pad_token") or "</s>"
            self.pad_id = self.sp.piece_to_id(pad.get("content") if isinstance(pad, dict) else pad)
            self.lower = bool(cfg.get("do_lower_case", True))
        else:
            raise WeightsFormatError("the checkpoint has no tokenizer: it needs tokenizer.json (Hugging Face fast "
                                     "tokenizer) or spiece.model (SigLIP)")

    def _canonical(self, text: str) -> str:
        """SigLIP's text canonicalisation (big_vision's prompt engineering, HF's SiglipTokenizer)."""
        text = _PUNCT.sub("", text.lower() if self.lower else text)
        return re.sub(r"\s+", " ", text).strip()

    def __call__(self, texts) -> np.ndarray:
        if self.kind == "tokenizer.json":
            rows = [e.ids for e in self.tok.encode_batch(list(texts))]
        else:
            rows = [self.sp.encode(self._canonical(t))[: self.max_length - 1] + [self.eos_id] for t in texts]
        width = self.max_length if self.family == "siglip" else max(len(r) for r in rows)
        out = np.full((len(rows), width), self.pad_id, np.int32)
        for i, r in enumerate(rows):
            r = r[:width]
            if self.pad_right:
                out[i, : len(r)] = r
            else:
                out[i, width - len(r):] = r
        return out


class KerasHubTokens:
    """A keras-hub preset's tokenizer with its preprocessor's packing (CLIP: start/end, lower case, 77;
    SigLIP: canonicalised, end token, 64)."""

    def __init__(self, preset, family: str):
        import keras_hub

        cls = keras_hub.models.CLIPPreprocessor if family == "clip" else keras_hub.models.SigLIPPreprocessor
        self.pre = cls.from_preset(str(preset))
        self.family, self.kind, self.files = family, "keras_hub", _read_files(Path(preset), recursive=True)

    def __call__(self, texts) -> np.ndarray:
        return np.asarray(self.pre({"images": None, "prompts": list(texts)})["token_ids"], np.int32)


def _read_files(folder: Path, recursive: bool = False) -> dict:
    """The tokenizer's files by name; ``recursive``: a keras-hub preset's (its config.json, tokenizer.json,
    preprocessor.json and assets/, which keras-hub's ``from_preset`` reads)."""
    names = list(TOKENIZER_FILES)
    if recursive:
        names = ["config.json", "tokenizer.json", "preprocessor.json"] + [
            str(p.relative_to(folder)) for p in (folder / "assets").rglob("*") if p.is_file()]
    return {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}


# ---- the text tower -----------------------------------------------------------------------------
class HubTextTower:
    """keras-hub's CLIP / SigLIP text encoder with its tokenizer: ``encode`` gives pooled features (CLIP:
    the end token's; SigLIP: the last position's through its head), before the joint projection."""

    def __init__(self, family: str, encoder, tokens, name: str):
        import tensorflow as tf

        self.family, self.backbone, self.tokens, self.name = family, encoder, tokens, name
        self._fn = tf.function(lambda ids: self._pooled(ids), reduce_retracing=True)
        self._digest = None

    @property
    def spec(self):
        return type("Spec", (), {"name": self.name, "files": {}})()

    @property
    def dim(self) -> int:
        return int(self.backbone.output.shape[-1]) if self.family == "siglip" else int(self.backbone.hidden_dim)

    def _pooled(self, ids):
        import keras

        out = self.backbone({"token_ids": ids}, training=False)
        if self.family == "siglip":
            return out
        eos = keras.ops.argmax(ids, axis=-1)  # CLIP: the end token has the largest id (keras-hub's pooler)
        return keras.ops.take_along_axis(out, eos[:, None, None], axis=1)[:, 0]

    def encode(self, texts, batch_size: int = 256) -> np.ndarray:
        texts = list(texts)
        outs = [self._fn(self.tokens(texts[i:i + batch_size])).numpy() for i in range(0, len(texts), batch_size)]
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, self.dim), np.float32)

    def fingerprint(self) -> dict:
        if self._digest is None:
            import keras

            h = hashlib.sha256()
            for w in self.backbone.weights:
                h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
            for k in sorted(self.tokens.files):
                h.update(k.encode()), h.update(self.tokens.files[k])
            self._digest = h.hexdigest()[:16]
        return {"text_model": self.name, "text_weights": self._digest}


# ---- the model ----------------------------------------------------------------------------------
class PretrainedDualEncoder(DualEncoder):
    """A pretrained image tower and text tower in their trained joint space (CLIP / SigLIP)."""

    method = "pretrained"
    stores_backbone = True  # both towers' weights go with the folder

    def __init__(self, image_tower: ZooModel, text_tower: HubTextTower, image_projection=None,
                 text_projection=None, logit_scale: float = math.log(100.0), logit_bias: float | None = None,
                 templates=DEFAULT_TEMPLATES):
        super().__init__(image_tower, text_tower, templates)
        self.image_projection = None if image_projection is None else np.asarray(image_projection, np.float32)
        self.text_projection = None if text_projection is None else np.asarray(text_projection, np.float32)
        self.logit_scale, self.logit_bias = float(logit_scale), (None if logit_bias is None else float(logit_bias))
        self.loss = text_tower.family

    @property
    def feature_dim(self) -> int:
        return int(self.image_projection.shape[1]) if self.image_projection is not None else self.image_tower.feature_dim

    @property
    def zero_shot_scale(self) -> float:
        return float(math.exp(self.logit_scale))

    def _head_digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.image_projection, self.text_projection):
            if a is not None:
                h.update(a.tobytes())
        h.update(np.float64(self.logit_scale).tobytes())
        return h.hexdigest()[:16]

    def _image_outputs(self, images, batch_size, progress, value_range):
        return self.image_tower.embed(images, batch_size=batch_size, progress=progress, return_sources=True,
                                      value_range=value_range)

    def _project_images(self, feats):
        return feats if self.image_projection is None else np.asarray(feats, np.float32) @ self.image_projection

    def _project_text(self, t):
        return t if self.text_projection is None else np.asarray(t, np.float32) @ self.text_projection

    def match_probabilities(self, images, texts, batch_size: int = 64) -> np.ndarray:
        """(N images, M texts): SigLIP's sigmoid(scale * cosine + bias) per pair; for CLIP the softmax over texts."""
        img, txt = self.encode_images(images, batch_size), self.encode_text(texts)
        logits = self.zero_shot_scale * img @ txt.T
        if self.logit_bias is not None:
            return 1.0 / (1.0 + np.exp(-(logits + self.logit_bias)))
        logits -= logits.max(1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None,
               class_names=None, templates=None, **options):
        """The image side as a serving graph (``embedding`` in the joint space; ``probabilities`` over
        ``class_names``): see :mod:`zoo.export`."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, class_names=class_names, templates=templates,
                      **options)

    def export_signature(self, input_dtype: str = "uint8", class_names=None, templates=None):
        import keras

        from zoo.export import Signature, backbone_trunk, export_layers, model_metadata, pixel_input, without_head

        m = self.image_tower
        raw, x = pixel_input(m.input_size, input_dtype)
        e = backbone_trunk(without_head(m))(x)["embedding"]
        outs = {"embedding": export_layers().L2Normalize(self.image_projection, name="joint_embedding")(e)}
        meta = {**model_metadata(m, KIND), "fingerprint": self.fingerprint(), "dim": int(self.feature_dim),
                "text_model": self.text_tower.name,
                "text_note": "text vectors come from encode_text; they are not part of this graph"}
        if class_names is not None:
            c = self.class_embeddings(class_names, templates)
            zs = keras.layers.Dense(len(c), name="zero_shot_logits")
            logits = zs(outs["embedding"])
            zs.set_weights([(self.zero_shot_scale * c.T).astype(np.float32), np.zeros(len(c), np.float32)])
            outs["probabilities"] = keras.layers.Softmax(name="zero_shot")(logits)
            meta["labels"] = [str(n) for n in class_names]
        return Signature(keras.Model(raw, outs, name="pretrained_image_text_export"), meta)

    # ---- persistence ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        tt = self.text_tower
        enc_cfg = {k: v for k, v in tt.backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
        return {"method": self.method,
                "text": {"family": tt.family, "name": tt.name, "encoder": _jsonable(enc_cfg),
                         "layer_norm_epsilon": _final_eps(tt), "tokenizer": tt.tokens.kind,
                         "tokenizer_files": {f"tokenizer_{i}": n for i, n in enumerate(sorted(tt.tokens.files))},
                         "max_length": getattr(tt.tokens, "max_length", None)},
                "logit_scale": self.logit_scale, "logit_bias": self.logit_bias, "templates": self.templates}

    def get_arrays(self) -> dict:
        return {k: v for k, v in (("image_projection", self.image_projection),
                                  ("text_projection", self.text_projection)) if v is not None}

    def extra_files(self) -> dict:
        """The text encoder's weights and the tokenizer's files (bytes, as the checkpoint had them)."""
        tt = self.text_tower
        files = {TEXT_WEIGHTS: tt.backbone.save_weights}
        for i, (_, data) in enumerate(sorted(tt.tokens.files.items())):
            files[f"tokenizer_{i}"] = data
        return files


def _final_eps(tower) -> float | None:
    ln = getattr(tower.backbone, "layer_norm", None)
    return float(ln.epsilon) if ln is not None else None


def _jsonable(d):
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


# ---- loading ------------------------------------------------------------------------------------
def load(name: str = "siglip2_base_patch16_224", weights="imagenet", input_size: int | None = None,
         templates=DEFAULT_TEMPLATES) -> PretrainedDualEncoder:
    """Both towers of a registry CLIP / SigLIP entry from one checkpoint folder (found as the entry's
    weights are: ``weights`` a folder, else the cache, else a download; offline, the error says where
    it looked)."""
    import zoo
    from zoo.registry import get_entry
    from zoo.weights.folders import layout, read_config
    from zoo.weights.resolve import resolve

    entry = get_entry(name)
    family = FAMILIES.get(getattr(entry.builder, "family", None))
    if family is None:
        raise WeightsFormatError(f"{entry.full_name} is not a CLIP or SigLIP image tower; pretrained two-tower "
                                 f"models: {', '.join(_tower_entries())}")
    explicit = weights if weights not in (None, "imagenet") else None
    folder = resolve(entry, explicit)
    image = zoo.load(entry.full_name, weights=folder, input_size=input_size)
    kind = layout(folder)
    if kind == "keras_hub":
        text, extra = _keras_hub_text(folder, family)
    elif kind == "transformers":
        from zoo.weights.hf_clip_siglip import text_tower

        cfg = read_config(folder)
        encoder, extra = text_tower(folder, cfg, family)
        t = cfg.get("text_config") or cfg
        tokens = TextTokens(_read_files(folder), family, t["max_position_embeddings"])
        text = HubTextTower(family, encoder, tokens, f"{entry.name}.text")
    else:
        raise WeightsFormatError(f"{folder} is a timm checkpoint; a two-tower model needs a CLIP / SigLIP checkpoint")
    model = PretrainedDualEncoder(image, text, extra.get("image_projection"), extra.get("text_projection"),
                                  float(extra["logit_scale"]), _opt(extra.get("logit_bias")), templates)
    model.weights_source = str(folder)
    return model


def _opt(x):
    return None if x is None else float(x)


def _tower_entries():
    from zoo.registry import _REGISTRY

    return sorted(e.full_name for e in _REGISTRY.values() if getattr(e.builder, "family", None) in FAMILIES)


def _keras_hub_text(folder: Path, family: str):
    import keras
    import keras_hub

    cls = keras_hub.models.CLIPBackbone if family == "clip" else keras_hub.models.SigLIPBackbone
    both = cls.from_preset(str(folder))
    if not isinstance(both, cls):
        raise WeightsFormatError(f"{folder} holds a {type(both).__name__}; the text tower needs a {cls.__name__}")
    np_ = keras.ops.convert_to_numpy
    if family == "clip":
        extra = {"image_projection": np_(both.vision_projection.kernel), "text_projection": np_(both.text_projection.kernel),
                 "logit_scale": np_(both.clip_head.logit_scale)}
    else:
        extra = {"logit_scale": np_(both.siglip_head.logit_scale), "logit_bias": np_(both.siglip_head.logit_bias)}
    try:
        tokens = KerasHubTokens(folder, family)
    except Exception as exc:  # noqa: BLE001 - keras-hub raises ValueError / FileNotFoundError / OSError
        raise WeightsFormatError(f"{folder} has no usable keras-hub tokenizer ({exc}): save the preprocessor "
                                 "with the backbone (preprocessor.save_to_preset)") from None
    return HubTextTower(family, both.text_encoder, tokens, f"{folder.name}.text"), extra


def _text_tower(path: Path, txt: dict) -> "HubTextTower":
    import keras_hub

    family = txt.get("family")
    if family not in ("clip", "siglip"):
        raise SavedModelError(f"{path} holds a {family!r} text tower, which this zoo cannot open (known: clip, siglip)")
    cls = keras_hub.models.CLIPTextEncoder if family == "clip" else keras_hub.models.SigLIPTextEncoder
    encoder = cls(**txt["encoder"])
    encoder.load_weights(path / TEXT_WEIGHTS)
    if txt.get("layer_norm_epsilon") is not None and getattr(encoder, "layer_norm", None) is not None:
        encoder.layer_norm.epsilon = float(txt["layer_norm_epsilon"])
    files = {name: (path / key).read_bytes() for key, name in txt.get("tokenizer_files", {}).items()}
    if txt.get("tokenizer") == "keras_hub":
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            for name, data in files.items():
                (Path(d) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(d) / name).write_bytes(data)
            tokens = KerasHubTokens(d, family)
    else:
        tokens = TextTokens(files, family, int(txt["max_length"]))
    return HubTextTower(family, encoder, tokens, txt.get("name", family))


def from_config(backbone, cfg: dict, arrays: dict, path) -> PretrainedDualEncoder:
    """The model from a folder written by ``save`` (the image-text kind's loader calls this)."""
    path = Path(path)
    zio.require(cfg, path, text=dict, logit_scale=(int, float))
    return PretrainedDualEncoder(backbone, _text_tower(path, cfg["text"]), arrays.get("image_projection"),
                                 arrays.get("text_projection"), cfg["logit_scale"], cfg.get("logit_bias"),
                                 cfg.get("templates") or DEFAULT_TEMPLATES)


def load_v2(path: Path, cfg: dict) -> PretrainedDualEncoder:
    """Folders written before the task layout (kind "pretrained_image_text")."""
    zio.require(cfg, path, image=dict, text=dict, logit_scale=(int, float))
    img = cfg["image"]
    zio.require(img, path, base_model=str, input_size=int)
    tower = ZooModel(entry_of(img, path), img["input_size"], weights=None)
    tower.embedding_model.load_weights(path / IMAGE_WEIGHTS)
    tower.weights_source = str(path)
    with np.load(path / HEADS, allow_pickle=False) as z:
        heads = {k: z[k] for k in z.files}
    m = from_config(tower, cfg, heads, path)
    m.weights_source = str(path)
    return m


__all__ = ["PretrainedDualEncoder", "HubTextTower", "TextTokens", "KerasHubTokens", "load", "from_config"]
