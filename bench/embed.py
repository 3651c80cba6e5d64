"""Images/s of ``m.embed`` from JPEG files against plain Keras on in-memory tensors.

Baselines, measured in the same run on the same Keras model: ``model.predict`` and a
plain ``tf.function`` call on preprocessed in-memory batches (model only: no decoding,
no resizing). Also bfloat16 (AMX) against float32: speed and embedding agreement.

    python bench/embed.py [--model efficientnet_lite0] [--images 512] [--reps 3]
TFLite and ONNX Runtime against this TensorFlow call, in the same run: ``bench/runtimes.py``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

import zoo


def make_jpegs(folder: Path, n: int) -> list[Path]:
    """n 640x480 JPEGs: crops, flips and shifts of scikit-image's photos."""
    photos = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket(),
              np.stack([skdata.camera()] * 3, -1)]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = Image.fromarray(photos[i % len(photos)]).resize((800, 600))
        x, y = rng.integers(0, 160), rng.integers(0, 120)
        img = img.crop((x, y, x + 640, y + 480))
        if i % 2:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        p = folder / f"{i:05d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def timed(fn, n_images, reps):
    fn()  # warm-up (tracing)
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        rates.append(n_images / (time.perf_counter() - t))
    return statistics.median(rates), min(rates), max(rates)


def bench_model(name, n, reps, folder, batch):
    from zoo.weights.resolve import weights_available

    weights = "imagenet" if weights_available(zoo.get_entry(name)) else None
    if weights is None:
        print(f"\n({name}: no weights on this machine; timing a random-init copy)")
    m = zoo.load(name, weights=weights)
    s = m.input_size
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (n, s, s, 3)).astype(np.float32))
    model = m.embedding_model
    fn = tf.function(lambda t: model(t, training=False))
    batches = [x[i:i + batch] for i in range(0, n, batch)]
    rows = {
        "m.embed(JPEG folder)": timed(lambda: m.embed(folder, batch_size=batch, progress=False), n, reps),
        "tf.function (in-memory)": timed(lambda: [fn(b).numpy() for b in batches], n, reps),
        "model.predict (in-memory)": timed(lambda: model.predict(x, batch_size=batch, verbose=0), n, reps),
    }
    base = rows["tf.function (in-memory)"][0]
    print(f"\n{name} at {s}px, {n} images, batch {batch}, {reps} reps (median [min-max] img/s, ratio to tf.function)")
    for k, (med, lo, hi) in rows.items():
        print(f"  {k:28} {med:7.1f} [{lo:.1f}-{hi:.1f}]  {med / base:5.2f}x")
    mb = zoo.load(name, weights=None, precision="bfloat16")
    mb.embedding_model.set_weights(m.embedding_model.get_weights())
    fnb = tf.function(lambda t: mb.embedding_model(t, training=False))
    rate_bf = timed(lambda: [fnb(b).numpy() for b in batches], n, reps)
    e32 = np.concatenate([fn(b).numpy() for b in batches[:2]]).astype(np.float32)
    e16 = np.concatenate([fnb(b).numpy() for b in batches[:2]]).astype(np.float32)
    cos = np.sum(e32 * e16, 1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e16, axis=1))
    print(f"  {'bfloat16 tf.function':28} {rate_bf[0]:7.1f} [{rate_bf[1]:.1f}-{rate_bf[2]:.1f}]  "
          f"{rate_bf[0] / base:5.2f}x   cosine to float32: mean {cos.mean():.4f}, min {cos.min():.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        make_jpegs(Path(d), a.images)
        for name in a.models:
            bench_model(name, a.images, a.reps, Path(d), a.batch)


if __name__ == "__main__":
    main()
