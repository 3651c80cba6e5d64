"""Build a registry entry's network and find its common feature interface.

Every backbone exposes the same taps: the final feature map (``body``), its global
average (``pooled``) and a pyramid ``P2..P5`` (strides 4..32). Taps are found from the
built graph's shapes, so per-architecture code holds only the architecture; a family may
name which layers end a block (``ModelEntry.block_pattern``) so taps fall on block outputs.
A network may also name its own taps (``network.zoo_taps``, e.g. a ViT's class token as
``pooled`` and its simple feature pyramid, see :mod:`zoo.architectures.vit`).
"""
from __future__ import annotations

import math
import os
import re

import keras

from zoo.errors import InputShapeError
from zoo.entry import ModelEntry
from zoo.weights.resolve import resolve

_POOL_TYPES = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


def build_network(entry: ModelEntry, input_size: int, weights="imagenet") -> tuple[keras.Model, bool]:
    """The publisher's network on normalised input; returns (model, has ImageNet head).

    ``weights``: "imagenet" (resolved and verified), a file path, or None (random init).
    """
    if input_size < entry.min_input_size:
        raise InputShapeError(f"{entry.name} needs input_size >= {entry.min_input_size}; got {input_size}")
    flatten_head = entry.family == "vgg"  # its head's size depends on the input size
    include_top = not (flatten_head and input_size != entry.input_size)
    if weights is not None and entry.weights is not None and entry.weights.format == "hub_folder":
        explicit = weights if isinstance(weights, (str, os.PathLike)) and weights != "imagenet" else None
        return entry.builder.load(resolve(entry, explicit), input_size, include_top)  # keras-hub reads it
    net = entry.builder((input_size, input_size, 3), include_top)
    if weights is None:
        return net, include_top and (getattr(entry.builder, "num_classes", 1) > 0)
    explicit = weights if isinstance(weights, (str, os.PathLike)) and weights != "imagenet" else None
    path = resolve(entry, explicit)
    if entry.weights.format == "torch_legacy":
        from zoo.architectures.efficientnet_lite import load_torch_state_dict
        from zoo.weights.torch_legacy import read_state_dict

        load_torch_state_dict(net, read_state_dict(path))
    elif include_top:
        net.load_weights(str(path))
    else:
        net.load_weights(str(path), by_name=True, skip_mismatch=True)
    return net, include_top


def find_taps(net: keras.Model, entry: ModelEntry, input_size: int) -> dict:
    """Symbolic tensors: ``body`` (last feature map) and pyramid levels ``P2``..``P5``; also
    ``pooled`` when the network names its own embedding."""
    if getattr(net, "zoo_taps", None):
        return dict(net.zoo_taps)
    layers = net.layers
    # the head's pooling is the last one (squeeze-excite blocks pool too)
    # (MobileNetV3 flattens its logits after that, so a Flatten counts only without one: VGG)
    pools = [i for i, l in enumerate(layers) if isinstance(l, _POOL_TYPES[:2])]
    pools = pools or [i for i, l in enumerate(layers) if isinstance(l, keras.layers.Flatten)]
    pool_at = pools[-1] if pools else None
    body = layers[pool_at].input if pool_at is not None else net.output
    stop = pool_at if pool_at is not None else len(layers)
    pattern = re.compile(entry.block_pattern) if entry.block_pattern else None
    any_layer, matched = {}, {}
    for layer in layers[1:stop]:
        out = layer.output
        if isinstance(out, (list, tuple)) or len(out.shape) != 4 or out.shape[1] is None:
            continue
        level = _level(input_size, out.shape[1])
        if 2 <= level <= 5:
            any_layer[level] = out
            if pattern and pattern.search(layer.name):
                matched[level] = out
    taps = {"body": body}
    for level in range(2, 6):
        t = matched.get(level, any_layer.get(level))
        if t is not None:
            taps[f"P{level}"] = t
    body_level = _level(input_size, body.shape[1]) if body.shape[1] else 5
    if body_level == 5:
        taps["P5"] = body
    return taps


def _level(input_size: int, height: int) -> int:
    """Pyramid level (log2 of the stride); valid-padding nets shrink a little more than 2x."""
    return round(math.log2(input_size / max(height, 1)) - 0.2)
