"""recipes.verification on Fashion-MNIST pairs and scikit-image photos."""
import sys

import numpy as np
import pytest
from PIL import Image

from recipes import verification as ver
from recipes.common import MissingDependencyError, NotCalibratedError, RecipeError

@pytest.fixture(scope="module")
def model(lite0_96):
    return lite0_96


@pytest.fixture(scope="module")
def train(model, fmnist_sample):
    x, y = fmnist_sample("train", 300, grouped=True)
    return x, y, model.embed(x, progress=False)


@pytest.fixture(scope="module")
def test(model, fmnist_sample):
    x, y = fmnist_sample("test", 150, seed=1, grouped=True)
    return x, y, model.embed(x, progress=False)


def photo(name, size=None):
    from skimage import data

    im = Image.fromarray(getattr(data, name)()).convert("RGB")
    return np.asarray(im.resize(size) if size else im)


def test_score_and_verify_photos(model):
    v = ver.Verifier(model=model)
    cat, cat_small, rocket = photo("chelsea"), photo("chelsea", (150, 100)), photo("rocket")
    assert v.score(cat, cat) == pytest.approx(1.0, abs=1e-5)
    assert v.score(cat, cat_small) > 0.8 > v.score(cat, rocket)
    s = v.score([cat, cat], [cat_small, rocket])  # aligned collections give arrays
    assert s.shape == (2,) and s[0] > s[1]
    with pytest.raises(NotCalibratedError, match="calibrate"):
        v.verify(cat, cat_small)
    v.threshold = 0.7
    same, score = v.verify(cat, cat_small)
    assert same is True and isinstance(score, float)
    assert v.verify(cat, rocket)[0] is False


def test_calibration_hits_target_far_on_held_out_pairs(test):
    _, y, e = test
    half = np.arange(len(y)) % 2 == 0  # calibrate on one half of the images, check on the other
    cal, hold = np.flatnonzero(half), np.flatnonzero(~half)
    v = ver.Verifier(model=None)
    i, j, same = ver.make_pairs(y[cal], 6000, seed=1)
    hi, hj, hsame = ver.make_pairs(y[hold], 6000, seed=2)
    for far in (0.05, 0.01):
        t = v.calibrate((e[cal][i], e[cal][j]), same, far=far)
        assert v.calibration["far"] <= far
        s = v.score_pairs((e[hold][hi], e[hold][hj]))
        measured = np.mean(s[~hsame] >= t)
        assert abs(measured - far) <= max(0.4 * far, 0.006), (far, measured)
    t = v.calibrate((e[cal][i], e[cal][j]), same, far="eer")
    s = v.score_pairs((e[hold][hi], e[hold][hj]))
    far_h, frr_h = np.mean(s[~hsame] >= t), np.mean(s[hsame] < t)
    assert abs(far_h - frr_h) < 0.04 and v.calibration["method"] == "eer"


def test_evaluate_reports_and_plots(test, tmp_path):
    _, y, e = test
    v = ver.Verifier(model=None)
    i, j, same = ver.make_pairs(y, 3000, seed=3)
    v.calibrate((e[i], e[j]), same, far=1e-2)
    r = ver.evaluate(v, (e[i], e[j]), same, plot=tmp_path / "roc.png")
    assert 0.7 < r["auc"] <= 1 and 0 < r["eer"] < 0.35 and r["n_impostor"] + r["n_genuine"] == 3000
    assert 0 < r["tar@far=0.01"] <= 1 and r["tar@far=0.001"] is not None  # 1,500 impostors resolve 1e-3
    assert r["far"] <= 0.0101 and r["tar"] == pytest.approx(r["tar@far=0.01"], abs=0.05)
    with Image.open(r["plot"]) as im:
        assert im.format == "PNG" and im.size[0] > 300
    few = ver.evaluate(v, (e[i[:200]], e[j[:200]]), same[:200])
    assert few["tar@far=0.001"] is None  # ~100 impostor pairs cannot resolve a 1e-3 FAR
    pairs = [(e[a], e[b]) for a, b in zip(i[:50], j[:50])]  # a list of (a, b) works too
    np.testing.assert_allclose(v.score_pairs(pairs), v.score_pairs((e[i[:50]], e[j[:50]])), atol=1e-6)


def test_finetune_improves_verification_on_held_out_classes(train, test):
    _, y, e = train
    _, ty, te = test
    seen = y < 6
    held = ty >= 6  # Shirt, Sneaker, Bag, Ankle boot: never seen by the head
    i, j, same = ver.make_pairs(ty[held], 4000, seed=4)
    a, b = te[held][i], te[held][j]
    v = ver.Verifier(model=None)
    frozen = ver.evaluate(v, (a, b), same)
    hist = v.finetune(e[seen], y[seen], loss="supcon", steps=300)
    tuned = ver.evaluate(v, (a, b), same)
    assert np.mean(hist["loss"][-30:]) < np.mean(hist["loss"][:30])
    assert tuned["auc"] > frozen["auc"] + 0.01 and tuned["eer"] < frozen["eer"], (frozen, tuned)
    c = ver.Verifier(model=None)
    hist = c.finetune(e[seen], y[seen], loss="contrastive", steps=100)  # the seeds' pair loss trains too
    assert np.mean(hist["loss"][-20:]) < np.mean(hist["loss"][:20])


def test_save_and_load(model, train, tmp_path):
    x, y, e = train
    v = ver.Verifier(model=model)
    v.finetune(e[:600], y[:600], steps=20)
    i, j, same = ver.make_pairs(y[:600], 500, seed=5)
    v.calibrate((e[i], e[j]), same, far=0.05)
    v.save(tmp_path / "v")
    again = ver.Verifier.load(tmp_path / "v", model=model)
    assert again.threshold == v.threshold and again.calibration == v.calibration
    np.testing.assert_allclose(again.score(x[:5], x[5:10]), v.score(x[:5], x[5:10]), atol=1e-5)
    with pytest.raises(RecipeError, match="not a"):
        ver.Verifier.load(tmp_path)


def test_input_errors(test):
    _, y, e = test
    v = ver.Verifier(model=None)
    with pytest.raises(RecipeError, match="genuine"):
        v.calibrate((e[:5], e[5:10]), np.zeros(5, bool))
    with pytest.raises(RecipeError, match="far"):
        v.calibrate((e[:5], e[5:10]), np.array([1, 0, 1, 0, 1], bool), far=2)
    with pytest.raises(RecipeError, match="loss"):
        v.finetune(e, y, loss="triplet-ish")
    with pytest.raises(RecipeError, match="model="):
        v.score(photo("chelsea"), photo("rocket"))


def test_face_front_end_without_mtcnn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match="pip install mtcnn"):
        ver.Verifier(model=None, face=True)


def test_face_front_end_crops_faces(model):
    pytest.importorskip("mtcnn")
    v = ver.Verifier(model=model, face=True)
    face = v.face(photo("astronaut"))
    assert 60 < face.shape[0] == face.shape[1] < 300  # a square crop around the face, not the photo
    copy = np.asarray(Image.fromarray(photo("astronaut")).resize((384, 384)).rotate(8))
    plain = ver.Verifier(model=model)
    assert v.score(photo("astronaut"), copy) > 0.8
    with pytest.raises(ver.FaceNotFoundError, match="no face"):
        v.score(photo("coffee"), copy)
    assert plain.score(photo("coffee"), copy) > 0  # without the front end anything is compared
