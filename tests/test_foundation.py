"""The foundation: one pixel path, one folder format with a loader per kind, a tagged registry."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from zoo import images as zimages
from zoo import io as zio
from zoo.errors import ChecksumMismatchError, InputShapeError, SavedModelError

FIXTURES = Path(__file__).parent / "fixtures" / "format_v1"


@pytest.fixture(scope="module")
def float_clf(fmnist_sample):
    """A head fine-tuned on float [0, 1] arrays (the form most tutorials produce)."""
    x, y = fmnist_sample("train", 30)
    m = zoo.load("efficientnet_lite0", input_size=64)
    clf = m.finetune((x.astype(np.float32) / 255.0, y), epochs=0, head_epochs=15, val_fraction=0, verbose=0,
                     augment="none")
    return clf


def test_training_and_inference_see_the_same_pixels(float_clf, fmnist_sample):
    x, y = fmnist_sample("test", 10, seed=1)
    xf = x.astype(np.float32) / 255.0
    probs = float_clf.predict(xf)
    acc_predict = float((probs.argmax(1) == y).mean())
    acc_eval = float_clf.evaluate((xf, y))["accuracy"]
    assert acc_predict == pytest.approx(acc_eval, abs=1e-9)
    assert acc_predict > 0.6  # chance is 0.1: the head learned from correctly scaled pixels
    # uint8, float [0, 1] and uint16 forms of one picture give one answer, in predict and evaluate
    for form in (x, (x.astype(np.uint16) * 257)):
        np.testing.assert_allclose(float_clf.predict(form), probs, atol=1e-4)
        assert float_clf.evaluate((form, y))["accuracy"] == pytest.approx(acc_eval)


def test_float_range_is_decided_once_per_call(lite0_96, fmnist_sample):
    x, _ = fmnist_sample("test", 2)
    xf = x[:8].astype(np.float32) / 255.0
    xf[:4] *= 0.3  # a batch of 4 holds only dark images (max < 1 on its own in any range)
    a = lite0_96.embed(xf, batch_size=4, progress=False)
    b = lite0_96.embed(xf, batch_size=8, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = lite0_96.embed(xf * 255.0, batch_size=4, progress=False, value_range="0-255")
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_exif_orientation_is_applied_to_jpeg_files(lite0_96, photos, tmp_path):
    cat = photos["chelsea"]
    Image.fromarray(cat).save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are turned the other way
    Image.fromarray(np.rot90(cat, 1)).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    phone = lite0_96.embed(tmp_path / "phone.jpg", normalize=True, progress=False)[0]
    upright, turned = lite0_96.embed([cat, np.rot90(cat, 1).copy()], normalize=True, progress=False)
    assert float(phone @ upright) > 0.99 and float(phone @ upright) - float(phone @ turned) > 0.05


@pytest.mark.parametrize("bad, match", [
    (np.zeros((64, 64, 2), np.uint8), "ambiguous"),
    (np.zeros((1, 0, 0, 3), np.uint8), "at least one pixel"),
    (np.zeros((2, 8, 8, 3), np.complex64), "dtype"),
    (np.full((2, 8, 8), np.nan, np.float32), "NaN"),
    (np.zeros((2, 8, 8, 5), np.uint8), "expected images"),
])
def test_bad_arrays_get_typed_errors(lite0_96, bad, match):
    with pytest.raises(InputShapeError, match=match):
        lite0_96.embed(bad, progress=False)


def test_bad_arguments_and_nan_datasets(lite0_96):
    x = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(InputShapeError, match="batch_size"):
        lite0_96.embed(x, batch_size=0)
    clf = zoo.load(FIXTURES / "classifier")
    with pytest.raises(InputShapeError, match="top_k"):
        clf.classify(x, top_k=-3)
    ds = tf.data.Dataset.from_tensor_slices(np.full((3, 8, 8, 3), np.nan, np.float32))
    with pytest.raises(InputShapeError, match="NaN"):
        lite0_96.embed(ds, progress=False)


def test_letterbox_maps_boxes_back_to_each_image():
    img = np.zeros((50, 200, 3), np.uint8)
    img[10:30, 40:120] = 255
    canvas, scale, pad = zimages.letterbox(img, 100)
    assert canvas.shape == (100, 100, 3) and scale == pytest.approx(0.5) and pad == (0, 37)
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    on_canvas = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    back = zimages.unletterbox_boxes([on_canvas], scale, pad, img.shape)
    np.testing.assert_allclose(back[0], [40, 10, 120, 30], atol=2.5)
    np.testing.assert_allclose(zimages.letterbox_boxes(back, scale, pad), [on_canvas], atol=1e-4)


def test_masks_resize_by_nearest_neighbour_to_odd_sizes():
    mask = np.zeros((8, 8), np.uint8)
    mask[:4, :4], mask[4:, 4:] = 3, 7
    for shape in ((13, 17), (5, 3), (8, 8), (1, 1)):
        out = zimages.resize_mask(mask, shape)
        assert out.shape == shape and set(np.unique(out)) <= {0, 3, 7}  # labels never blend
    big = zimages.resize_mask(mask, (16, 16))
    assert (big[:8, :8] == 3).all() and (big[8:, 8:] == 7).all()


# ---- the folder format -------------------------------------------------------------------
def test_format_v1_folders_still_load():
    clf = zoo.load(FIXTURES / "classifier")
    exp = np.load(FIXTURES / "classifier_expected.npz")
    np.testing.assert_allclose(clf.predict(exp["images"]), exp["probs"], atol=1e-5)
    assert clf.labels[0] == "T-shirt/top" and clf.kind == "classifier"

    knn = zoo.load(FIXTURES / "fewshot")
    exp = np.load(FIXTURES / "fewshot_expected.npz")
    assert type(knn).__name__ == "KNNClassifier" and list(knn.predict(exp["queries"])) == list(exp["pred"])

    v = zoo.load(FIXTURES / "verifier")
    assert type(v).__name__ == "Verifier" and v.threshold == 0.5


def test_every_kind_saves_in_the_current_format_and_loads_back(tmp_path):
    clf = zoo.load(FIXTURES / "classifier")
    clf.save(tmp_path / "clf")
    cfg = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert cfg["format_version"] == 3 and cfg["kind"] == "classifier"
    assert {"backbone.weights.h5", "task.weights.h5"} == set(cfg["files"])  # the backbone part apart from the head
    assert cfg["backbone"]["name"] == "mobilenet_v3_small" and cfg["backbone"]["stored"]
    assert {"zoo", "keras", "tensorflow"} <= set(cfg["versions"])
    again = zoo.load(tmp_path / "clf")
    x = np.load(FIXTURES / "classifier_expected.npz")["images"]
    np.testing.assert_allclose(again.predict(x), clf.predict(x), atol=1e-6)

    zoo.load(FIXTURES / "fewshot").save(tmp_path / "knn")
    assert json.loads((tmp_path / "knn" / "config.json").read_text())["kind"] == "fewshot"
    assert type(zoo.load(tmp_path / "knn")).__name__ == "KNNClassifier"
    assert not list(tmp_path.glob(".*"))  # no temp folders left behind


def test_damaged_folders_are_refused_with_clear_errors(tmp_path):
    good = tmp_path / "good"
    zoo.load(FIXTURES / "classifier").save(good)

    def variant(name, edit):
        d = tmp_path / name
        shutil.copytree(good, d)
        edit(d)
        return d

    def cfg_edit(fn):
        def edit(d):
            cfg = json.loads((d / "config.json").read_text())
            fn(cfg)
            (d / "config.json").write_text(json.dumps(cfg))
        return edit

    def flip(name):
        def edit(d):
            data = bytearray((d / name).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (d / name).write_bytes(bytes(data))
        return edit
    for name in ("backbone.weights.h5", "task.weights.h5"):
        with pytest.raises(ChecksumMismatchError, match=name):
            zoo.load(variant(f"flipped-{name}", flip(name)))
    cases = {
        "nosum": (cfg_edit(lambda c: c.pop("files")), "checksums"),
        "nokind": (cfg_edit(lambda c: c.pop("kind")), "kind"),
        "alien": (cfg_edit(lambda c: c.update(kind="hologram")), "cannot open"),
        "future": (cfg_edit(lambda c: c.update(format_version=99)), "upgrade zoo"),
        "badsize": (cfg_edit(lambda c: c["backbone"].update(input_size="big")), "input_size"),
        "escape": (cfg_edit(lambda c: c["files"].update({"../x": "0" * 64})), "plain name"),
        "notjson": (lambda d: (d / "config.json").write_text("{"), "not valid JSON"),
    }
    for name, (edit, match) in cases.items():
        with pytest.raises(SavedModelError, match=match):
            zoo.load(variant(name, edit))
    v1 = tmp_path / "v1"
    shutil.copytree(FIXTURES / "classifier", v1)
    cfg_edit(lambda c: c.pop("weights_sha256"))(v1)
    with pytest.raises(SavedModelError, match="weights_sha256"):
        zoo.load(v1)


def test_a_crash_mid_save_keeps_the_previous_folder(tmp_path):
    clf = zoo.load(FIXTURES / "classifier")
    clf.save(tmp_path / "m")
    before = (tmp_path / "m" / "config.json").read_text()

    def boom(path):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        zio.write_folder(tmp_path / "m", "classifier", {}, {"model.weights.h5": boom})
    assert (tmp_path / "m" / "config.json").read_text() == before
    assert not list(tmp_path.glob(".m.*"))


# ---- the registry ------------------------------------------------------------------------
def test_registry_keys_name_and_tag_and_custom_entries_keep_builtins():
    from dataclasses import replace

    from zoo.registry import register, unregister

    lite = zoo.get_entry("efficientnet_lite0")
    assert lite.full_name == "efficientnet_lite0.imagenet" and zoo.get_entry("efficientnet_lite0.imagenet") is lite
    custom = register(replace(lite, tag="simclr_fmnist", weights=None))
    try:
        assert zoo.get_entry("resnet50").name == "resnet50"  # built-ins still there
        assert zoo.get_entry("efficientnet_lite0") is lite   # the bare name keeps its default tag
        assert zoo.get_entry("efficientnet_lite0.simclr_fmnist") is custom
        assert "efficientnet_lite0.simclr_fmnist" in zoo.list_models("efficientnet_lite0*", tags=True)
        assert zoo.list_models("efficientnet_lite0") == ["efficientnet_lite0"]
        with pytest.raises(zoo.UnknownModelError, match="simclr_fmnist"):
            zoo.get_entry("efficientnet_lite0.simclr")
        with pytest.raises(ValueError, match="twice"):
            register(custom)
    finally:
        unregister("efficientnet_lite0.simclr_fmnist")
    with pytest.raises(zoo.UnknownModelError, match="Did you mean: resnet50"):
        zoo.get_entry("resnet5O")


def test_float_tiff_in_0_1_reads_as_the_same_picture(tmp_path):
    gray = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    Image.fromarray(gray, mode="F").save(tmp_path / "f.tif")
    img = zimages.read_image(tmp_path / "f.tif")
    np.testing.assert_allclose(img[..., 0], gray * 255.0, atol=1e-3)
