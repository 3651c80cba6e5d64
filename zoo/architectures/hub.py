"""Registry architectures built from keras-hub classes, and their pretrained weights from checkpoint folders.

A :class:`HubArchitecture` is a registry entry's ``builder``: called as ``builder(input_shape,
include_top)`` it makes a random-init network; ``builder.load(folder, input_size, include_top)``
makes one with the weights of a checkpoint folder (see :mod:`zoo.weights.folders` for the
layouts). keras-hub does the reading wherever it can:

- DINOv2 and ViT transformers checkpoints: keras-hub's converters (``utils/transformers``);
- timm ResNet / EfficientNet checkpoints: keras-hub's timm converters (``utils/timm``), head included;
- keras-hub presets (Kaggle downloads, ``save_to_preset`` folders): ``Backbone.from_preset``;
- CLIP / SigLIP transformers checkpoints: :mod:`zoo.weights.hf_clip_siglip` (keras-hub has none).

The checkpoint is read at its own input size, then copied into the network built for the asked
size (position tables resampled, see :func:`zoo.architectures.vit.transfer_weights`). A checkpoint
of another architecture (width, depth, heads, patch, timm model name) is refused, never
silently loaded under this entry's name.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import WeightsFormatError

VIT_FAMILIES = ("vit", "dinov2", "clip_vision", "siglip_vision")  # zoo.architectures.vit.FAMILIES

TIMM = {  # family -> (keras-hub backbone class, keras-hub timm converter module, name of its shape argument)
    "timm_resnet": ("ResNetBackbone", "convert_resnet", "image_shape"),
    "timm_efficientnet": ("EfficientNetBackbone", "convert_efficientnet", "input_shape"),
}
# transformers model_type -> family
HF_TYPES = {"dinov2": "dinov2", "dinov2_with_registers": "dinov2", "vit": "vit",
            "clip": "clip_vision", "clip_vision_model": "clip_vision",
            "siglip": "siglip_vision", "siglip_vision_model": "siglip_vision"}
# the fields that make an architecture what its registry name says
STRUCTURAL = ("patch_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim", "mlp_dim",
              "num_register_tokens", "use_swiglu_ffn", "use_class_token")
_DROP = ("name", "trainable", "dtype", "image_shape", "input_shape", "position_embedding_shape")


@dataclass(frozen=True, eq=False)
class HubArchitecture:
    """One architecture: a keras-hub ``family`` with its backbone ``config``, and an ImageNet head of
    ``num_classes`` (0: none)."""

    family: str
    config: dict = field(default_factory=dict)
    num_classes: int = 0

    @property
    def is_vit(self) -> bool:
        return self.family in VIT_FAMILIES

    # ---- random init ----------------------------------------------------------------------------
    def __call__(self, input_shape, include_top: bool = True):
        return self.network(self.backbone(input_shape[0]), input_shape[0], include_top)

    def backbone(self, input_size: int, config: dict | None = None):
        from zoo.architectures import vit

        config = self.config if config is None else config
        if self.is_vit:
            return vit.hub_backbone(self.family, config, input_size)
        import keras_hub

        cls_name, converter, shape_arg = TIMM[self.family]
        kcfg = _timm_converter(converter).convert_backbone_config(dict(config))
        return getattr(keras_hub.models, cls_name)(**kcfg, **{shape_arg: (input_size, input_size, 3)})

    def network(self, backbone, input_size: int, include_top: bool = True):
        import keras

        from zoo.architectures import vit

        classes = self.num_classes if include_top else 0
        if self.is_vit:
            return vit.vit_network(self.family, backbone, input_size, classes, name=f"{self.family}_{input_size}")
        out = backbone.output
        if classes:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(out)
            out = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
        net = keras.Model(backbone.input, out, name=f"{self.family}_{input_size}")
        net.zoo_taps = {"body": backbone.output, **{k: backbone.pyramid_outputs[k] for k in ("P2", "P3", "P4", "P5")}}
        net.zoo_backbone = backbone
        return net

    def macs(self, input_size: int) -> int:
        """Multiply-accumulates of one image at ``input_size`` (ViTs: from the config)."""
        if self.is_vit:
            from zoo.architectures import vit

            return vit.vit_macs(self.family, self.config, input_size, self.num_classes)
        from zoo.flops import count_macs

        return count_macs(self((input_size, input_size, 3), True))

    # ---- pretrained -----------------------------------------------------------------------------
    def load(self, folder, input_size: int, include_top: bool = True):
        """(network with the checkpoint's weights at ``input_size``, whether it has the ImageNet head)."""
        from zoo.architectures import vit
        from zoo.weights.folders import layout, read_config

        folder = Path(folder)
        kind = layout(folder)
        cfg = read_config(folder)
        if self.is_vit:
            src, head = self._read_vit(folder, kind, cfg)
            config = {k: v for k, v in _backbone_config(src).items() if k not in _DROP}
            self.check(config, folder)
            if self.family == "vit" and kind == "transformers" and "layer_norm_eps" in cfg:
                config["layer_norm_epsilon"] = cfg["layer_norm_eps"]
            dst = self.backbone(input_size, config)
            vit.transfer_weights(src, dst, self.family)
        else:
            dst, head = self._read_timm(folder, kind, cfg, input_size)
        top = bool(include_top and self.num_classes and head is not None)
        net = self.network(dst, input_size, top)
        if top:
            kernel, bias = head
            if kernel.shape != tuple(net.get_layer("predictions").kernel.shape):
                raise WeightsFormatError(f"{folder}'s classifier has shape {kernel.shape}; this entry's ImageNet "
                                         f"head is {tuple(net.get_layer('predictions').kernel.shape)}")
            net.get_layer("predictions").set_weights([kernel, bias])
        return net, top

    def check(self, config: dict, folder):
        """Refuse a checkpoint whose structure differs from this entry's."""
        def norm(v):
            return list(v) if isinstance(v, (tuple, list)) else v

        wrong = [f"{k}: {norm(config[k])} (entry: {norm(self.config[k])})" for k in STRUCTURAL
                 if k in self.config and k in config and norm(config[k]) != norm(self.config[k])
                 and not (k == "patch_size" and _patch(config[k]) == _patch(self.config[k]))]
        if wrong:
            raise WeightsFormatError(f"{folder} holds another architecture than this entry's: {'; '.join(wrong)}")

    def _read_vit(self, folder: Path, kind: str, cfg: dict):
        """(source keras-hub backbone with the weights, (kernel, bias) of the classifier or None)."""
        import keras
        import keras_hub

        from zoo.architectures import vit

        head = None
        if kind == "keras_hub":
            src = keras_hub.models.Backbone.from_preset(str(folder))
            src = getattr(src, "vision_encoder", src)  # a CLIP / SigLIP two-tower preset: its image tower
            if (folder / "task.json").is_file() and self.num_classes:
                task = keras_hub.models.ImageClassifier.from_preset(str(folder))
                head = tuple(keras.ops.convert_to_numpy(w) for w in task.output_dense.weights)
        elif kind == "transformers":
            family = HF_TYPES.get(cfg.get("model_type"))
            if family != self.family:
                raise WeightsFormatError(f"{folder} holds a {cfg.get('model_type')!r} checkpoint; this entry "
                                         f"needs {self.family.replace('_', ' ')} weights")
            if family in ("clip_vision", "siglip_vision"):
                from zoo.weights.hf_clip_siglip import vision_encoder

                src = vision_encoder(folder, cfg, family)
            else:
                try:
                    src = keras_hub.models.Backbone.from_preset(str(folder))
                except Exception as exc:  # noqa: BLE001 - safetensors / keras-hub raise many types
                    hint = (" (keras-hub's ViT converter reads ViTForImageClassification checkpoints, whose "
                            "tensors are named 'vit.*')") if family == "vit" else ""
                    raise WeightsFormatError(f"keras-hub could not read {folder}: {type(exc).__name__}: "
                                             f"{exc}{hint}") from None
                head = _hf_classifier(folder) if family == "vit" else None
        else:
            raise WeightsFormatError(f"{folder} is a timm checkpoint; keras-hub 0.32 converts timm ResNet, "
                                     "EfficientNet, DenseNet, MobileNet, VGG and CSPNet only: pass a Hugging Face "
                                     "transformers checkpoint or a keras-hub preset of this model")
        want = getattr(keras_hub.models, vit.FAMILIES[self.family].cls)
        if not isinstance(src, want):
            raise WeightsFormatError(f"{folder} holds a {type(src).__name__}; this entry needs a {want.__name__}")
        return src, head

    def _read_timm(self, folder: Path, kind: str, cfg: dict, input_size: int):
        import keras
        import keras_hub

        cls_name, converter_name, _ = TIMM[self.family]
        head = None
        if kind == "timm":
            arch = cfg.get("architecture")
            if arch != self.config.get("architecture"):
                raise WeightsFormatError(f"{folder} holds timm's {arch!r}; this entry is "
                                         f"{self.config.get('architecture')!r}")
            from keras_hub.src.utils.transformers.safetensor_utils import SafetensorLoader

            dst = self.backbone(input_size)
            converter = _timm_converter(converter_name)
            with SafetensorLoader(str(folder), prefix="") as loader:
                converter.convert_weights(dst, loader, cfg)
                if self.num_classes and cfg.get("num_classes") == self.num_classes:
                    dense = keras.layers.Dense(self.num_classes)
                    dense.build((None, _last_dim(dst)))
                    timm_cfg = {**cfg, "pretrained_cfg": cfg.get("pretrained_cfg") or {"classifier": "fc"}}
                    converter.convert_head(types.SimpleNamespace(output_dense=dense), loader, timm_cfg)
                    head = tuple(keras.ops.convert_to_numpy(w) for w in dense.weights)
        elif kind == "keras_hub":
            src = keras_hub.models.Backbone.from_preset(str(folder))
            if type(src).__name__ != cls_name:
                raise WeightsFormatError(f"{folder} holds a {type(src).__name__}; this entry needs a {cls_name}")
            dst = self.backbone(input_size)
            if [tuple(w.shape) for w in src.weights] != [tuple(w.shape) for w in dst.weights]:
                raise WeightsFormatError(f"{folder}'s {cls_name} is not {self.config.get('architecture')}")
            dst.set_weights(src.get_weights())
            if (folder / "task.json").is_file() and self.num_classes:
                task = keras_hub.models.ImageClassifier.from_preset(str(folder))
                head = tuple(keras.ops.convert_to_numpy(w) for w in task.output_dense.weights)
        else:
            raise WeightsFormatError(f"{folder} holds a transformers {cfg.get('model_type')!r} checkpoint; this "
                                     f"entry needs timm's {self.config.get('architecture')} (or a keras-hub preset)")
        return dst, head


def _patch(p):
    return int(p[0] if isinstance(p, (tuple, list)) else p)


def _last_dim(backbone) -> int:
    return int(backbone.output.shape[-1])


def _timm_converter(name: str):
    import importlib

    return importlib.import_module(f"keras_hub.src.utils.timm.{name}")


def _backbone_config(backbone) -> dict:
    cfg = dict(backbone.get_config())
    if "patch_size" in cfg:
        cfg["patch_size"] = _patch(cfg["patch_size"]) if not isinstance(backbone.patch_size, (tuple, list)) \
            else tuple(backbone.patch_size)
    return cfg


def _hf_classifier(folder: Path):
    """ViTForImageClassification's ``classifier`` as (kernel, bias), or None for a ViTModel checkpoint."""
    import numpy as np

    from zoo.weights.hf_clip_siglip import Tensors

    t = Tensors(folder)
    if "classifier.weight" not in t:
        return None
    return np.ascontiguousarray(t.get("classifier.weight").T), t.get("classifier.bias")
