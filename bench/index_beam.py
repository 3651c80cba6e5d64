"""Wall time of ``zoo.index.build(engine="beam")`` as a ratio to the in-process build, same run.

Fashion-MNIST test images are written as PNG files; both engines index the same folder with the
same model object (loaded and traced once, before either timing), the same shard size and the
same index type, and the two indexes are compared (same paths, min cosine of the vectors).
Beam runs on its local BundleBasedDirectRunner in this process: the ratio is the pipeline's
overhead (construction, Reshuffle, shard files), not a cluster speed-up. Runs alternate
local, beam, local, beam ... and the medians are compared.

    python bench/index_beam.py [--images 2000] [--input-size 96] [--shard-size 256] [--reps 1]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import fashion_mnist  # noqa: F401  (also puts the checkout on sys.path)
from PIL import Image

from bench._common import cpu_line
import zoo


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=1)
    a = p.parse_args()
    print(cpu_line())
    x, y = fashion_mnist("test")
    m = zoo.load(a.model, input_size=a.input_size)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "images"
        for i in range(a.images):
            (root / f"c{y[i]}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(root / f"c{y[i]}" / f"{i:05d}.png")
        m.embed(x[:a.batch_size], batch_size=a.batch_size, progress=False)  # trace once, outside the timings
        times = {"local": [], "beam": []}
        for rep in range(a.reps):
            for engine in ("local", "beam"):
                out = Path(d) / f"{engine}.zidx"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                idx = zoo.index.build(root, model=m, out=out, shard_size=a.shard_size, batch_size=a.batch_size,
                                      progress=False, engine=engine)
                times[engine].append(time.perf_counter() - t)
                print(f"  rep {rep}: {engine:5} {times[engine][-1]:7.1f} s  ({len(idx)} images, {idx.plan.spec})")
        la, lb = zoo.index.load(Path(d) / "local.zidx"), zoo.index.load(Path(d) / "beam.zidx")
        pa = [r["path"] for r in la.metadata(la.ids)]
        pb = [r["path"] for r in lb.metadata(lb.ids)]
        va, vb = la.vectors(la.ids), lb.vectors(lb.ids)
        cos = np.sum(va * vb, 1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
    tl, tb = statistics.median(times["local"]), statistics.median(times["beam"])
    print(f"{a.model} at {a.input_size}px, {a.images} PNG files, shards of {a.shard_size}, batch {a.batch_size}, "
          f"{a.reps} rep(s)")
    print(f"  in-process build  {tl:7.1f} s  {a.images / tl:6.1f} img/s")
    print(f"  beam build        {tb:7.1f} s  {a.images / tb:6.1f} img/s   ratio beam / in-process {tb / tl:.2f}x "
          f"(target <= 1.3x)")
    print(f"  same paths in the same order: {pa == pb}; min cosine of the vectors {cos.min():.6f}")


if __name__ == "__main__":
    main()
