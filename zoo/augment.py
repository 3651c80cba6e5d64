"""Training-time augmentation built from Keras preprocessing layers.

Presets: ``"none"``, ``"light"`` (flip, shift), ``"default"`` (+ small rotation and zoom,
contrast, brightness), ``"strong"`` (+ Gaussian noise, random erasing, blur and haze, the
weather-like effects). A list of preset parts or any callable ``(images, training)`` works too.
:func:`batch_mixing` mixes pairs of a batch and their one-hot labels (MixUp, CutMix).
"""
from __future__ import annotations

import keras
from keras import layers

from zoo.errors import RecipeError


@keras.saving.register_keras_serializable(package="zoo")
class RandomHaze(layers.Layer):
    """Fog-like veil: blend each image towards a light grey by a random amount."""

    def __init__(self, max_strength=0.35, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_strength, self.seed = max_strength, seed
        self._gen = keras.random.SeedGenerator(seed)

    def call(self, x, training=True):
        if not training:
            return x
        b = keras.ops.shape(x)[0]
        a = keras.random.uniform((b, 1, 1, 1), 0.0, self.max_strength, seed=self._gen)
        return x * (1.0 - a) + 200.0 * a

    def get_config(self):
        return {**super().get_config(), "max_strength": self.max_strength, "seed": self.seed}


def _parts(seed):
    return {
        "flip": lambda: layers.RandomFlip("horizontal", seed=seed),
        "shift": lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
        "rotate": lambda: layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        "zoom": lambda: layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=seed),
        "contrast": lambda: layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
        "brightness": lambda: layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        # colour, for data whose classes do not depend on it: saturation between grey and twice as
        # strong, hue turned by up to half a turn either way
        "saturation": lambda: layers.RandomSaturation((0.25, 0.75), value_range=(0, 255), seed=seed),
        "hue": lambda: layers.RandomHue(1.0, value_range=(0, 255), seed=seed),
        "noise": lambda: layers.GaussianNoise(6.0, seed=seed),
        "erase": lambda: layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0, 255), seed=seed),
        "blur": lambda: layers.RandomGaussianBlur(factor=0.5, sigma=(0.1, 1.2), value_range=(0, 255), seed=seed),
        "haze": lambda: RandomHaze(seed=seed),
    }


PRESETS = {
    "none": [],
    "light": ["flip", "shift"],
    "default": ["flip", "shift", "rotate", "zoom", "contrast", "brightness"],
    "strong": ["flip", "shift", "rotate", "zoom", "contrast", "brightness", "noise", "erase", "blur", "haze"],
}


def build_augmentation(spec="default", seed: int | None = None):
    """A ``keras.Sequential`` (or None for no augmentation) from a preset name or list of parts."""
    if spec is None or spec is False:
        return None
    if callable(spec):
        return spec
    names = PRESETS.get(spec) if isinstance(spec, str) else list(spec)
    parts = _parts(seed)
    if names is None or any(n not in parts for n in names):
        raise ValueError(f"augmentation must be one of {sorted(PRESETS)} or a list of {sorted(parts)}; got {spec!r}")
    if not names:
        return None
    return keras.Sequential([parts[n]() for n in names], name="augment")


def check_mixing(mixup: float, cutmix: float):
    """A :class:`RecipeError` unless both settings of :func:`batch_mixing` lie in [0, 1]."""
    for name, v in (("mixup", mixup), ("cutmix", cutmix)):
        if not 0.0 <= float(v) <= 1.0:
            raise RecipeError(f"{name} must be between 0 (off) and 1, not {v}: e.g. mixup=0.2, cutmix=1.0")


def batch_mixing(mixup: float = 0.0, cutmix: float = 0.0, seed: int | None = None):
    """A ``(images, one-hot labels) -> (images, labels)`` batch map that mixes each image with another
    of its batch and the labels by the same weights: MixUp (blends, weights from Beta(``mixup``,
    ``mixup``); 0.2 is the paper's ImageNet setting), CutMix (a box pasted from the other image,
    labels by area; ``cutmix`` bounds Keras's Beta parameter, 1.0 the paper's), or when both are set,
    one of the two per batch at even odds (timm's switch). None when both are 0."""
    check_mixing(mixup, cutmix)
    mixers = [m for m in (layers.MixUp(alpha=mixup, seed=seed) if mixup else None,
                          layers.CutMix(factor=cutmix, seed=seed) if cutmix else None) if m is not None]
    if not mixers:
        return None
    import tensorflow as tf

    def apply(mixer, images, labels):
        out = mixer({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    def mix(images, labels):
        if len(mixers) == 1:
            return apply(mixers[0], images, labels)
        return tf.cond(tf.random.uniform((), seed=seed) < 0.5, lambda: apply(mixers[0], images, labels),
                       lambda: apply(mixers[1], images, labels))

    return mix
