"""Bytes per vector of saved indexes, by FAISS index type, on real EfficientNet-Lite0 embeddings.

Embeds Fashion-MNIST test images, saves one index per type with ``zoo.index`` and prints the
size of its ``index-*.faiss`` file divided by the number of vectors (the item table, one SQLite
row per vector with its metadata, is printed apart), next to the raw code size the type implies.

    python bench/index_memory.py [--images 4000] [--input-size 96] [--types Flat SQ8 ...]

File sizes include each type's trained tables (IVF centroids, PQ codebooks), which dominate
at small N: compare the "code" column for billions of vectors.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import fashion_mnist  # noqa: F401  (also puts the checkout on sys.path)

from bench._common import cpu_line
import zoo


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--types", nargs="+", help="only these of the index types below")
    a = p.parse_args()
    print(cpu_line())
    x, _ = fashion_mnist("test")
    m = zoo.load("efficientnet_lite0", input_size=a.input_size)
    v = m.embed(x[:a.images], batch_size=64, progress=False)
    n, d = v.shape
    pq = d // 4
    specs = {  # spec: code bytes per vector implied by the type
        "Flat": 4 * d,
        "SQfp16": 2 * d,
        "SQ8": d,
        "IVF16,PQ64": 64,
        f"IVF16,PQ{pq}x4fs": pq // 2,
        f"IVF16,PQ{pq}x4fs,RFlat": pq // 2 + 4 * d,   # what choice.choose picks past 200k vectors
    }
    if a.types:
        specs = {k: c for k, c in specs.items() if k in a.types}
    print(f"{n} vectors of {d} dims (efficientnet_lite0 at {a.input_size}px)")
    print(f"  {'type':28} {'code B/vec':>10} {'file B/vec':>10} {'items B/vec':>11}  build s")
    with tempfile.TemporaryDirectory() as tmp:
        for spec, code in specs.items():
            t = time.perf_counter()
            idx = zoo.index.from_embeddings(v, [{"path": f"img/{i:07d}.png"} for i in range(n)], model=m,
                                            index_type=spec)
            out = idx.save(Path(tmp) / spec.replace(",", "_"))
            dt = time.perf_counter() - t
            faiss_file = next(Path(out).glob("index-*.faiss"))
            items = next(Path(out).glob("items-*.sqlite"))
            print(f"  {spec:28} {code:10d} {faiss_file.stat().st_size / n:10.1f} {items.stat().st_size / n:11.1f}"
                  f"  {dt:6.1f}")


if __name__ == "__main__":
    main()
