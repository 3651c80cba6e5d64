"""SimCLR on the unlabelled Fashion-MNIST training images vs the ImageNet-pretrained backbone: linear probe.

    python bench/simclr.py [--minutes 30] [--input-size 64] [--batch-size 64] [--probe-per-class 500]

Continues EfficientNet-Lite0's ImageNet weights with SimCLR (NT-Xent, two views from zoo.augment,
BatchNorm frozen) on the 60k training images, labels unused, for at most ``--minutes`` of wall time;
then a logistic-regression probe on the frozen embeddings of both backbones (same input size), on
stratified labelled subsets of the training split (the curve) and a stratified test subset. Writes
runs/simclr/probe.json (the Image-text app page draws it) and the model to runs/simclr/model.
Timings are wall-clock on a shared 2-core CPU (pessimistic).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)

CURVE = (10, 50, 200, 500)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--probe-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--out", default="runs/simclr")
    a = ap.parse_args()
    import zoo
    from recipes import simclr
    from zoo import data
    from zoo.io import atomic_write

    train = data.fashion_mnist("train")
    probe_train = train.subset(per_class=a.probe_per_class, seed=1)
    test = data.fashion_mnist("test").subset(per_class=a.test_per_class, seed=2)
    base = zoo.load("efficientnet_lite0", input_size=a.input_size)
    t = time.perf_counter()
    ssl = simclr.pretrain(train.images, backbone=base, epochs=1, batch_size=a.batch_size, lr=a.lr,
                          temperature=a.temperature, max_seconds=a.minutes * 60, out_dir=a.out)
    minutes = (time.perf_counter() - t) / 60
    emb = {}
    for name, m in (("ImageNet", base), ("SimCLR", ssl)):
        emb[name] = (m.embed(probe_train.images, batch_size=128, progress=False),
                     m.embed(test.images, batch_size=128, progress=False))
    curve = []
    for k in CURVE:
        if k > a.probe_per_class:
            continue
        row = {"labels per class": k}
        for name, (etr, ete) in emb.items():
            row[name] = simclr.linear_probe(base, (etr, probe_train.labels), (ete, test.labels),
                                            per_class=k)["accuracy"]
        curve.append(row)
    steps = ssl.pretraining["steps"]
    note = (f"SimCLR {steps} steps of {a.batch_size} images ({steps * a.batch_size:,} images, "
            f"{minutes:.1f} min on a shared 2-core CPU) from ImageNet Lite0 at {a.input_size}px; logistic-regression "
            f"probe, {len(test)} test images")
    atomic_write(Path(a.out) / "probe.json", json.dumps({"curve": curve, "note": note,
                                                        "loss": ssl.pretraining["history"]["loss"]}, indent=2))
    print(note)
    print(f"{'labels/class':>12} {'ImageNet':>9} {'SimCLR':>9} {'gain':>7}")
    for r in curve:
        print(f"{r['labels per class']:>12} {100 * r['ImageNet']:9.1f} {100 * r['SimCLR']:9.1f} "
              f"{100 * (r['SimCLR'] - r['ImageNet']):+7.1f}")


if __name__ == "__main__":
    main()
