"""Images/s of embeddings through TensorFlow, TFLite (XNNPACK) and ONNX Runtime, same model.

Every row is ``m.embed``-style work (zoo's pixel path feeding the runtime), timed in the same
run and printed as a ratio to the TensorFlow call (``m.embed``) on the same input: from JPEG
files (640x480, decoded and resized) and from an in-memory uint8 array at the model's size.
Repetitions are interleaved across runtimes (a shared CPU's load hits all alike) and the
median is reported. Each row's cosine to TensorFlow's float32 embeddings is printed; quantised
rows add the top-1 agreement of a Fashion-MNIST classifier (a logistic-regression head on the
embeddings) with the float model, on test images it was not fitted on.

    python bench/runtimes.py [--model efficientnet_lite0] [--images 256] [--reps 5] [--batch 32]
                             [--quantized] [--fmnist 1000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import runtimes as zrt  # noqa: E402
from bench._common import cpu_line  # noqa: E402


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def fmnist_classifier(m, n):
    """A classifier on ``m`` (logistic regression on n train embeddings), test and calibration images."""
    from sklearn.linear_model import LogisticRegression

    from zoo.data import FASHION_MNIST_CLASSES, fashion_mnist
    from zoo.tasks.classifier import FineTunedClassifier

    tr = fashion_mnist("train").subset(total=n, seed=0)
    te = fashion_mnist("test").subset(total=n, seed=1)
    calib = fashion_mnist("train").subset(total=256, seed=7).images
    lr = LogisticRegression(max_iter=3000).fit(m.embed(tr.images, progress=False), tr.labels)
    clf = FineTunedClassifier(m, FASHION_MNIST_CLASSES)
    clf.head.get_layer("head_dense").set_weights([lr.coef_.T.astype(np.float32), lr.intercept_.astype(np.float32)])
    return clf, te, calib


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--input-size", type=int)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--quantized", action="store_true",
                   help="add int8 and dynamic-range rows (Fashion-MNIST agreement)")
    p.add_argument("--fmnist", type=int, default=1000, help="train and test images for the agreement check")
    a = p.parse_args()
    from bench.embed import make_jpegs

    print(cpu_line(), flush=True)
    m = zoo.load(a.model, input_size=a.input_size)
    s = m.input_size
    t = time.perf_counter()
    runs = {"tensorflow": m, "tflite fp32": zrt.compile_model(m, "tflite", batch_size=a.batch),
            "onnxruntime fp32": zrt.compile_model(m, "onnxruntime", batch_size=a.batch)}
    print(f"compiled (or read from the cache) in {time.perf_counter() - t:.0f}s", flush=True)
    runs["tflite fp32 (tf.lite.Interpreter)"] = zrt.RuntimeModel(
        zrt.TFLiteRunner(runs["tflite fp32"].runner.path, use_litert=False), runs["tflite fp32"].metadata, m, a.batch)
    agreement = {}
    if a.quantized:
        clf, te, calib = fmnist_classifier(m, a.fmnist)
        want = clf.predict(te.images, batch_size=a.batch)
        ref = clf.embed(te.images[:256], progress=False)
        print(f"Fashion-MNIST classifier (float TensorFlow): accuracy {(want.argmax(1) == te.labels).mean():.4f} "
              f"on {len(te.labels)} test images", flush=True)
        for rt in ("tflite", "onnxruntime"):
            for qz in ("dynamic", "int8"):
                name = f"{rt} {qz}"
                t = time.perf_counter()
                q = zrt.compile_model(clf, rt, quantize=qz, calibration=calib, batch_size=a.batch)
                got = q.predict(te.images)
                agreement[name] = ((got.argmax(1) == want.argmax(1)).mean(), (got.argmax(1) == te.labels).mean(),
                                   cosine(q.embed(te.images[:256], progress=False), ref).mean())
                print(f"  {name:18} top-1 agreement {agreement[name][0]:.4f}, accuracy {agreement[name][1]:.4f}, "
                      f"embedding cosine {agreement[name][2]:.4f}  (compiled in {time.perf_counter() - t:.0f}s)",
                      flush=True)
                runs[name] = q
    with tempfile.TemporaryDirectory() as d:
        files = make_jpegs(Path(d), a.images)
        arr = zoo.images.batches(files, s, a.batch).dataset
        arr = np.concatenate([b[1].numpy() if isinstance(b, tuple) else b.numpy() for b in arr]).round().astype(np.uint8)
        for source, inp in (("in-memory uint8 array", arr), ("JPEG files", files)):
            ref = m.embed(inp, batch_size=a.batch, progress=False)
            cos = {k: cosine(r.embed(inp, batch_size=a.batch, progress=False), ref).min() for k, r in runs.items()}
            rates = {k: [] for k in runs}
            for _ in range(a.reps):
                for k, r in runs.items():
                    t = time.perf_counter()
                    r.embed(inp, batch_size=a.batch, progress=False)
                    rates[k].append(len(files) / (time.perf_counter() - t))
            base = statistics.median(rates["tensorflow"])
            print(f"\n{m.name} at {s}px from {source}: {len(files)} images, batch {a.batch}, {a.reps} interleaved reps "
                  f"(median [min-max] img/s; ratio to m.embed through TensorFlow; min cosine to it)")
            for k, v in rates.items():
                med = statistics.median(v)
                print(f"  {k:34} {med:7.1f} [{min(v):.1f}-{max(v):.1f}]  {med / base:5.2f}x  cos {cos[k]:.7f}")
    print("\n" + cpu_line())


if __name__ == "__main__":
    main()
