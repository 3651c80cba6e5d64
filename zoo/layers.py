"""Small Keras layers the zoo's models are built from."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class Normalize(keras.layers.Layer):
    """Raw RGB in [0, 255] to the network's input: optional RGB->BGR, then (x - mean) / std.

    ``mean`` and ``std`` are given in RGB order whatever the output order.
    """

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB", **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order

    def call(self, x):
        mean, std = list(self.mean), list(self.std)
        if self.channel_order == "BGR":
            x = ops.flip(x, axis=-1)
            mean, std = mean[::-1], std[::-1]
        if mean == [0.0] * 3 and std == [1.0] * 3:
            return x
        return (x - ops.convert_to_tensor(mean, x.dtype)) / ops.convert_to_tensor(std, x.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "channel_order": self.channel_order}
