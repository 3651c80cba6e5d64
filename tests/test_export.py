"""zoo.export and zoo.runtimes: every format's outputs against the Keras model, on real photos and
Fashion-MNIST with real EfficientNet-Lite0 weights at 96 px.

Parity: max abs difference, cosine and top-1 agreement. Exported graphs take uint8 pixels, so
they are compared with the Keras model on the same uint8 images at the model's size (no resize).
"""
import argparse
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from zoo import export as zexport
from zoo import runtimes as zrt
from zoo.data import FASHION_MNIST_CLASSES, fashion_mnist

SIZE = 96


def _rgb(img):
    return np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]


def _uint8(images, size=SIZE):
    """Images resized to the model's size and rounded: what a server would feed."""
    return np.stack([tf.image.resize(_rgb(np.asarray(x)), (size, size)).numpy().round().clip(0, 255)
                     for x in images]).astype(np.uint8)


def _cosine(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def assert_parity(got, want, max_abs, min_cos=0.99999):
    assert got.shape == want.shape
    assert np.abs(got - want).max() < max_abs
    assert _cosine(got, want).min() > min_cos


@pytest.fixture(scope="module")
def photos():
    """Seven real photos from scikit-image, uint8 at 96 px (the first is a cat)."""
    return _uint8([skdata.chelsea(), skdata.astronaut(), skdata.coffee(), skdata.rocket(), skdata.camera(),
                   skdata.immunohistochemistry(), skdata.hubble_deep_field()])


@pytest.fixture(scope="module")
def fmnist_clf(lite0_96):
    """A FineTunedClassifier whose head is a logistic regression on 30 real images per class,
    and 200 held-out test images (uint8, 96 px)."""
    from sklearn.linear_model import LogisticRegression

    from zoo.tasks.classifier import FineTunedClassifier

    tr = fashion_mnist("train").subset(per_class=30, seed=0)
    te = fashion_mnist("test").subset(per_class=20, seed=1)
    xtr, xte = _uint8(tr.images), _uint8(te.images)
    e = lite0_96.embed(xtr, progress=False)
    lr = LogisticRegression(max_iter=3000).fit(e, tr.labels)
    clf = FineTunedClassifier(lite0_96, FASHION_MNIST_CLASSES)
    clf.head.get_layer("head_dense").set_weights([lr.coef_.T.astype(np.float32), lr.intercept_.astype(np.float32)])
    return clf, xte, te.labels, e, tr.labels


def test_backbone_tflite_runs_without_zoo(lite0_96, photos, tmp_path):
    m = lite0_96
    out = zexport.export(m, tmp_path / "lite0", format="tflite")
    meta = json.loads((out / "export.json").read_text())
    assert meta["inputs"][0] == {"name": "images", "shape": [None, SIZE, SIZE, 3], "dtype": "uint8",
                                 "range": [0, 255], "channels": "RGB"}
    assert meta["kind"] == "backbone" and meta["fingerprint"] == m.fingerprint() and len(meta["labels"]) == 1000
    assert zexport.read_metadata(out)["sha256"] == meta["sha256"]
    # a serving stack: LiteRT's interpreter alone, raw uint8 pixels in
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(out / "model.tflite"), num_threads=2)
    y = it.get_signature_runner("serving_default")(images=photos)
    assert_parity(y["embedding"], m.embed(photos, progress=False), max_abs=1e-3)
    want = m.predict(photos)
    assert_parity(y["probabilities"], want, max_abs=1e-4)
    assert (y["probabilities"].argmax(1) == want.argmax(1)).all()
    assert 281 <= y["probabilities"][0].argmax() <= 285  # chelsea is a cat
    top = zrt.open_export(out).classify(photos[:1], top_k=1)[0][0]
    assert 281 <= top[0] <= 285 and "cat" in top[1]


def test_classifier_onnx_from_the_cli(fmnist_clf, tmp_path):
    import onnxruntime as ort

    clf, x, y, _, _ = fmnist_clf
    folder = clf.save(tmp_path / "clf")
    p = argparse.ArgumentParser()
    zexport.add_commands(p.add_subparsers())
    a = p.parse_args(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "clf.onnx")])
    assert a.func(a) == 0
    meta = zexport.read_metadata(tmp_path / "clf.onnx")
    assert meta["labels"] == FASHION_MNIST_CLASSES and meta["kind"] == "classifier"
    s = ort.InferenceSession(str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["images"] and s.get_inputs()[0].type == "tensor(uint8)"
    assert json.loads(s.get_modelmeta().custom_metadata_map["zoo_export"])["labels"] == FASHION_MNIST_CLASSES
    probs = s.run(["probabilities"], {"images": x})[0]
    want = clf.predict(x)
    assert_parity(probs, want, max_abs=1e-4)
    assert (probs.argmax(1) == want.argmax(1)).all()
    assert (probs.argmax(1) == y).mean() > 0.6  # it is a real classifier (chance 0.1)


def test_fewshot_head_exports_support_and_unknown_threshold(lite0_96, fmnist_sample, tmp_path):
    from zoo.tasks.fewshot import KNNClassifier

    sx, sy = fmnist_sample("train", 6, classes=[0, 1, 5, 7])
    qx, _ = fmnist_sample("test", 4, seed=2)  # all ten classes: six of them are unknown
    sx, qx = _uint8(sx), _uint8(qx)
    knn = KNNClassifier(model=lite0_96, k=3).fit(sx, [FASHION_MNIST_CLASSES[c] for c in sy])
    knn.calibrate_unknown(reject_rate=0.1)
    out = zexport.export(knn, tmp_path / "fewshot", format="tflite")
    meta = zexport.read_metadata(out)
    assert meta["labels"] == knn.classes_.tolist() and meta["unknown_threshold"] == knn.unknown_threshold
    got = zrt.open_export(out).run(qx)
    assert_parity(got["probabilities"], knn.predict_proba(qx), max_abs=1e-4)
    np.testing.assert_allclose(got["confidence"], knn.confidence(qx), atol=1e-4)
    pred = knn.predict(qx)
    np.testing.assert_array_equal(got["unknown"], pred == "unknown")
    assert 0 < got["unknown"].mean() < 1
    known = ~got["unknown"]
    np.testing.assert_array_equal(np.array(meta["labels"])[got["probabilities"].argmax(1)][known], pred[known])


def test_verifier_saved_model_with_threshold(fmnist_clf, lite0_96, photos, tmp_path):
    from zoo.tasks.verifier import Verifier

    _, _, _, e, labels = fmnist_clf
    v = Verifier(model=lite0_96)
    v.finetune(e, labels, steps=20)  # a metric head on the embeddings
    rng = np.random.default_rng(0)
    i, j = rng.permutation(len(e)), rng.permutation(len(e))
    v.calibrate((e[i], e[j]), labels[i] == labels[j], far="eer")
    out = zexport.export(v, tmp_path / "verifier", format="saved_model")
    meta = zexport.read_metadata(out)
    assert meta["threshold"] == v.threshold and meta["file"] == "."
    served = tf.saved_model.load(str(out)).signatures["serving_default"]
    got = served(images=tf.constant(photos))["embedding"].numpy()
    assert_parity(got, v.embed(photos), max_abs=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_runtime_from_jpeg_files_matches_tensorflow(lite0_96, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    files = []
    for i, img in enumerate([skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.astronaut()]):
        files.append(tmp_path / f"{i}.jpg")
        Image.fromarray(img).save(files[-1], quality=90)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    m = lite0_96
    r = zrt.compile_model(m, "onnxruntime", batch_size=3)
    got = r.embed(files + [tmp_path / "bad.jpg"], return_sources=True, progress=False)
    want = m.embed(files, return_sources=True, progress=False)
    assert got.sources == want.sources == [str(f) for f in files] and len(got.skipped) == 1
    assert_parity(got.outputs, want.outputs, max_abs=1e-3, min_cos=0.999999)
    assert r.fingerprint() == m.fingerprint() and r.feature_dim == m.feature_dim and r.runtime == "onnxruntime"
    cached = list((tmp_path / "home" / "runtimes").glob("*.onnx"))
    assert len(cached) == 1
    again = zrt.compile_model(m, "onnxruntime")  # from the cache: no conversion
    assert list((tmp_path / "home" / "runtimes").glob("*.onnx")) == cached
    assert_parity(again.embed(files, progress=False), got.outputs, max_abs=1e-6)
    assert zrt.compile_model(m, "tensorflow") is m


def test_errors_name_the_problem(lite0_96, tmp_path):
    from zoo.tasks.fewshot import KNNClassifier

    m = lite0_96
    with pytest.raises(zexport.ExportError, match="format must be one of"):
        zexport.export(m, tmp_path / "x", format="coreml")
    with pytest.raises(zexport.ExportError, match="quantize must be"):
        zexport.export(m, tmp_path / "x", format="tflite", quantize="int4")
    with pytest.raises(zexport.ExportError, match="float32 only"):
        zexport.export(m, tmp_path / "x", format="saved_model", quantize="dynamic")
    with pytest.raises(zexport.ExportError, match="calibration images"):
        zexport.export(m, tmp_path / "x", format="tflite", quantize="int8")
    with pytest.raises(zexport.ExportError, match="folder or a .onnx file"):
        zexport.export(m, tmp_path / "x.tflite", format="onnx")
    with pytest.raises(zexport.ExportError, match="not fitted"):
        zexport.export(KNNClassifier(model=m), tmp_path / "x", format="tflite")
    with pytest.raises(zexport.ExportError, match="cannot export a dict"):
        zexport.export({}, tmp_path / "x", format="tflite")
    with pytest.raises(zexport.ExportError, match="no export metadata"):
        zrt.open_export(tmp_path)
    with pytest.raises(zrt.RuntimeModelError, match="runtime must be one of"):
        zrt.compile_model(m, "tensorrt")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.slow
def test_int8_agrees_with_float_on_fashion_mnist(fmnist_clf, tmp_path):
    """Full-integer quantisation, calibrated on 200 training images, keeps top-1 agreement with
    the float Keras model >= 90% on 200 test images (measured 95-96% TFLite, 93-95% ONNX at
    96 and 224 px; bench/runtimes.py --quantized) and accuracy within 5 points."""
    clf, x, y, _, _ = fmnist_clf
    calib = _uint8(fashion_mnist("train").subset(per_class=20, seed=5).images)
    want = clf.predict(x).argmax(1)
    for fmt in ("tflite", "onnx"):
        out = zexport.export(clf, tmp_path / f"clf.{fmt}", format=fmt, quantize="int8", calibration=calib)
        assert zexport.read_metadata(out)["calibration_images"] == 200
        got = zrt.open_export(out).predict(x).argmax(1)
        assert (got == want).mean() >= 0.90, fmt
        assert abs((got == y).mean() - (want == y).mean()) <= 0.05, fmt
    assert (tmp_path / "clf.tflite").stat().st_size < 0.4 * clf.classifier_model.count_params() * 4


@pytest.mark.slow
def test_verifier_pair_graph(lite0_96, photos, tmp_path):
    from zoo.tasks.verifier import Verifier

    v = Verifier(model=lite0_96, threshold=0.7)
    out = zexport.export(v, tmp_path / "pair.tflite", format="tflite", pair=True)
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_path=str(out)).get_signature_runner()
    a, b = photos[[0, 0, 1, 2]], photos[[0, 3, 1, 5]]
    got = run(images_a=a, images_b=b)
    want = v.score(a, b)
    np.testing.assert_allclose(got["score"], want, atol=1e-4)
    np.testing.assert_array_equal(got["same"], want >= 0.7)
    assert got["same"][0] and got["same"][2]  # an image is the same as itself


def test_bulk_jobs_default_to_tflite_on_a_cpu(lite0_96, fmnist_sample, monkeypatch):
    """Few-shot (and index building, verification pairs) on 200+ images run through TFLite on a
    machine without a GPU: it wins 1.7-3.1x (bench/runtimes.py), so issue 12 makes it the default.
    The answers are TensorFlow's; small jobs and ZOO_RUNTIME=tensorflow stay on TensorFlow."""
    from zoo.tasks.fewshot import KNNClassifier

    x, y = fmnist_sample("train", 20)  # 200 images
    q, _ = fmnist_sample("test", 6, seed=3)
    monkeypatch.delenv("ZOO_RUNTIME", raising=False)
    fast = zrt.bulk_model(lite0_96, "auto", len(x))
    if zrt.has_gpu():
        assert fast is lite0_96  # GPUs keep TensorFlow
        return
    assert isinstance(fast, zrt.RuntimeModel) and fast.runtime == "tflite"
    assert zrt.bulk_model(lite0_96, "auto", len(x)) is fast  # compiled once per process
    assert zrt.bulk_model(lite0_96, "auto", 20) is lite0_96  # too small to pay for the conversion
    assert _cosine(fast.embed(q, progress=False), lite0_96.embed(q, progress=False)).min() > 0.9999
    knn_fast = KNNClassifier(lite0_96).fit(x, y)
    monkeypatch.setenv("ZOO_RUNTIME", "tensorflow")
    assert zrt.bulk_model(lite0_96, "auto", 10_000) is lite0_96
    knn_tf = KNNClassifier(lite0_96).fit(x, y)
    np.testing.assert_allclose(knn_fast.transform(q), knn_tf.transform(q), atol=1e-3)
    assert (knn_fast.predict(q) == knn_tf.predict(q)).mean() == 1.0
    with pytest.raises(zrt.RuntimeModelError, match="runtime must be one of"):
        zrt.bulk_runtime("tpu")
    # an index built through TFLite is searched by the TensorFlow model it is bound to
    monkeypatch.delenv("ZOO_RUNTIME")
    import zoo

    idx = zoo.index.build(x, model=lite0_96, progress=False)
    r = idx.search(x[:8], k=1)
    assert list(r.ids[:, 0]) == list(idx.build_report.ids[:8]) and r.scores[:, 0].min() > 0.9999
