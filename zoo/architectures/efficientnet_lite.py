"""EfficientNet-Lite (Tan & Le 2019; the TF "lite" variant): no squeeze-excite, ReLU6,
fixed 32-channel stem and 1280-channel head, first and last stages not deepened.

Layer names follow the flat block index of Google's checkpoints (``block{i}_...``) so
that :func:`load_torch_state_dict` maps weights one-to-one.
"""
from __future__ import annotations

import math

import keras
from keras import layers

# (repeats, kernel, stride, expand ratio, in filters, out filters) from efficientnet_lite_builder.py
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# name: (width, depth, resolution, dropout)
VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
_BN = dict(epsilon=1e-3, momentum=0.99)


def _round_filters(filters, width, divisor=8):
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def EfficientNetLite(variant="lite0", input_shape=None, include_top=True, classes=1000,
                     input_tensor=None, name=None):
    """Build EfficientNet-Lite as a functional Keras model taking normalised inputs."""
    width, depth, resolution, dropout = VARIANTS[variant]
    if input_tensor is None:
        input_tensor = keras.Input(shape=input_shape or (resolution, resolution, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(input_tensor)
    x = layers.BatchNormalization(name="stem_bn", **_BN)(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    index = 0
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_STAGES):
        f_in = 32 if stage == 0 else _round_filters(f_in, width)
        f_out = _round_filters(f_out, width)
        if stage not in (0, len(_STAGES) - 1):
            repeats = int(math.ceil(depth * repeats))
        for r in range(repeats):
            x = _mbconv(x, f_in if r == 0 else f_out, f_out, kernel, stride if r == 0 else 1,
                        expand, f"block{index}_")
            index += 1
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn", **_BN)(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(input_tensor, x, name=name or f"efficientnet_{variant}")


def _mbconv(x, f_in, f_out, kernel, stride, expand, prefix):
    inputs = x
    hidden = f_in * expand
    if expand != 1:
        x = layers.Conv2D(hidden, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(x)
        x = layers.BatchNormalization(name=prefix + "expand_bn", **_BN)(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=prefix + "dwconv")(x)
    x = layers.BatchNormalization(name=prefix + "dw_bn", **_BN)(x)
    x = layers.ReLU(6.0, name=prefix + "dw_relu")(x)
    x = layers.Conv2D(f_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
    x = layers.BatchNormalization(name=prefix + "project_bn", **_BN)(x)
    if stride == 1 and f_in == f_out:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


_TORCH_PARTS = {  # keras suffix -> torch module suffix
    "expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv",
    "dw_bn": "_bn1", "project_conv": "_project_conv", "project_bn": "_bn2",
}


def _torch_name(layer_name):
    if layer_name.startswith("block"):
        index, part = layer_name[len("block"):].split("_", 1)
        return f"_blocks.{index}.{_TORCH_PARTS[part]}"
    return {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head",
            "head_bn": "_bn1", "predictions": "_fc"}[layer_name]


def load_torch_state_dict(model, state):
    """Copy a Google EfficientNet-Lite state dict (numpy arrays) into ``model``.

    Layouts: conv (O,I,H,W)->(H,W,I,O); depthwise (C,1,H,W)->(H,W,C,1); linear transposed.
    Every weight of the model must be found, and every tensor of the state dict used.
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        base = _torch_name(layer.name)
        if isinstance(layer, layers.BatchNormalization):
            names = ["weight", "bias", "running_mean", "running_var"]
            values = [state[f"{base}.{n}"] for n in names]
        elif isinstance(layer, layers.DepthwiseConv2D):
            names = ["weight"]
            values = [state[f"{base}.weight"].transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):
            names = ["weight"]
            values = [state[f"{base}.weight"].transpose(2, 3, 1, 0)]
        elif isinstance(layer, layers.Dense):
            names = ["weight", "bias"]
            values = [state[f"{base}.weight"].T, state[f"{base}.bias"]]
        else:  # pragma: no cover - the architecture has no other weighted layers
            raise TypeError(f"unexpected weighted layer {layer.name}")
        layer.set_weights(values)
        used.update(f"{base}.{n}" for n in names)
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        from zoo.errors import WeightsFormatError

        raise WeightsFormatError(f"checkpoint has {len(unused)} tensors the model lacks, e.g. {unused[:3]}")
