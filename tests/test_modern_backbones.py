"""ViTs, DINOv2, CLIP / SigLIP image towers and timm weights through keras-hub.

No real checkpoint can be downloaded here, so conversions are proven numerically: reference
models with random weights are built in PyTorch (transformers, timm), saved in their native
formats, loaded with ``zoo.load(entry, weights=folder)`` and compared on real photos (embedding
cosine >= 0.9999, max abs difference of logits). Tiny architectures (2 layers, 64 wide) stand in for
the ViTs as registry entries of their own (``*.test``); the timm ResNet50 / EfficientNet-B0 are the
real ones. Tests that need torch skip without it (it is a test-only dependency).
"""
import json
import shutil
from dataclasses import replace

import keras
import numpy as np
import pytest

import zoo
from tests.torch_reference import cosine, nchw, photos, randomize, require
from zoo.architectures.hub import HubArchitecture
from zoo.errors import ChecksumMismatchError, WeightsFormatError, WeightsNotFoundError
from zoo.registry import WeightFile, get_entry, register, unregister

TINY = {  # name: (entry it copies, keras-hub family, config, ImageNet-style classes, native input size)
    "dinov2_tiny": ("dinov2_small", "dinov2",
                    dict(patch_size=14, hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=256,
                         layer_scale_init_value=0.5), 0, 56),
    "vit_tiny": ("vit_base_patch16", "vit",
                 dict(patch_size=8, hidden_dim=64, num_layers=2, num_heads=2, mlp_dim=128), 10, 32),
    "clip_tiny": ("clip_vit_base_patch16", "clip_vision",
                  dict(patch_size=8, hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=128,
                       intermediate_activation="quick_gelu"), 0, 32),
    "siglip_tiny": ("siglip2_base_patch16_224", "siglip_vision",
                    dict(patch_size=8, hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=128,
                         intermediate_activation="gelu_approximate"), 0, 32),
}


@pytest.fixture(scope="module", autouse=True)
def tiny_entries():
    """The tiny architectures as registry entries ``<name>.test`` (their weights: a cache folder of that name)."""
    for name, (base, family, config, classes, size) in TINY.items():
        register(replace(get_entry(base), name=name, tag="test", builder=HubArchitecture(family, config, classes),
                         input_size=size, feature_dim=config["hidden_dim"],
                         weights=WeightFile(f"{name}.test", None, None, format="hub_folder")))
    yield
    for name in TINY:
        unregister(f"{name}.test")


def _logits(m, pixels):
    """Pre-softmax scores of a model with an ImageNet-style head."""
    from zoo.layers import Normalize

    p = m.preprocessing
    pooled = keras.Model(m.network.input, m.network.get_layer("predictions").input)(
        Normalize(p.mean, p.std)(pixels.astype("float32"))).numpy()
    kernel, bias = m.network.get_layer("predictions").get_weights()
    return pooled @ kernel + bias


# ---- conversions, proven against the reference implementations --------------------------------------
@pytest.fixture(scope="module")
def hf_checkpoints(tmp_path_factory):
    """Random-weight transformers models saved as Hugging Face checkpoints: {name: (folder, model)}."""
    torch, transformers = require("transformers")
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
                  patch_size=8)
    text = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=16)
    models = {
        "dinov2": transformers.Dinov2Model(transformers.Dinov2Config(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, image_size=56, patch_size=14,
            layerscale_value=0.5)),
        "vit": transformers.ViTForImageClassification(transformers.ViTConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
            patch_size=8, num_labels=10)),
        "clip": transformers.CLIPModel(transformers.CLIPConfig(text_config={**text, "bos_token_id": 97,
                                                                             "eos_token_id": 98},
                                                                vision_config=vision, projection_dim=24)),
        "siglip": transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision)),
    }
    out = {}
    for name, model in models.items():
        randomize(model, seed=len(out))
        model.save_pretrained(root / name, safe_serialization=True)
        out[name] = (root / name, model)
    return out


@pytest.mark.parametrize("entry, ref, sizes", [("dinov2_tiny.test", "dinov2", (56, 84)),
                                               ("clip_tiny.test", "clip", (32, 64)),
                                               ("siglip_tiny.test", "siglip", (32, 64))])
def test_image_tower_embeddings_match_hugging_face(hf_checkpoints, entry, ref, sizes):
    """The embedding is the reference's ``pooler_output``, at the checkpoint's size and at another one
    (position tables resampled as Hugging Face's ``interpolate_pos_encoding``)."""
    torch, _ = require("transformers")
    folder, hf = hf_checkpoints[ref]
    tower = hf if ref == "dinov2" else hf.vision_model
    for size in sizes:
        m = zoo.load(entry, weights=folder, input_size=size)
        pixels = photos(size)
        with torch.no_grad():
            kw = {} if ref == "dinov2" else {"interpolate_pos_encoding": size != 32}
            want = tower(pixel_values=nchw(pixels, m.preprocessing.mean, m.preprocessing.std), **kw).pooler_output
        got = m.embed(pixels, progress=False)
        assert cosine(got, want.numpy()).min() >= 0.9999, (entry, size)
        assert np.abs(got - want.numpy()).max() < 1e-4, (entry, size)
        keras.backend.clear_session()


def test_vit_classifier_logits_match_hugging_face(hf_checkpoints):
    torch, _ = require("transformers")
    folder, hf = hf_checkpoints["vit"]
    for size in (32, 64):
        m = zoo.load("vit_tiny.test", weights=folder, input_size=size)
        pixels = photos(size)
        with torch.no_grad():
            want = hf(pixel_values=nchw(pixels, m.preprocessing.mean, m.preprocessing.std),
                      interpolate_pos_encoding=size != 32).logits.numpy()
        assert np.abs(_logits(m, pixels) - want).max() < 1e-4
        np.testing.assert_allclose(m.predict(pixels), torch.softmax(torch.from_numpy(want), -1).numpy(), atol=1e-6)


@pytest.mark.parametrize("arch, entry, size", [("resnet50", "resnet50.timm_a1_in1k", 160),
                                               ("efficientnet_b0", "efficientnet_b0.timm_ra_in1k", 128)])
def test_timm_checkpoints_match_timm(tmp_path, arch, entry, size):
    """timm's own checkpoint layout (config.json + model.safetensors, as on the hub) through keras-hub's
    timm converters: logits and the pooled embedding equal timm's."""
    torch, timm = require("timm")
    ref = randomize(timm.create_model(arch, pretrained=False), scale=1.0)
    timm.models.save_for_hf(ref, tmp_path / arch, safe_serialization=True)
    m = zoo.load(entry, weights=tmp_path / arch, input_size=size)
    pixels = photos(size)
    x = nchw(pixels, m.preprocessing.mean, m.preprocessing.std)
    with torch.no_grad():
        want = ref(x).numpy()
        pooled = ref.forward_head(ref.forward_features(x), pre_logits=True).numpy()
    logits = _logits(m, pixels)
    assert np.abs(logits - want).max() < 1e-4 * max(1.0, np.abs(want).max())
    assert cosine(m.embed(pixels, progress=False), pooled).min() >= 0.9999
    assert list(m.predict(pixels).argmax(1)) == list(want.argmax(1))


def test_keras_hub_preset_folder_loads_by_path(tmp_path):
    """A keras-hub preset (what ``save_to_preset`` writes, and what keras-hub downloads from Kaggle)."""
    import keras_hub

    _, _, config, _, size = TINY["dinov2_tiny"]
    hub = keras_hub.models.DINOV2Backbone(**config, image_shape=(size, size, 3),
                                          position_embedding_shape=(size, size))
    hub.save_to_preset(str(tmp_path / "preset"))
    m = zoo.load("dinov2_tiny.test", weights=tmp_path / "preset")
    pixels = photos(size)
    p = m.preprocessing
    want = hub.predict({"images": (pixels.astype("float32") - np.array(p.mean)) / np.array(p.std)}, verbose=0)[:, 0]
    np.testing.assert_allclose(m.embed(pixels, progress=False), want, atol=1e-5)


def test_resized_backbone_resamples_position_tables(tmp_path):
    """ZooModel.copy: a (trained) ViT at another input size equals loading the checkpoint at it."""
    import keras_hub

    _, _, config, _, size = TINY["dinov2_tiny"]
    keras_hub.models.DINOV2Backbone(**config, image_shape=(size, size, 3),
                                    position_embedding_shape=(size, size)).save_to_preset(str(tmp_path / "p"))
    moved = zoo.load("dinov2_tiny.test", weights=tmp_path / "p").copy(84)
    direct = zoo.load("dinov2_tiny.test", weights=tmp_path / "p", input_size=84)
    pixels = photos(84)
    np.testing.assert_allclose(moved.embed(pixels, progress=False), direct.embed(pixels, progress=False), atol=1e-5)


# ---- finding weights ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dinov2_small", "siglip2_base_patch16_224", "resnet50.timm_a1_in1k"])
def test_offline_load_lists_every_place_looked(tmp_path, monkeypatch, name):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        zoo.load(name)
    msg = str(info.value)
    entry = get_entry(name)
    assert f"project cache: {tmp_path / 'zh' / 'weights' / entry.weights.filename}" in msg
    assert ("Kaggle cache" in msg and str(tmp_path / "kh") in msg) or ("Hugging Face cache" in msg
                                                                       and str(tmp_path / "hf") in msg)
    assert f"download {entry.weights.url}: skipped (offline)" in msg
    assert "weights='/path/to/folder'" in msg and "model.safetensors" in msg and "weights=None" in msg
    assert name.split(".")[0] not in zoo.list_models(pretrained=True)


def test_cache_folder_is_found_and_checksummed(tmp_path, monkeypatch, rng):
    """A folder in ``$ZOO_HOME/weights/<name>/`` is found like a weight file; the SHA-256 manifest recorded
    on download is enforced; then the model serves the index and few-shot heads by name."""
    import keras_hub

    from zoo.weights.folders import write_manifest

    _, _, config, _, size = TINY["dinov2_tiny"]
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    folder = tmp_path / "weights" / "dinov2_tiny.test"
    keras_hub.models.DINOV2Backbone(**config, image_shape=(size, size, 3)).save_to_preset(str(folder))
    write_manifest(folder, "test")
    assert "dinov2_tiny.test" in zoo.list_models("dinov2*", pretrained=True, tags=True)
    m = zoo.load("dinov2_tiny.test")
    assert m.weights_source == "imagenet" and m.embed(photos(size), progress=False).shape == (3, 64)

    images = rng.integers(0, 256, (12, size, size, 3), dtype=np.uint8)
    labels = np.arange(12) % 3
    idx = zoo.index.build(images, model="dinov2_tiny.test", progress=False, runtime="tensorflow")
    assert list(idx.search(images[:2], k=1).ids[:, 0]) == [0, 1]
    try:  # where the few-shot head lives moves with the task layout
        from zoo.tasks.fewshot.model import KNNClassifier
    except ImportError:
        from zoo.tasks.fewshot import KNNClassifier

    knn = KNNClassifier(model="dinov2_tiny.test", k=1).fit(images, labels)
    assert list(knn.predict(images[:3])) == [0, 1, 2]

    weights = folder / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="recorded"):
        zoo.load("dinov2_tiny.test")


def test_pickles_and_other_architectures_are_refused(tmp_path, hf_checkpoints):
    folder, _ = hf_checkpoints["dinov2"]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(folder / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(WeightsFormatError, match="pickle.*safetensors"):
        zoo.load("dinov2_tiny.test", weights=pickled)
    with pytest.raises(WeightsFormatError, match="hidden_dim: 64 \\(entry: 384\\)"):  # tiny weights, ViT-S entry
        zoo.load("dinov2_small", weights=folder)
    with pytest.raises(WeightsFormatError, match="'clip' checkpoint"):
        zoo.load("dinov2_tiny.test", weights=hf_checkpoints["clip"][0])
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        zoo.load("dinov2_tiny.test", weights=tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "odd" / "model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsFormatError, match="neither"):
        zoo.load("dinov2_tiny.test", weights=tmp_path / "odd")


# ---- what a ViT gives: pyramid, Grad-CAM, detection, export ------------------------------------------
@pytest.mark.parametrize("name, size", [("dinov2_tiny.test", 64), ("dinov2_tiny.test", 96), ("vit_tiny.test", 64),
                                        ("siglip_tiny.test", 96)])
def test_vit_pyramid_has_exact_strides(name, size, rng):
    """ViTDet's simple pyramid: P2..P5 at exactly input/4..input/32 (patch-14 grids resampled to input/16)."""
    m = zoo.load(name, weights=None, input_size=size)
    f = m.features(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
    dim = get_entry(name).feature_dim
    assert {k: v.shape[1:] for k, v in f.items()} == {
        "P2": (size // 4, size // 4, dim // 4), "P3": (size // 8, size // 8, dim // 2),
        "P4": (size // 16, size // 16, dim), "P5": (size // 32, size // 32, dim)}
    # the transposed convolutions start as nearest upsampling + an orthonormal projection: structure kept
    p3, p4 = f["P3"][0], f["P4"][0]
    assert np.allclose(p3[0::2, 0::2], p3[1::2, 1::2], atol=1e-5)
    assert np.linalg.norm(p3) / np.linalg.norm(np.repeat(np.repeat(p4, 2, 0), 2, 1)) == pytest.approx(1.0, rel=0.2)


def test_gradcam_on_a_vit(rng):
    from zoo.explain import GradCAM, overlay

    m = zoo.load("vit_tiny.test", weights=None, input_size=64)
    image = rng.integers(0, 256, (64, 64, 3)).astype(np.float32)
    heat = GradCAM(m)(image, class_index=3)
    assert heat.shape == (8, 8) and heat.min() >= 0 and heat.max() == pytest.approx(1.0, abs=1e-5)
    assert heat.std() > 0.01  # the class token's gradient reaches the patch grid (it enters the last block)
    assert overlay(image, heat).shape == (64, 64, 3)


def test_detector_on_a_vit_pyramid(rng):
    """RetinaNet's FPN takes the ViT's P3..P5 (strides 8..32) and boxes come out."""
    from zoo.tasks.detector import Detector

    det = Detector(zoo.load("dinov2_tiny.test", weights=None, input_size=64), ["shirt", "bag"])
    out = det.detect(rng.integers(0, 256, (2, 80, 60, 3), dtype=np.uint8))
    assert len(out) == 2 and all(set(o) >= {"boxes", "scores", "labels"} for o in out)


@pytest.mark.parametrize("head", ["unet", "deeplabv3plus"])
def test_segmenter_on_a_vit_pyramid(head, rng):
    """U-Net and DeepLabV3+ take the ViT's P2..P5 and give a map at each image's size."""
    from zoo.tasks.segmenter import Segmenter

    seg = Segmenter(zoo.load("siglip_tiny.test", weights=None, input_size=64), ["background", "shirt", "bag"], head=head)
    maps = seg.segment(rng.integers(0, 256, (2, 80, 60, 3), dtype=np.uint8), progress=False)
    assert [m.shape for m in maps] == [(80, 60), (80, 60)] and all(m.max() < 3 for m in maps)


@pytest.mark.slow
def test_detection_trains_on_a_vit_pyramid():
    """One short epoch of the detection recipe on a ViT backbone (about 45 s here, mostly tracing)."""
    from recipes import detection

    train, val = detection.scenes(("train", "val"), n={"train": 8, "val": 2}, size=64)
    backbone = zoo.load("dinov2_tiny.test", weights=None, input_size=64)
    det = detection.train(train, val, backbone=backbone, epochs=1, batch_size=8, input_size=64, eval_every=1,
                          verbose=0, augment="none")
    assert np.isfinite(det.history["loss"]).all()
    out = det.detect(val.images[:2])
    assert len(out) == 2 and all(set(o) >= {"boxes", "scores", "labels"} for o in out)


@pytest.mark.parametrize("name, fmt", [("dinov2_tiny.test", "tflite"), ("dinov2_tiny.test", "onnx"),
                                       ("siglip_tiny.test", "tflite"), ("siglip_tiny.test", "onnx")])
def test_vit_exports_and_runs_faster_runtimes(tmp_path, name, fmt, rng, monkeypatch):
    """TFLite (XNNPACK) and ONNX Runtime run ViT exports with TensorFlow's embeddings (zoo.runtimes)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("tf2onnx")
    from zoo.runtimes import compile_model

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    m = zoo.load(name, weights=None, input_size=64)
    pixels = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    fast = compile_model(m, "tflite" if fmt == "tflite" else "onnxruntime")
    assert cosine(fast.embed(pixels, progress=False), m.embed(pixels, progress=False)).min() > 0.99999


def test_registry_records_match_the_computed_cost():
    """dinov2_small's params and GMACs recomputed here (the base models: the slow test below)."""
    _check_record("dinov2_small")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dinov2_base", "vit_base_patch16", "clip_vit_base_patch16", "clip_vit_base_patch32",
                                  "siglip2_base_patch16_224", "resnet50.timm_a1_in1k",
                                  "efficientnet_b0.timm_ra_in1k"])
def test_base_records_match_the_computed_cost(name):
    _check_record(name)


def _check_record(name):
    from zoo.flops import count_macs

    e = get_entry(name)
    m = zoo.load(name, weights=None)
    assert m.network.count_params() / 1e6 == pytest.approx(e.params_m, abs=0.01)
    assert e.builder.macs(e.input_size) / 1e9 == pytest.approx(e.gmacs, abs=0.01)
    if not e.builder.is_vit:
        assert count_macs(m.network) / 1e9 == pytest.approx(e.gmacs, abs=0.01)
    assert m.feature_dim == e.feature_dim
    keras.backend.clear_session()
