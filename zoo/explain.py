"""Grad-CAM (Selvaraju et al., 2017) for any zoo model with an ImageNet head.

It reuses the model's own graph: raw RGB pixels -> the model's ``normalize`` layer -> its
network, read at two places: the last feature map (the tensor that ``feature_network`` pools)
and the class score. The score is the logit of the final softmax Dense layer when there is one
(gradients of a saturated probability vanish), else the log-probability.

    cam = GradCAM(zoo.load("efficientnet_lite0"))(image, class_index=285)   # (7, 7) in [0, 1]
    picture = overlay(image, cam)
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import NoHeadError


class GradCAM:
    """Class-activation heat maps of a :class:`zoo.ZooModel` with its ImageNet head."""

    def __init__(self, model):
        if model.imagenet_model is None:
            raise NoHeadError(f"{model.name} at {model.input_size}px has no classification head; "
                              f"load it at {model.entry.input_size}px")
        self.model = model
        net = model.network
        try:  # a network that names the map Grad-CAM should read (ViTs: a patch-token grid)
            fmap = model.feature_network.get_layer("gradcam_map").output
        except ValueError:
            fmap = model.feature_network.get_layer("pooled").input  # last feature map, e.g. 7x7x1280
        last = net.layers[-1]
        act = getattr(getattr(last, "activation", None), "__name__", "")
        self.dense = last if isinstance(last, keras.layers.Dense) and act == "softmax" else None
        score_in = self.dense.input if self.dense is not None else net.output
        inner = keras.Model(net.input, [fmap, score_in])
        raw = keras.Input((model.input_size, model.input_size, 3))
        x = model.imagenet_model.get_layer("normalize")(raw)
        self.grad_model = keras.Model(raw, inner(x))
        spec = [tf.TensorSpec((1, model.input_size, model.input_size, 3), tf.float32),
                tf.TensorSpec((), tf.int32)]
        self._fn = tf.function(self._cam, input_signature=spec)

    def _cam(self, x, class_index):
        with tf.GradientTape() as tape:
            fmap, score_in = self.grad_model(x, training=False)
            tape.watch(fmap)
            if self.dense is not None:
                w = tf.gather(tf.cast(self.dense.kernel, score_in.dtype), class_index, axis=1)
                score = tf.reduce_sum(score_in * w, axis=-1) + tf.cast(self.dense.bias[class_index], score_in.dtype)
            else:
                score = tf.math.log(tf.gather(score_in, class_index, axis=1) + 1e-12)
        grads = tape.gradient(score, fmap)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # channel importance
        cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))[0]
        return cam / (tf.reduce_max(cam) + 1e-12)

    def __call__(self, image: np.ndarray, class_index: int) -> np.ndarray:
        """Heat map in [0, 1] at the feature map's resolution for one float32 RGB image."""
        m = self.model
        x = tf.image.resize(np.asarray(image, np.float32)[None], (m.input_size, m.input_size),
                            method=m.preprocessing.interpolation)
        return self._fn(x, tf.constant(int(class_index), tf.int32)).numpy()


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: the image with the heat map (jet colours) blended over it at its own size."""
    import matplotlib

    h, w = image.shape[:2]
    up = tf.image.resize(cam[..., None].astype(np.float32), (h, w), method="bicubic").numpy()[..., 0]
    heat = matplotlib.colormaps["jet"](np.clip(up, 0, 1))[..., :3] * 255.0
    out = (1 - alpha) * np.clip(np.asarray(image, np.float32), 0, 255) + alpha * heat
    return np.clip(out, 0, 255).astype(np.uint8)
