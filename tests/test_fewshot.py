"""recipes.fewshot on real Fashion-MNIST images and scikit-image photos."""

import numpy as np
import pytest
from PIL import Image

import zoo
from recipes import fewshot
from recipes.common import NotCalibratedError, NotFittedError, RecipeError


@pytest.fixture(scope="module")
def model(lite0_96):
    return lite0_96


@pytest.fixture(scope="module")
def support(model, fmnist_sample):
    x, y = fmnist_sample("train", 10)
    return x, y, model.embed(x, progress=False)


@pytest.fixture(scope="module")
def held_out(model, fmnist_sample):
    x, y = fmnist_sample("test", 10)
    return x, y, model.embed(x, progress=False)


def test_fit_predict_on_fashion_mnist(model, support, held_out):
    sx, sy, _ = support
    qx, qy, qe = held_out
    knn = fewshot.KNNClassifier(model=model, k=5).fit(sx, sy)
    pred = knn.predict(qx)
    assert (pred == qy).mean() > 0.6  # 10 classes from 10 examples each; chance 0.1
    p = knn.predict_proba(qe)  # embeddings work too, and give the same answer
    assert p.shape == (100, 10) and np.allclose(p.sum(1), 1)
    np.testing.assert_array_equal(knn.classes_[p.argmax(1)], pred)


def test_prototype_mode_and_k_capped_by_shots(support, held_out):
    _, sy, se = support
    _, qy, qe = held_out
    one = np.array([np.flatnonzero(sy == c)[0] for c in range(10)])
    knn = fewshot.KNNClassifier(model=None, k=5).fit(se[one], sy[one])
    assert knn.k_ == 1
    proto = fewshot.KNNClassifier(model=None, mode="prototype").fit(se[one], sy[one])
    np.testing.assert_array_equal(knn.predict(qe), proto.predict(qe))  # 1-shot: prototype == 1-NN
    proto = fewshot.KNNClassifier(model=None, mode="prototype").fit(se, sy)
    p = proto.predict_proba(qe)
    assert (proto.predict(qe) == qy).mean() > 0.6 and np.allclose(p.sum(1), 1)


def test_episodes_beat_raw_pixels(model, fmnist_sample):
    x, y = fmnist_sample("test", 25, seed=1)
    r = fewshot.evaluate_episodes((x, y), n_way=5, k_shot=5, n_query=15, episodes=60, model=model)
    assert 0 < r["baseline_accuracy"] < r["accuracy"] <= 1 and r["ci95"] > 0
    assert r["gain"] - r["gain_ci95"] > 0  # paired over the same episodes
    assert len(r["per_episode"]) == len(r["baseline_per_episode"]) == 60
    again = fewshot.evaluate_episodes((x, y), episodes=60, model=model, baseline=False)
    assert again["accuracy"] == r["accuracy"] and "baseline_accuracy" not in again  # same seed, same episodes


def test_unknown_below_calibrated_threshold(model, support, held_out):
    from skimage import data

    _, sy, se = support
    _, qy, qe = held_out
    known = sy < 5
    knn = fewshot.KNNClassifier(model=model, k=3).fit(se[known], sy[known])
    assert "unknown" not in set(knn.predict(qe).tolist())  # no threshold yet
    t = knn.calibrate_unknown(reject_rate=0.1)  # leave-one-out on the support set
    pred = knn.predict(qe)
    unknown_known = np.mean(pred[qy < 5] == "unknown")
    unknown_new = np.mean(pred[qy >= 5] == "unknown")
    assert unknown_known <= 0.35 and unknown_new > unknown_known + 0.2, (t, unknown_known, unknown_new)
    photos = np.stack([np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB").resize((96, 96)))
                       for n in ("chelsea", "coffee", "astronaut", "rocket")])
    assert (knn.predict(photos) == "unknown").all()
    t2 = knn.calibrate_unknown(qe[qy < 5], reject_rate=0.2)  # on held-out known images
    assert np.mean(knn.confidence(qe[qy < 5]) < t2) == pytest.approx(0.2, abs=0.03)


def test_folder_support_save_and_load(model, tmp_path, fmnist_sample):
    x, y = fmnist_sample("train", 4, seed=5, classes=(0, 7, 8))
    names = {0: "tshirt", 7: "sneaker", 8: "bag"}
    for i, (img, c) in enumerate(zip(x, y)):
        (tmp_path / "support" / names[c]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "support" / names[c] / f"{i}.png")
    (tmp_path / "support" / "bag" / "broken.png").write_bytes(b"junk")  # skipped, labels stay aligned
    knn = fewshot.KNNClassifier(model=model, k=3, mode="prototype").fit(tmp_path / "support")
    assert knn.classes_.tolist() == ["bag", "sneaker", "tshirt"] and len(knn._y) == 12
    qx, qy = fmnist_sample("test", 5, classes=(0, 7, 8))
    pred = knn.predict(qx)
    assert (pred == np.array([names[c] for c in qy])).mean() >= 0.8
    knn.calibrate_unknown(reject_rate=0.1)
    knn.save(tmp_path / "clf")
    again = fewshot.KNNClassifier.load(tmp_path / "clf", model=model)
    np.testing.assert_array_equal(again.predict(qx), knn.predict(qx))
    np.testing.assert_allclose(again.predict_proba(qx), knn.predict_proba(qx), atol=1e-6)
    assert again.unknown_threshold == knn.unknown_threshold
    other = zoo.load("efficientnet_lite0", input_size=64)
    with pytest.raises(RecipeError, match="not the model"):
        fewshot.KNNClassifier.load(tmp_path / "clf", model=other)


def test_errors_say_what_to_do(support):
    sx, sy, se = support
    with pytest.raises(NotFittedError, match="fit"):
        fewshot.KNNClassifier(model=None).predict(se)
    with pytest.raises(RecipeError, match="model="):
        fewshot.KNNClassifier(model=None).fit(sx, sy)
    one = np.array([np.flatnonzero(sy == c)[0] for c in range(3)])
    with pytest.raises(NotCalibratedError, match="held-out"):
        fewshot.KNNClassifier(model=None).fit(se[one], sy[one]).calibrate_unknown()
    with pytest.raises(RecipeError, match="mode"):
        fewshot.KNNClassifier(model=None, mode="svm")
    with pytest.raises(RecipeError, match="classes"):
        fewshot.evaluate_episodes((se, sy), n_way=11, embeddings=se, baseline=False)
