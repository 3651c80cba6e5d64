"""Hugging Face CLIP and SigLIP checkpoints into keras-hub's encoders.

keras-hub 0.32 reads DINOv2 and ViT transformers checkpoints itself but has no converter for
CLIP or SigLIP in the package (only its Kaggle presets), so this is the glue: the configs map onto
``CLIPVisionEncoder`` / ``CLIPTextEncoder`` / ``SigLIPVisionEncoder`` / ``SigLIPTextEncoder``
arguments and every tensor of the safetensors file onto one keras-hub variable (torch linear
(out, in) -> kernel (in, out); attention projections split per head; SigLIP's pooling head keeps
``nn.MultiheadAttention``'s packed in-projection). Every tensor of a tower must be used: a
leftover means the checkpoint is not what this code expects.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoo.errors import MissingDependencyError, WeightsFormatError

CLIP_TYPES = ("clip", "clip_vision_model", "clip_text_model")
SIGLIP_TYPES = ("siglip", "siglip_vision_model", "siglip_text_model")


class Tensors:
    """The tensors of a safetensors checkpoint (sharded or not), read as numpy, with use tracking."""

    def __init__(self, folder):
        try:
            from safetensors import safe_open
        except ImportError as exc:  # pragma: no cover - safetensors comes with keras-hub's converters
            raise MissingDependencyError("reading safetensors checkpoints needs safetensors: "
                                         "pip install safetensors") from exc
        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
            else ["model.safetensors"]
        self.where, self.handles = {}, []
        for f in files:
            h = safe_open(str(folder / f), framework="np")
            self.handles.append(h)
            for k in h.keys():
                self.where[k] = h
        self.used: set[str] = set()

    def __contains__(self, key):
        return key in self.where

    def get(self, key: str) -> np.ndarray:
        if key not in self.where:
            raise WeightsFormatError(f"the checkpoint has no tensor {key!r}: not the expected architecture")
        self.used.add(key)
        return self.where[key].get_tensor(key)

    def unused(self, prefix: str) -> list[str]:
        return sorted(k for k in self.where if k.startswith(prefix) and k not in self.used
                      and not k.endswith("position_ids"))


# ---- configs ------------------------------------------------------------------------------------
def _sub(cfg: dict, part: str) -> dict:
    """The vision / text sub-config of a two-tower config, or the config itself for a one-tower one."""
    return cfg.get(f"{part}_config") or cfg


def _activation(name: str, family: str) -> str:
    table = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_approximate",
             "gelu_new": "gelu_approximate"}
    if name not in table:
        raise WeightsFormatError(f"{family} checkpoint uses activation {name!r}, which keras-hub's encoder has not")
    return table[name]


def vision_config(cfg: dict, family: str) -> dict:
    v = _sub(cfg, "vision")
    out = {"patch_size": v["patch_size"], "hidden_dim": v["hidden_size"], "num_layers": v["num_hidden_layers"],
           "num_heads": v["num_attention_heads"], "intermediate_dim": v["intermediate_size"],
           "intermediate_activation": _activation(v.get("hidden_act", "quick_gelu"), family),
           "image_shape": (v["image_size"], v["image_size"], 3)}
    if family == "siglip_vision":
        out["layer_norm_epsilon"] = v.get("layer_norm_eps", 1e-6)
    return out


def text_config(cfg: dict, family: str) -> dict:
    t = _sub(cfg, "text")
    out = {"vocabulary_size": t["vocab_size"], "embedding_dim": t["hidden_size"], "hidden_dim": t["hidden_size"],
           "num_layers": t["num_hidden_layers"], "num_heads": t["num_attention_heads"],
           "intermediate_dim": t["intermediate_size"],
           "intermediate_activation": _activation(t.get("hidden_act", "quick_gelu"), family),
           "max_sequence_length": t["max_position_embeddings"]}
    if family == "siglip":
        out["layer_norm_epsilon"] = t.get("layer_norm_eps", 1e-6)
        out["projection_dim"] = t.get("projection_size") or t["hidden_size"]
    return out


# ---- porting ------------------------------------------------------------------------------------
def _ln(layer, t: Tensors, key: str):
    layer.gamma.assign(t.get(key + ".weight"))
    layer.beta.assign(t.get(key + ".bias"))


def _dense(layer, t: Tensors, key: str):
    layer.kernel.assign(t.get(key + ".weight").T)
    if layer.bias is not None:
        layer.bias.assign(t.get(key + ".bias"))


def _mha(mha, q, k, v, o):
    """Fill a keras MultiHeadAttention from torch (out, in) matrices and biases [(w, b) per projection]."""
    for dense, (w, b) in zip((mha.query_dense, mha.key_dense, mha.value_dense), (q, k, v)):
        dense.kernel.assign(w.T.reshape(dense.kernel.shape))
        dense.bias.assign(b.reshape(dense.bias.shape))
    w, b = o
    mha.output_dense.kernel.assign(w.T.reshape(mha.output_dense.kernel.shape))
    mha.output_dense.bias.assign(b)


def _attn(mha, t: Tensors, key: str):
    _mha(mha, *[(t.get(f"{key}.{p}_proj.weight"), t.get(f"{key}.{p}_proj.bias")) for p in ("q", "k", "v", "out")])


def _clip_blocks(layers, t: Tensors, prefix: str):
    for i, blk in enumerate(layers):
        p = f"{prefix}encoder.layers.{i}."
        _ln(blk.layer_norm_1, t, p + "layer_norm1")
        _attn(blk.attention, t, p + "self_attn")
        _ln(blk.layer_norm_2, t, p + "layer_norm2")
        _dense(blk.dense_1, t, p + "mlp.fc1")
        _dense(blk.dense_2, t, p + "mlp.fc2")


def _siglip_blocks(layers, t: Tensors, prefix: str):
    for i, blk in enumerate(layers):
        p = f"{prefix}encoder.layers.{i}."
        _ln(blk.layer_norm1, t, p + "layer_norm1")
        _attn(blk.self_attn, t, p + "self_attn")
        _ln(blk.layer_norm2, t, p + "layer_norm2")
        _dense(blk.mlp.fc1, t, p + "mlp.fc1")
        _dense(blk.mlp.fc2, t, p + "mlp.fc2")


def _prefix(t: Tensors, tower: str) -> str:
    key = f"{tower}_model."
    if any(k.startswith(key) for k in t.where):
        return key
    raise WeightsFormatError(f"the checkpoint has no {tower} tower (no tensor starts with {key!r})")


def port_clip_vision(enc, t: Tensors):
    p = _prefix(t, "vision")
    e = enc.embedding
    e.class_embedding.assign(t.get(p + "embeddings.class_embedding"))
    e.patch_embedding.kernel.assign(t.get(p + "embeddings.patch_embedding.weight").transpose(2, 3, 1, 0))
    e.position_embedding.embeddings.assign(t.get(p + "embeddings.position_embedding.weight"))
    e.position_ids.assign(np.arange(e.position_ids.shape[-1])[None])
    _ln(enc.pre_layer_norm, t, p + "pre_layrnorm")
    _clip_blocks(enc.encoder_layers, t, p)
    _ln(enc.layer_norm, t, p + "post_layernorm")
    _check_all_used(t, p)


def port_siglip_vision(enc, t: Tensors):
    p = _prefix(t, "vision")
    e = enc.embedding
    e.patch_embedding.kernel.assign(t.get(p + "embeddings.patch_embedding.weight").transpose(2, 3, 1, 0))
    e.patch_embedding.bias.assign(t.get(p + "embeddings.patch_embedding.bias"))
    e.position_embedding.embeddings.assign(t.get(p + "embeddings.position_embedding.weight"))
    _siglip_blocks(enc.encoder_layers, t, p)
    _ln(enc.post_layer_norm, t, p + "post_layernorm")
    h = enc.head
    h.probe.assign(t.get(p + "head.probe"))
    w, b = t.get(p + "head.attention.in_proj_weight"), t.get(p + "head.attention.in_proj_bias")
    d = w.shape[1]
    _mha(h.attention, (w[:d], b[:d]), (w[d:2 * d], b[d:2 * d]), (w[2 * d:], b[2 * d:]),
         (t.get(p + "head.attention.out_proj.weight"), t.get(p + "head.attention.out_proj.bias")))
    _ln(h.layer_norm, t, p + "head.layernorm")
    _dense(h.mlp.fc1, t, p + "head.mlp.fc1")
    _dense(h.mlp.fc2, t, p + "head.mlp.fc2")
    _check_all_used(t, p)


def port_clip_text(enc, t: Tensors, layer_norm_eps: float = 1e-5):
    p = _prefix(t, "text")
    enc.embedding.token_embedding.embeddings.assign(t.get(p + "embeddings.token_embedding.weight"))
    enc.embedding.position_embedding.position_embeddings.assign(t.get(p + "embeddings.position_embedding.weight"))
    _clip_blocks(enc.encoder_layers, t, p)
    _ln(enc.layer_norm, t, p + "final_layer_norm")
    enc.layer_norm.epsilon = layer_norm_eps  # keras-hub builds this one with 1e-6; the checkpoint's is used
    _check_all_used(t, p)


def port_siglip_text(enc, t: Tensors):
    p = _prefix(t, "text")
    enc.embedding.token_embedding.embeddings.assign(t.get(p + "embeddings.token_embedding.weight"))
    enc.embedding.position_embedding.embeddings.assign(t.get(p + "embeddings.position_embedding.weight"))
    _siglip_blocks(enc.encoder_layers, t, p)
    _ln(enc.post_layer_norm, t, p + "final_layer_norm")
    _dense(enc.head, t, p + "head")
    _check_all_used(t, p)


def _check_all_used(t: Tensors, prefix: str):
    left = t.unused(prefix)
    if left:
        raise WeightsFormatError(f"{len(left)} tensors of the checkpoint have no place in keras-hub's encoder, "
                                 f"e.g. {left[:3]}: not the expected architecture")


def vision_encoder(folder, cfg: dict, family: str):
    """(keras-hub vision encoder with the checkpoint's weights, at its own image size)."""
    import keras_hub

    cls = keras_hub.models.CLIPVisionEncoder if family == "clip_vision" else keras_hub.models.SigLIPVisionEncoder
    enc = cls(**vision_config(cfg, family))
    t = Tensors(folder)
    (port_clip_vision if family == "clip_vision" else port_siglip_vision)(enc, t)
    return enc


def text_tower(folder, cfg: dict, family: str):
    """(keras-hub text encoder, {name: array} of the joint-space pieces: projections, logit scale/bias)."""
    import keras_hub

    t = Tensors(folder)
    tc = text_config(cfg, family)
    if family == "clip":
        enc = keras_hub.models.CLIPTextEncoder(**tc)
        port_clip_text(enc, t, _sub(cfg, "text").get("layer_norm_eps", 1e-5))
        extra = {"image_projection": t.get("visual_projection.weight").T,
                 "text_projection": t.get("text_projection.weight").T}
    else:
        enc = keras_hub.models.SigLIPTextEncoder(**tc)
        port_siglip_text(enc, t)
        extra = {"logit_bias": np.asarray(t.get("logit_bias")).reshape(())}
    extra["logit_scale"] = np.asarray(t.get("logit_scale")).reshape(())
    return enc, extra
