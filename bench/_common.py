"""Shared by the benchmarks: Fashion-MNIST from the idx files, cached embeddings, timing."""
from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

FMNIST = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "zoo-bench"))


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 28, 28), int labels) of the "train" (60k) or "test" (10k) split."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FMNIST / f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FMNIST / f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def embeddings(split: str, model_name: str = "efficientnet_lite0", input_size: int | None = None):
    """(embeddings, seconds the embedding took (recorded when it was cached), model) of a split."""
    import zoo

    m = zoo.load(model_name, input_size=input_size)
    fp = m.fingerprint()
    path = CACHE / f"fmnist-{split}-{fp['model']}-{fp['weights']}-{fp['preprocessing']}.npy"
    if path.is_file():
        meta = path.with_suffix(".json")
        return np.load(path), (json.loads(meta.read_text())["seconds"] if meta.is_file() else None), m
    x, _ = fashion_mnist(split)
    t = time.perf_counter()
    e = m.embed(x, batch_size=64, progress=True)
    dt = time.perf_counter() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, e)
    path.with_suffix(".json").write_text(json.dumps({"seconds": dt, "images": len(x)}))
    return e, dt, m


def pixels(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
         "amx_bf16")


def cpu_line() -> str:
    """The CPU model, the cores this process may use, the speed-relevant flags and the load."""
    from zoo.runtimes import cpu_threads

    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU: {model}, {cpu_threads()} cores usable; flags: "
            f"{' '.join(f for f in FLAGS if f in flags) or 'none of ' + '/'.join(FLAGS)}; load average {load:.1f}")
