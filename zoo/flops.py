"""Count multiply-accumulates of a Keras CNN from its layers' shapes."""
from __future__ import annotations

import math

from keras import layers


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    total = 0
    for layer in _leaf_layers(model):
        if not getattr(layer, "built", False):
            continue
        try:
            out = layer.output.shape
        except (AttributeError, ValueError):
            continue
        spatial = math.prod(d for d in out[1:-1]) if len(out) > 2 else 1
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += spatial * out[-1] * kh * kw
        elif isinstance(layer, layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = layer.depthwise_kernel.shape[2]
            total += spatial * cin * layer.depth_multiplier * kh * kw + spatial * cin * out[-1]
        elif isinstance(layer, layers.Conv2D):
            kh, kw, cin_g, cout = layer.kernel.shape
            total += spatial * kh * kw * cin_g * cout
        elif isinstance(layer, layers.Dense):
            cin, cout = layer.kernel.shape
            total += spatial * cin * cout
    return int(total)


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer
