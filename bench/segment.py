"""Segmentation on the demo scenes: U-Net and DeepLabV3+ on EfficientNet-Lite0 in the same run.

Targets (issue 11): held-out demo scenes mIoU >= 0.80 (background included) with U-Net, training in
<= 20 min on a 2-core CPU; DeepLabV3+ measured beside it. Prints mIoU on held-out test scenes and on
scenes composed differently ("shifted"), training minutes and inference img/s (``seg.segment``
vs the bare Keras model call on the same batch).

    python bench/segment.py                        # both heads, the README recipe's settings
    python bench/segment.py --heads unet --upsample bilinear transpose   # the U-Net's upsampling, measured
    python bench/segment.py --scenes 600 --epochs 1 --head-epochs 2     # a quick look
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402

from recipes.segment_scenes import RECIPE, run  # noqa: E402


def speed(seg, images, batch=32, rounds=3) -> tuple[float, float]:
    """(img/s of seg.segment on uint8 arrays, img/s of the bare tf.function model call on float tensors
    already at the network's input size)."""
    import tensorflow as tf

    x = images[:batch]
    seg.segment(x, batch_size=batch, progress=False)
    t = time.perf_counter()
    for _ in range(rounds):
        seg.segment(x, batch_size=batch, progress=False)
    ours = rounds * len(x) / (time.perf_counter() - t)
    fn = tf.function(lambda a: seg.segmentation_model(a, training=False))
    xt = tf.image.resize(tf.constant(x.astype(np.float32)), (seg.input_size, seg.input_size))  # the net's size
    fn(xt)
    t = time.perf_counter()
    for _ in range(rounds):
        fn(xt).numpy()
    return ours, rounds * len(x) / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", nargs="+", default=["unet", "deeplabv3plus"])
    p.add_argument("--upsample", nargs="+", default=[None], help="U-Net upsampling: bilinear and/or transpose")
    p.add_argument("--scenes", type=int, default=RECIPE["n_train"])
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--head-epochs", type=int, default=RECIPE["head_epochs"])
    p.add_argument("--input-size", type=int, default=RECIPE["input_size"], help="network input (scenes stay 128 px)")
    p.add_argument("--out", default="runs/bench_segment")
    a = p.parse_args()
    print(cpu_line(), flush=True)
    import os

    import zoo
    from recipes.scenes import scenes

    rows = []
    for head in a.heads:
        for up in (a.upsample if head == "unet" else [None]):
            name = head + (f"-{up}" if up else "")
            cfg = dict(RECIPE, n_train=a.scenes, epochs=a.epochs, head_epochs=a.head_epochs, input_size=a.input_size)
            s = run(head=head, out=f"{a.out}/{name}", verbose=2, head_config={"upsample": up} if up else None, **cfg)
            seg = zoo.load(f"{a.out}/{name}/model")
            ours, bare = speed(seg, scenes("test", n=32).images)
            rows.append((name, s, ours, bare))
            print(json.dumps(s), flush=True)
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(shared machines make times pessimistic)")
    print(f"{'head':24} {'test mIoU':>9} {'shifted':>8} {'pix acc':>8} {'train min':>9} {'segment':>9} {'bare':>7} ratio")
    for name, s, ours, bare in rows:
        print(f"{name:24} {s['default']['mIoU']:9.4f} {s['shifted']['mIoU']:8.4f} {s['default']['pixel_accuracy']:8.4f} "
              f"{s['train_seconds'] / 60:9.1f} {ours:8.1f}/s {bare:6.1f}/s {ours / bare:.2f}")


if __name__ == "__main__":
    main()
