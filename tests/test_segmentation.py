"""Segmentation: mIoU against hand-computed answers, class maps at each input's own size, save/load,
mask readers, joint augmentation, the loss's ignore label, convergence on demo scenes, CLI, app page."""
import io
from pathlib import Path
import json

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from recipes import segmentation as S
from zoo.errors import DataError
from zoo.tasks.segmenter import Segmenter, miou_report

NAMES = ["background", "a", "b"]


@pytest.fixture(scope="module")
def small_seg():
    """An untrained U-Net segmenter (real Lite0 weights at 64 px): shapes, save/load, evaluate."""
    return Segmenter(zoo.load("efficientnet_lite0", input_size=64), NAMES, "unet")


def test_miou_matches_a_hand_computed_answer():
    y = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]])
    p = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [2, 0, 2, 1]])
    m = keras.metrics.MeanIoU(3, ignore_class=255)
    m.update_state(y.ravel(), p.ravel())
    r = miou_report(m, NAMES)
    # background: inter 3, truth 4, pred 5 -> 3/6; a: inter 3, truth 4, pred 4 -> 3/5; b: 1/(2+1-1) = 1/2
    assert r["per_class_iou"] == pytest.approx({"background": 0.5, "a": 0.6, "b": 0.5})
    assert r["mIoU"] == pytest.approx((0.5 + 0.6 + 0.5) / 3)
    assert r["pixel_accuracy"] == pytest.approx(7 / 10)  # the two 255 pixels count for nothing


def test_segment_returns_maps_at_each_inputs_own_size(small_seg, tmp_path):
    odd = [np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8),
           np.linspace(0, 1, 200 * 91, dtype=np.float32).reshape(200, 91),
           Image.new("RGB", (19, 300), (200, 30, 30))]
    Image.fromarray(odd[0]).save(tmp_path / "a.png")
    maps = small_seg.segment(odd, progress=False)
    assert [m.shape for m in maps] == [(37, 53), (200, 91), (300, 19)]
    assert all(m.dtype == np.int32 and m.min() >= 0 and m.max() < 3 for m in maps)
    probs = small_seg.segment(odd, probs=True, progress=False)
    assert [p.shape for p in probs] == [(37, 53, 3), (200, 91, 3), (300, 19, 3)]
    np.testing.assert_allclose(probs[1].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probs[0].argmax(-1), maps[0])
    r = small_seg.segment(str(tmp_path), return_sources=True, progress=False)  # a folder of files
    assert r.sources == [str(tmp_path / "a.png")] and r.outputs[0].shape == (37, 53)
    np.testing.assert_array_equal(r.outputs[0], maps[0])


def test_tta_averages_mirrored_and_rescaled_probabilities(small_seg):
    """``tta="flip"``: the mean of the probabilities and the mirrored image's, mirrored back; scale
    factors: the same at each side from a network built there with the segmenter's weights, resized
    back to its input size; a changed weight reaches every copy."""
    import tensorflow as tf

    from zoo.errors import RecipeError

    x = S.scenes("val", n=3, size=64).images                     # at the network's own size
    net = small_seg.segmentation_model
    p = lambda m, a: m(tf.constant(a, tf.float32), training=False).numpy()  # noqa: E731
    mirrored = lambda m, a: 0.5 * (p(m, a) + p(m, a[:, :, ::-1])[:, :, ::-1])  # noqa: E731
    np.testing.assert_allclose(small_seg.predict(x, tta="flip"), mirrored(net, x), atol=1e-5)
    twin = Segmenter(zoo.load("efficientnet_lite0", input_size=96), NAMES, "unet")   # 1.5 x 64 px
    twin.segmentation_model.set_weights(net.get_weights())
    big = tf.image.resize(mirrored(twin.segmentation_model, tf.image.resize(x.astype(np.float32), (96, 96)).numpy()),
                          (64, 64)).numpy()
    want = 0.5 * (mirrored(net, x) + big)
    np.testing.assert_allclose(small_seg.predict(x, tta=(1.0, 1.5)), want, atol=1e-5)
    plain = small_seg.predict(x)
    assert np.abs(want - plain).max() > 1e-3                     # the copies change the answer
    last = net.get_layer("classes")                              # the class convolution, before the softmax
    saved = [w.copy() for w in last.get_weights()]
    try:
        last.set_weights([saved[0], saved[1] + np.array([0.0, 0.0, 50.0], np.float32)])
        assert (small_seg.predict(x, tta=(1.0, 1.5)).argmax(-1) == 2).all()   # the 96 px copy follows
    finally:
        last.set_weights(saved)
    np.testing.assert_allclose(small_seg.predict(x), plain, atol=1e-6)
    with pytest.raises(RecipeError, match="tta"):
        small_seg.segment(x, tta="sideways")
    with pytest.raises(RecipeError, match="positive"):
        small_seg.segment(x, tta=(0.0, 1.0))


def test_save_and_load_round_trip(small_seg, tmp_path):
    x = S.scenes("val", n=4, size=64).images
    before = small_seg.segment(x, probs=True, progress=False)
    folder = small_seg.save(tmp_path / "seg")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["kind"] == "segmenter" and cfg["labels"] == NAMES and cfg["task"]["head"]["type"] == "unet"
    back = zoo.load(folder)
    assert isinstance(back, Segmenter) and back.class_names == NAMES and back.input_size == 64
    for a, b in zip(before, back.segment(x, probs=True, progress=False)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_evaluate_agrees_with_its_own_maps_and_checks_masks(small_seg, tmp_path):
    sc = S.scenes("val", n=6, size=64)
    masks = np.minimum(sc.masks, 2)  # fold the ten item classes into the model's two
    masks[:, :3] = 255
    r = small_seg.evaluate((sc.images, masks), progress=False)
    maps = small_seg.segment(sc.images, progress=False)
    m = keras.metrics.MeanIoU(3, ignore_class=255)
    for y, p in zip(masks, maps):
        m.update_state(y.ravel(), p.ravel())
    assert r["mIoU"] == pytest.approx(float(m.result()), abs=1e-6) and r["n"] == 6
    (tmp_path / "im").mkdir()
    (tmp_path / "ma").mkdir()
    for i in (3, 1, 4):  # files read back (in sorted order) give the same answer as the arrays
        Image.fromarray(sc.images[i]).save(tmp_path / "im" / f"{i}.png")
        Image.fromarray(masks[i]).save(tmp_path / "ma" / f"{i}.png")
    d = S.read_masks(tmp_path / "im", tmp_path / "ma", class_names=NAMES)
    on_files = small_seg.evaluate(d, progress=False)
    on_arrays = small_seg.evaluate((sc.images[[1, 3, 4]], masks[[1, 3, 4]]), progress=False)
    np.testing.assert_array_equal(on_files["confusion_matrix"], on_arrays["confusion_matrix"])
    with pytest.raises(DataError, match="label 7"):
        small_seg.evaluate((sc.images[:1], np.full((1, 64, 64), 7, np.uint8)), progress=False)
    with pytest.raises(DataError, match="must match"):
        small_seg.evaluate((sc.images[:1], [np.zeros((10, 10), np.uint8)]), progress=False)


def _write_pairs(root, sc, mode="P"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(len(sc)):
        Image.fromarray(sc.images[i]).save(root / "images" / f"s{i}.jpg", quality=95)
        m = Image.fromarray(sc.masks[i], mode="L")
        if mode == "P":
            m = m.convert("P")
            m.putpalette(S.palette(11).ravel().tolist())
        m.save(root / "masks" / f"s{i}.png")


@pytest.mark.parametrize("mode", ["P", "L"])
def test_read_masks_round_trips_palette_and_grey_label_maps(tmp_path, mode):
    sc = S.scenes("test", n=3, size=(48, 64))
    _write_pairs(tmp_path, sc, mode)
    d = S.read_masks(tmp_path / "images", tmp_path / "masks", class_names=sc.mask_class_names)
    assert len(d) == 3 and d.class_names == sc.mask_class_names
    for i in range(3):
        np.testing.assert_array_equal(d.masks[i], sc.masks[i])
    x, y, names = S.as_arrays(d, 32)  # resized for training: masks by nearest neighbour
    assert x.shape == (3, 32, 32, 3) and y.shape == (3, 32, 32) and set(np.unique(y)) <= set(np.unique(sc.masks))


def test_read_masks_bad_input_names_the_file(tmp_path):
    sc = S.scenes("test", n=3, size=48)
    _write_pairs(tmp_path, sc, "L")
    (tmp_path / "masks" / "s2.png").unlink()
    with pytest.warns(UserWarning, match="s2.jpg"):
        d = S.read_masks(tmp_path / "images", tmp_path / "masks")
    assert len(d) == 2
    assert d.class_names[0] == "background" and len(d.class_names) == max(int(m.max()) for m in d.masks) + 1
    (tmp_path / "images" / "s2.jpg").unlink()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "masks" / "s1.png")
    with pytest.raises(DataError, match="s1.png"):
        S.read_masks(tmp_path / "images", tmp_path / "masks")
    Image.fromarray(np.full((48, 48), 12, np.uint8)).save(tmp_path / "masks" / "s1.png")
    with pytest.raises(DataError, match="s1.png.*label 12"):
        S.read_masks(tmp_path / "images", tmp_path / "masks", class_names=sc.mask_class_names)
    rgb = np.zeros((48, 48, 3), np.uint8)
    rgb[:10, :10] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "masks" / "s1.png")
    with pytest.raises(DataError, match="s1.png.*palette"):
        S.read_masks(tmp_path / "images", tmp_path / "masks")


def test_augmentation_moves_image_and_mask_together():
    import tensorflow as tf

    sc = S.scenes("train", n=8, size=64)
    pal = S.palette(11).astype(np.float32)
    painted = pal[sc.masks]  # an image whose colour says its label
    aug = S.augmenter(64, scale_range=(0.6, 1.6), seed=1, colour=False)
    tf.random.set_seed(3)
    x, y = aug(tf.constant(painted), tf.constant(sc.masks))
    x, y = x.numpy(), y.numpy()
    assert x.shape == (8, 64, 64, 3) and y.dtype == np.uint8
    assert not np.array_equal(y, sc.masks)  # something moved
    valid = y != 255
    colour_of_label = pal[np.where(valid, y, 0)]
    agree = (np.abs(x - colour_of_label).max(-1) < 1.0) & valid
    assert agree.sum() / valid.sum() > 0.9  # only edges (bilinear blends) may differ
    assert (~valid).any() and np.allclose(x[~valid], 114.0, atol=1.0)  # zoomed out: padding is ignored


def test_loss_ignores_label_255_and_weights_classes():
    import tensorflow as tf

    p = tf.constant(np.random.default_rng(0).dirichlet(np.ones(3), (1, 4, 4)).astype(np.float32))
    y = np.full((1, 4, 4), 255, np.uint8)
    y[0, 1, 2] = 1
    ce = S.segmentation_loss(3, dice_weight=0.0)
    assert float(ce(tf.constant(y), p)) == pytest.approx(-np.log(p.numpy()[0, 1, 2, 1]), rel=1e-5)
    y2 = y.copy()
    y2[0, 0, 0] = 2
    w = S.segmentation_loss(3, class_weights=[1.0, 1.0, 0.0], dice_weight=0.0)  # class 2 weighs nothing
    assert float(w(tf.constant(y2), p)) == pytest.approx(float(ce(tf.constant(y), p)), rel=1e-5)


@pytest.fixture
def trained(trained_segmenter):
    return trained_segmenter   # conftest: trained once per session (tests/test_instances.py uses it too)


@pytest.mark.slow
def test_training_converges_well_above_all_background(trained):
    seg, out = trained
    test = S.scenes("test", n=60, size=64)
    r = seg.evaluate(test, progress=False)
    m = keras.metrics.MeanIoU(11, ignore_class=255)
    m.update_state(test.masks.ravel(), np.zeros(test.masks.size, np.int32))
    baseline = float(m.result())  # all background: about 0.08
    # Measured: mIoU 0.147 (1.9x all-background), objects' IoU 0.52. A short frozen-backbone run
    # finds the objects but hardly tells the ten classes apart: a linear probe on frozen Lite0 P3
    # cells of these 64 px scenes gets 27% on test objects (P4 at 128 px: 39%), which is why the
    # demo recipe (recipes/segment_scenes.py) first fine-tunes the backbone on scene items.
    assert r["mIoU"] > 1.4 * baseline, r
    fg_pred = np.stack(seg.segment(test.images, progress=False)) > 0
    fg_true = test.masks > 0
    assert (fg_pred & fg_true).sum() / (fg_pred | fg_true).sum() > 0.4  # objects found, whatever their class
    h = seg.history  # validation follows training (head BatchNorm statistics keep up in a short run)
    assert h["val_loss"][-1] < 0.6 * h["val_loss"][0] and h["val_miou"][-1] > 2 * h["val_miou"][0], h
    assert (out / "curves.png").is_file() and (out / "overlays.png").is_file()
    assert seg.training_config["kept"] == "head" and len(seg.history["val_miou"]) >= 1


def test_ema_averages_the_decoder_batchnorm_statistics_with_its_weights():
    """With ``ema`` the returned U-Net holds the moving average of its decoder's kernels and of its
    decoder BatchNorm statistics, each step's values averaged with the trainer's warm-up momentum."""
    tr, va = S.scenes("train", n=32, size=64), S.scenes("val", n=8, size=64)
    seen = []

    class Record(keras.callbacks.Callback):  # the raw values after every step (the swap is per epoch)
        def on_train_batch_end(self, batch, logs=None):
            conv, bn = self.model.get_layer("dec_P2_fuse_conv"), self.model.get_layer("dec_P2_fuse_bn")
            seen.append((conv.kernel.numpy().copy(), bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()))

    seg = S.train(tr, va, input_size=64, head_epochs=2, epochs=0, batch_size=8, augment=False, ema=0.9,
                  patience=None, verbose=0, callbacks=[Record()])
    assert len(seen) == 8

    def average(values):
        a = values[0]
        for t, v in enumerate(values[1:], 1):
            m = min(0.9, (1 + t) / (10 + t))
            a = m * a + (1 - m) * v
        return a

    got = seg.keras_model.get_layer("dec_P2_fuse_conv").kernel.numpy(), *(
        v.numpy() for v in (seg.keras_model.get_layer("dec_P2_fuse_bn").moving_mean,
                            seg.keras_model.get_layer("dec_P2_fuse_bn").moving_variance))
    for i, name in enumerate(("kernel", "moving mean", "moving variance")):
        expected = average([s[i] for s in seen])
        np.testing.assert_allclose(got[i], expected, rtol=1e-4, atol=1e-6, err_msg=name)
        assert not np.allclose(got[i], seen[-1][i], rtol=1e-3, atol=1e-5), name  # not the last step's


@pytest.mark.slow
def test_cli_segments_files_and_draws(trained, tmp_path, capsys):
    from zoo.tasks.segmenter.cli import add_commands
    from zoo.cli import main

    seg, _ = trained
    folder = seg.save(tmp_path / "model")
    sc = S.scenes("test", n=2, size=(70, 90))
    for i in range(2):
        Image.fromarray(sc.images[i]).save(tmp_path / f"img{i}.png")
    code = main(["segment", str(tmp_path / "img0.png"), str(tmp_path / "img1.png"), "--model", str(folder),
                 "--draw", str(tmp_path / "drawn")], plugins=[add_commands])
    assert code == 0
    assert "img0.png  90x70  background" in capsys.readouterr().out
    lab = Image.open(tmp_path / "drawn" / "img1_mask.png")
    assert lab.mode == "P" and lab.size == (90, 70)
    assert Image.open(tmp_path / "drawn" / "img1_overlay.png").size == (90, 70)
    assert main(["segment", str(tmp_path / "img1.png"), "--model", str(folder), "--tta", "multiscale",
                 "--draw", str(tmp_path / "tta")], plugins=[add_commands]) == 0
    want = seg.segment([str(tmp_path / "img1.png")], tta=True, progress=False)[0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "tta" / "img1_mask.png")), want)
    assert main(["segment", str(tmp_path / "img0.png"), "--model", str(tmp_path)], plugins=[add_commands]) == 1


@pytest.mark.slow
def test_app_page_segments_a_demo_scene_and_an_upload(trained, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    seg, _ = trained
    seg.save(tmp_path / "apps" / "segment" / "model")
    page = Path(__file__).resolve().parents[1] / "apps" / "pages_" / "segment.py"
    at = AppTest.from_file(str(page), default_timeout=240).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.image) == 3  # image, prediction, truth
    table = at.dataframe[0].value
    assert table["area"].sum() == pytest.approx(1.0) and "IoU with truth" in table.columns
    at.radio(key="segment_source").set_value("Upload").run()
    buf = io.BytesIO()
    Image.fromarray(S.scenes("test", n=1, size=(90, 150)).images[0]).save(buf, format="PNG")
    at.file_uploader(key="segment_upload").upload("scene.png", buf.getvalue(), "image/png")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.image) == 2 and "scene.png" in " ".join(c for img in at.image for c in img.captions)
    at.file_uploader(key="segment_upload").upload("notes.png", b"not pixels" * 50, "image/png")
    at.run()
    assert not at.exception and "not an image" in " ".join(e.value for e in at.error)


@pytest.mark.slow
def test_export_tflite_and_onnx_match_the_keras_segmenter(trained, tmp_path):
    """Issue 12: the segmenter exports with preprocessing inside; both runtimes give the Keras maps.
    (A trained one: an untrained decoder's logits are so large that float noise flips its maps.)"""
    from zoo.runtimes import open_runner

    seg, _ = trained
    sc = S.scenes("test", n=4, size=64)
    want = seg.segmentation_model(sc.images.astype(np.float32), training=False).numpy()
    for fmt in ("tflite", "onnx"):
        path = seg.export(tmp_path / f"seg.{fmt}", format=fmt)
        got = open_runner(path)(images=sc.images)
        assert got["probabilities"].shape == want.shape and np.abs(got["probabilities"] - want).max() < 1e-4
        assert (got["classes"] == want.argmax(-1)).mean() > 0.999
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        assert meta["kind"] == "segmenter" and meta["labels"] == seg.class_names


def test_export_refuses_options_of_other_kinds(small_seg, tmp_path):
    from zoo.export import ExportError

    with pytest.raises(ExportError, match="takes no option class_names"):
        small_seg.export(tmp_path / "x.onnx", format="onnx", class_names=["a", "b"])
