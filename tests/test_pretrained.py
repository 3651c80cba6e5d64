"""The offline default gives real ImageNet predictions, for every input form."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo

CATS = {281, 282, 283, 284, 285}


def test_chelsea_is_a_cat(lite0, photos):
    top = lite0.classify(photos["chelsea"], top_k=5)[0]
    assert top[0][0] in CATS, top
    assert top[0][2] > 0.5
    assert all(top[i][2] >= top[i + 1][2] for i in range(4))


def test_coffee_is_espresso_and_labels_are_names(lite0, photos):
    (idx, label, p), *_ = lite0.classify(photos["coffee"], top_k=3)[0]
    assert (idx, label) == (967, "espresso") and p > 0.5


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_other_lite_weights_also_see_a_cat(name, photos):
    m = zoo.load(name)
    assert m.classify(photos["chelsea"], top_k=1)[0][0][0] in CATS


def test_every_input_form_gives_the_same_embedding(lite0, photos, tmp_path):
    cat = photos["chelsea"]
    Image.fromarray(cat).save(tmp_path / "cat.png")
    ref = lite0.embed(cat[None], progress=False)
    forms = {
        "one image": cat,
        "list of arrays": [cat],
        "float in [0,1]": (cat / 255.0).astype(np.float32)[None],
        "PIL": Image.fromarray(cat),
        "path": [tmp_path / "cat.png"],
        "directory": tmp_path,
        "dataset": tf.data.Dataset.from_tensor_slices(cat[None]),
    }
    for what, images in forms.items():
        e = lite0.embed(images, progress=False)
        assert e.shape == (1, 1280), what
        np.testing.assert_allclose(e, ref, rtol=1e-3, atol=1e-3, err_msg=what)


def test_odd_images_are_converted(lite0, photos, tmp_path):
    cat = photos["chelsea"]
    gray = np.asarray(Image.fromarray(cat).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(cat).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((gray.astype(np.uint16) * 257)).save(tmp_path / "gray16.png")
    Image.fromarray(cat).save(tmp_path / "cat.jpg", quality=92)
    Image.fromarray(cat).convert("P").save(tmp_path / "palette.gif")
    Image.fromarray(cat).save(tmp_path / "cat.tiff")
    big = np.asarray(Image.fromarray(cat).resize((2400, 1800)))
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    files = sorted(tmp_path.iterdir())
    results, sources, skipped = lite0.classify(files, top_k=5, return_sources=True)
    assert len(results) == len(files) and not skipped
    for f, top in zip(sources, results):
        assert {c for c, _, _ in top} & CATS, (f, top)
    # 16-bit PNG reads as the same picture as its 8-bit twin
    e = lite0.embed([tmp_path / "gray.png", tmp_path / "gray16.png"], progress=False)
    assert np.corrcoef(e)[0, 1] > 0.999


def test_corrupt_files_are_skipped_and_counted(lite0, photos, tmp_path):
    Image.fromarray(photos["chelsea"]).save(tmp_path / "a_good.jpg")
    (tmp_path / "b_text.jpg").write_text("this is not an image")
    good = (tmp_path / "a_good.jpg").read_bytes()
    (tmp_path / "c_truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "d_empty.png").write_bytes(b"")
    e, sources, skipped = lite0.embed(tmp_path, progress=False, return_sources=True)
    kept = [str(p).rsplit("/", 1)[-1] for p in sources]
    skipped = [str(p).rsplit("/", 1)[-1] for p, _ in skipped]
    assert "a_good.jpg" in kept and {"b_text.jpg", "d_empty.png"} <= set(skipped)
    assert e.shape[0] == len(kept) and len(kept) + len(skipped) == 4


def test_all_unreadable_is_a_clear_error(lite0, tmp_path):
    (tmp_path / "x.jpg").write_text("nope")
    with pytest.raises(zoo.ImageError, match="x.jpg: not a readable image"):  # one file: named
        lite0.embed(tmp_path, progress=False)
    (tmp_path / "y.png").write_bytes(b"")
    with pytest.raises(zoo.ImageError, match=r"none of the 2 images could be read \(first: .*x.jpg"):
        lite0.embed(tmp_path, progress=False)


def test_decompression_bomb_is_refused(tmp_path):
    from zoo import images

    Image.new("L", (12000, 9000)).save(tmp_path / "bomb.png")  # 108 MP of zeros: a tiny file
    with pytest.raises(zoo.ImageError, match="pixel limit"):
        images.read_image(tmp_path / "bomb.png")
    with pytest.raises(zoo.ImageError, match="pixel limit"):
        images.from_files([tmp_path / "bomb.png"], 64)


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), np.zeros((2, 8, 8, 5)), np.zeros((0, 8, 8, 3)),
                                 np.full((1, 8, 8, 3), np.nan), "no/such/dir", 42])
def test_wrong_shapes_and_types_are_typed_errors(lite0, bad):
    with pytest.raises((zoo.InputShapeError, zoo.ImageError)):
        lite0.embed(bad, progress=False)


def test_pyramid_and_normalised_embeddings(lite0, photos):
    f = lite0.features(photos["astronaut"])
    assert {k: v.shape[1:3] for k, v in f.items()} == {
        "P2": (56, 56), "P3": (28, 28), "P4": (14, 14), "P5": (7, 7)}
    e = lite0.embed([photos["chelsea"], photos["coffee"]], normalize=True, progress=False)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)


def test_gradcam_lights_up_the_object(lite0, photos):
    """Grad-CAM of the predicted class covers the cat's face / the cup, not the background border."""
    from zoo.explain import GradCAM, overlay

    cam = GradCAM(lite0)
    for name, cls in (("chelsea", 285), ("coffee", 967)):
        heat = cam(photos[name], cls)
        assert heat.shape == (7, 7) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        inner, border = heat[1:-1, 1:-1].mean(), np.r_[heat[0], heat[-1], heat[:, 0], heat[:, -1]].mean()
        assert inner > 2 * border, (name, inner, border)
    picture = overlay(photos["chelsea"], heat)
    assert picture.shape == photos["chelsea"].shape and picture.dtype == np.uint8
