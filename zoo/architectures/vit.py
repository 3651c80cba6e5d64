"""Plain vision transformers (ViT, DINOv2, CLIP and SigLIP image towers) as zoo networks.

The layers are keras-hub's (``ViTBackbone``, ``DINOV2Backbone``, ``CLIPVisionEncoder``,
``SigLIPVisionEncoder``); this module only re-wires them into one functional graph with one
node per transformer block, so that a zoo model can read what it needs:

- ``pooled``: the embedding. For class-token models the normalised class token (what Hugging
  Face's ``pooler_output`` is for DINOv2 and CLIP, and what ViT's classifier reads); for SigLIP the
  attention-pooling (MAP) head's output.
- ``P2..P5``: the "simple feature pyramid" of ViTDet (Li et al. 2022) from the last layer's patch
  tokens: the token grid resampled to input/16 when the patch size is not 16 (P4), 2x2 max
  pooling (P5), and transposed convolutions (P3, and P2 from P3). The transposed convolutions
  start as nearest-neighbour upsampling followed by a fixed orthonormal projection to half
  (quarter) the channels, so the pyramid of a pretrained model means something before any
  training and every build gives the same one; detection and segmentation train it.
- ``gradcam_map``: the patch-token grid Grad-CAM differentiates. The class token of the last
  layer does not depend on that layer's own patch outputs, so for class-token models it is the
  grid entering the last block (as pytorch-grad-cam's ViT recipe); for SigLIP, whose MAP head
  attends to every output token, the final normalised grid.

Position embeddings are resampled to the input size once, when weights are loaded, with the
bicubic kernel (a = -0.75, half-pixel centres, no antialias) that Hugging Face's
``interpolate_pos_encoding`` uses, so a checkpoint run at another size matches it.

The exact GELU of ViT and DINOv2 MLPs is computed as ``x/2 (1 + erf(x/sqrt 2))`` (:func:`gelu_erf`):
TensorFlow's own exact GELU lowers to ``Erfc``, which tf2onnx cannot convert; this form exports to
ONNX (``Erf``) and TFLite (fused to its ``GELU`` op), and differs from it by about 1e-7.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from zoo.errors import WeightsFormatError

PYRAMID_STRIDE = 16  # P4's stride: ViTDet's pyramid hangs off a stride-16 map


@dataclass(frozen=True)
class Family:
    """Where a keras-hub vision backbone keeps its parts."""

    cls: str                    # keras_hub.models.<cls>
    pool: str                   # "cls" (class token) or "map" (attention-pooling head)
    embedding: str              # attribute names on the backbone
    blocks: str
    final_norm: str
    pre_norm: str | None = None
    head: str | None = None


FAMILIES = {
    "vit": Family("ViTBackbone", "cls", "layers[1]", "layers[2].encoder_layers", "layers[2].layer_norm"),
    "dinov2": Family("DINOV2Backbone", "cls", "embeddings", "encoder.layers", "layernorm"),
    "clip_vision": Family("CLIPVisionEncoder", "cls", "embedding", "encoder_layers", "layer_norm",
                          pre_norm="pre_layer_norm"),
    "siglip_vision": Family("SigLIPVisionEncoder", "map", "embedding", "encoder_layers", "post_layer_norm",
                            head="head"),
}


def _get(obj, path: str):
    for part in path.split("."):
        name, _, index = part.partition("[")
        obj = getattr(obj, name)
        if index:
            obj = obj[int(index.rstrip("]"))]
    return obj


def patch_size(backbone) -> int:
    p = backbone.patch_size
    return int(p[0] if isinstance(p, (tuple, list)) else p)


def prefix_tokens(family: str, backbone) -> int:
    """Tokens before the patch tokens: the class token (and DINOv2's registers)."""
    if FAMILIES[family].pool == "map":
        return 0
    return 1 + int(getattr(backbone, "num_register_tokens", 0) or 0)


def hub_backbone(family: str, config: dict, input_size: int):
    """A keras-hub vision backbone of ``family`` with ``config``, built for ``input_size`` inputs."""
    import keras_hub

    cfg = dict(config)
    cfg["image_shape"] = (input_size, input_size, 3)
    if family == "dinov2":  # the zoo resamples position embeddings itself (see module doc)
        cfg["position_embedding_shape"] = (input_size, input_size)
    if family == "vit":
        p = cfg.get("patch_size", 16)
        p = p[0] if isinstance(p, (tuple, list)) else p
        cfg["patch_size"] = (p, p)
        cfg["image_shape"] = (input_size - input_size % p,) * 2 + (3,)  # ViTBackbone insists on multiples
    backbone = getattr(keras_hub.models, FAMILIES[family].cls)(**cfg)
    _fix_positions(backbone)
    _exportable_gelu(backbone)
    if family == "dinov2":
        _keep_position_tables(_get(backbone, FAMILIES[family].embedding))
    return backbone


@keras.saving.register_keras_serializable(package="zoo")
def gelu_erf(x):
    """The exact GELU, written with ``erf`` so that it exports (see module doc)."""
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


def _exportable_gelu(backbone):
    exact = keras.activations.gelu
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dense) and getattr(layer, "activation", None) is exact:
            layer.activation = gelu_erf


def _fix_positions(backbone):
    """keras-hub's CLIP embedding starts its ``position_ids`` at zeros (its presets load them):
    every integer position table is set to 0..n-1."""
    for v in backbone.weights:
        if v.path.endswith("position_ids"):
            v.assign(np.arange(v.shape[-1], dtype=np.int64).reshape(v.shape))


def _keep_position_tables(embedding):
    """keras-hub 0.32's DINOv2 embedding writes a fine-tuned position table back only when the *signed*
    sum of its change exceeds epsilon, and rebuilds it from the other table on load; with both tables the
    same size (as here) saving the trained table as the source is exact."""
    base_save = type(embedding).save_own_variables

    def save_own_variables(store):
        embedding.position_embeddings.assign(embedding.interpolated_position_embeddings)
        keras.layers.Layer.save_own_variables(embedding, store)
    del base_save
    embedding.save_own_variables = save_own_variables


# ---- small layers of the graph ------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="zoo")
class ClassToken(keras.layers.Layer):
    """(N, T, D) tokens -> (N, D), the first (class) token."""

    def call(self, x):
        return x[:, 0, :]

    def compute_output_shape(self, shape):
        return (shape[0], shape[2])


@keras.saving.register_keras_serializable(package="zoo")
class PatchGrid(keras.layers.Layer):
    """(N, prefix + g*g, D) tokens -> (N, g, g, D) patch grid (the prefix tokens dropped)."""

    def __init__(self, prefix: int, grid: int, **kw):
        super().__init__(**kw)
        self.prefix, self.grid = int(prefix), int(grid)

    def call(self, x):
        x = x[:, self.prefix:, :]
        return ops.reshape(x, (-1, self.grid, self.grid, x.shape[-1]))

    def compute_output_shape(self, shape):
        return (shape[0], self.grid, self.grid, shape[-1])

    def get_config(self):
        return {**super().get_config(), "prefix": self.prefix, "grid": self.grid}


@keras.saving.register_keras_serializable(package="zoo")
class PrefixTokens(keras.layers.Layer):
    """(N, T, D) -> (N, prefix, D): the tokens before the patches."""

    def __init__(self, prefix: int, **kw):
        super().__init__(**kw)
        self.prefix = int(prefix)

    def call(self, x):
        return x[:, : self.prefix, :]

    def compute_output_shape(self, shape):
        return (shape[0], self.prefix, shape[-1])

    def get_config(self):
        return {**super().get_config(), "prefix": self.prefix}


@keras.saving.register_keras_serializable(package="zoo")
class JoinTokens(keras.layers.Layer):
    """(prefix tokens (N, p, D) or None, grid (N, g, g, D)) -> (N, p + g*g, D)."""

    def call(self, grid, prefix=None):
        flat = ops.reshape(grid, (-1, grid.shape[1] * grid.shape[2], grid.shape[3]))
        return flat if prefix is None else ops.concatenate([prefix, flat], axis=1)

    def compute_output_shape(self, grid_shape, prefix_shape=None):
        n = grid_shape[1] * grid_shape[2] + (prefix_shape[1] if prefix_shape else 0)
        return (grid_shape[0], n, grid_shape[3])


@keras.saving.register_keras_serializable(package="zoo")
class UpsampleProjection(keras.initializers.Initializer):
    """Kernel of a stride-k, k x k ``Conv2DTranspose`` that is nearest-neighbour upsampling followed by
    a fixed orthonormal projection (scaled to keep the vectors' expected norm), seeded: deterministic."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def __call__(self, shape, dtype=None):
        kh, kw, c_out, c_in = shape
        q, _ = np.linalg.qr(np.random.RandomState(self.seed).standard_normal((c_in, c_out)))
        proj = (q.T * math.sqrt(c_in / c_out)).astype(np.float32)      # (c_out, c_in), orthonormal rows
        return ops.convert_to_tensor(np.broadcast_to(proj, (kh, kw, c_out, c_in)).copy(), dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


def simple_pyramid(grid, input_size: int, name: str = "vit") -> dict:
    """ViTDet's simple feature pyramid on a (N, g, g, D) token grid: exact strides 4..32 for inputs
    divisible by 32 (the grid is resampled to input/16 first when g differs)."""
    dim = int(grid.shape[-1])
    target = max(1, input_size // PYRAMID_STRIDE)
    p4 = grid
    if int(grid.shape[1]) != target:
        p4 = keras.layers.Resizing(target, target, interpolation="bilinear", name=f"{name}_grid_to_stride16")(grid)
    p5 = keras.layers.MaxPooling2D(2, name=f"{name}_p5")(p4)
    p3 = keras.layers.Conv2DTranspose(max(dim // 2, 1), 2, strides=2, kernel_initializer=UpsampleProjection(3),
                                      name=f"{name}_p3")(p4)
    p2 = keras.layers.Conv2DTranspose(max(dim // 4, 1), 2, strides=2, kernel_initializer=UpsampleProjection(2),
                                      name=f"{name}_p2")(p3)
    return {"P2": p2, "P3": p3, "P4": p4, "P5": p5}


def vit_network(family: str, backbone, input_size: int, num_classes: int = 0, name: str | None = None):
    """A functional zoo network on normalised pixels from a keras-hub vision backbone's layers.

    Output: class probabilities (``predictions``, softmax) when ``num_classes``, else the pooled
    embedding. ``network.zoo_taps`` holds ``pooled``, ``body`` (final token grid), ``P2..P5``.
    """
    fam = FAMILIES[family]
    p = patch_size(backbone)
    grid = input_size // p
    if grid < 1:
        raise ValueError(f"input_size {input_size} is smaller than the patch size {p}")
    n_prefix = prefix_tokens(family, backbone)
    inp = keras.Input((input_size, input_size, 3), name="pixels")
    x = inp
    if family == "vit" and input_size % p:  # ViTBackbone's embedding is built for a multiple of the patch
        x = keras.layers.Cropping2D(((0, input_size % p), (0, input_size % p)), name="crop_to_patches")(x)
    x = _get(backbone, fam.embedding)(x)
    if fam.pre_norm:
        x = _get(backbone, fam.pre_norm)(x)
    blocks = list(_get(backbone, fam.blocks))
    for block in blocks[:-1]:
        x = block(x)
    if fam.pool == "cls":  # Grad-CAM reads the grid entering the last block (see module doc)
        cam = PatchGrid(n_prefix, grid, name="gradcam_map")(x)
        x = JoinTokens(name="gradcam_join")(cam, PrefixTokens(n_prefix, name="prefix_tokens")(x))
    x = blocks[-1](x)
    x = _get(backbone, fam.final_norm)(x)
    body = PatchGrid(n_prefix, grid, name="gradcam_map" if fam.pool == "map" else "token_grid")(x)
    if fam.pool == "cls":
        pooled = ClassToken(name="pooled")(x)
    else:
        tokens = JoinTokens(name="gradcam_join")(body)
        pooled = keras.layers.Identity(name="pooled")(_get(backbone, fam.head)(tokens))
    taps = {"pooled": pooled, "body": body, **simple_pyramid(body, input_size)}
    out = pooled
    if num_classes:
        out = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(pooled)
    net = keras.Model(inp, out, name=name or f"{family}_{input_size}")
    net.zoo_taps = taps
    net.zoo_backbone = backbone
    return net


# ---- position embeddings ------------------------------------------------------------------------
def _cubic(x: float, a: float = -0.75) -> float:
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PyTorch's bicubic resize (align_corners=False, edges clamped)."""
    w = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        src = (i + 0.5) * scale - 0.5
        x0 = math.floor(src)
        t = src - x0
        for k in range(-1, 3):
            w[i, min(max(x0 + k, 0), n_in - 1)] += _cubic(k - t)
    return w


def resample_positions(table: np.ndarray, n_prefix: int, grid_out: int) -> np.ndarray:
    """A position table ``(..., prefix + g*g, D)`` resampled to ``grid_out`` x ``grid_out`` patches."""
    table = np.asarray(table, np.float32)
    lead, (t, d) = table.shape[:-2], table.shape[-2:]
    flat = table.reshape(-1, t, d)
    g = int(round(math.sqrt(t - n_prefix)))
    if g * g != t - n_prefix:
        raise WeightsFormatError(f"a position table of {t} tokens is not {n_prefix} prefix tokens and a square grid")
    m = bicubic_matrix(g, grid_out)
    out = []
    for row in flat:
        patches = row[n_prefix:].reshape(g, g, d).astype(np.float64)
        resized = np.einsum("ij,jkd,lk->ild", m, patches, m).reshape(grid_out * grid_out, d)
        out.append(np.concatenate([row[:n_prefix], resized.astype(np.float32)]))
    return np.stack(out).reshape(*lead, n_prefix + grid_out * grid_out, d)


def transfer_weights(src, dst, family: str):
    """Copy a loaded keras-hub backbone's weights into one of another input size (same architecture)."""
    copy_weights(src.weights, dst.weights, prefix_tokens(family, dst))


def copy_weights(src_weights, dst_weights, n_prefix: int):
    """Copy weights in order into a model of another input size: position tables are resampled, integer
    position ids rebuilt; any other shape mismatch means another architecture and is refused."""
    if len(src_weights) != len(dst_weights):
        raise WeightsFormatError(f"the checkpoint has {len(src_weights)} weight tensors, the model "
                                 f"{len(dst_weights)}: another architecture")
    for s, d in zip(src_weights, dst_weights):
        value = keras.ops.convert_to_numpy(s)
        if tuple(value.shape) == tuple(d.shape) and not d.path.endswith("position_ids"):
            d.assign(value)
        elif d.path.endswith("position_ids"):
            d.assign(np.arange(d.shape[-1], dtype=np.int64).reshape(d.shape))
        elif "position_embedding" in d.path and value.shape[-1] == d.shape[-1]:
            grid_out = int(round(math.sqrt(d.shape[-2] - n_prefix)))
            d.assign(resample_positions(value, n_prefix, grid_out).reshape(d.shape))
        else:
            raise WeightsFormatError(f"weight {s.path} has shape {tuple(value.shape)} in the checkpoint but "
                                     f"{tuple(d.shape)} in the model: the checkpoint is another architecture")


def vit_macs(family: str, config: dict, input_size: int, num_classes: int = 0) -> int:
    """Multiply-accumulates of one image: patch embedding, attention and MLPs of every block, heads."""
    p = config["patch_size"]
    p = p[0] if isinstance(p, (tuple, list)) else p
    d = config["hidden_dim"]
    mlp = config.get("intermediate_dim") or config.get("mlp_dim")
    grid = input_size // p
    n_prefix = 0 if FAMILIES[family].pool == "map" else 1 + config.get("num_register_tokens", 0)
    t = grid * grid + n_prefix
    per_block = 4 * t * d * d + 2 * t * t * d + 2 * t * d * mlp
    if config.get("use_swiglu_ffn"):
        per_block += t * d * mlp  # three matrices instead of two
    macs = grid * grid * p * p * 3 * d + config["num_layers"] * per_block
    if FAMILIES[family].pool == "map":  # one probe query attends to every token, then an MLP
        macs += 2 * t * d * d + 2 * d * d + t * d + 2 * d * mlp
    return int(macs + num_classes * d)
