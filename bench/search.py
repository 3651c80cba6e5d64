"""Search speed and recall of the chosen index against exact search, measured in the same run.

    python bench/search.py --n 100000                 # synthetic clustered vectors
    python bench/search.py --n 1000000                # heavy: ~12 GB RAM, several minutes
    python bench/search.py --fmnist                   # 70k real Fashion-MNIST embeddings

Synthetic vectors (``clustered``): a Gaussian mixture in a 64-d latent space (n/1000 clusters,
centres N(0, I), within-cluster N(0, 1.5^2 I)), mapped to ``--dim`` dimensions by a fixed random
Gaussian matrix, plus N(0, 0.02^2) noise in every output dimension. Real embeddings have low
intrinsic dimension and cluster like this; uniform random vectors have neither, and defeat every
approximate index, so they are never used here. The spread was set so that IVF512 recall@10 at
nprobe 1/4/16/64 on 69k of them (0.31/0.76/0.95/0.99) is at or below that of the 69k real
Fashion-MNIST embeddings (0.46/0.82/0.98/1.00). Queries are fresh draws from the same mixture.
q/s is batch throughput (all queries in one call) on this machine's cores, for both the index and
exact search (``faiss.knn``, i.e. a Flat scan); recall@10 is against that exact search.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from _common import embeddings, timed

import zoo.index as zi

LATENT = 64


def clustered(n: int, dim: int, seed: int = 0, clusters: int | None = None, chunk: int = 100_000,
              _basis={}) -> np.ndarray:
    """``n`` float32 vectors from the mixture described in the module docstring."""
    clusters = clusters or max(n // 1000, 10)
    key = (dim, clusters)
    if key not in _basis:  # the same mixture for the collection and its queries
        g = np.random.default_rng(1234)
        _basis[key] = (g.normal(size=(clusters, LATENT)).astype(np.float32),
                       (g.normal(size=(LATENT, dim)) / np.sqrt(LATENT)).astype(np.float32))
    centres, proj = _basis[key]
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        z = centres[rng.integers(0, clusters, m)] + 1.5 * rng.standard_normal((m, LATENT), dtype=np.float32)
        out[s:s + m] = z @ proj + 0.02 * rng.standard_normal((m, dim), dtype=np.float32)
    return out


def run(name: str, base: np.ndarray, queries: np.ndarray, types, recall: float, k: int = 10):
    faiss.normalize_L2(base)
    faiss.normalize_L2(queries)
    (_, truth), t_exact = timed(faiss.knn, queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_qps = len(queries) / t_exact
    print(f"\n{name}: {len(base):,} x {base.shape[1]} vectors, {len(queries):,} queries; "
          f"exact search {exact_qps:,.0f} q/s")
    print(f"{'index':30} {'params':28} {'build s':>8} {'q/s':>9} {'x exact':>8} {'recall@10':>9} {'expected':>8}")
    for spec in types:
        idx, t_build = timed(zi.from_embeddings, base, index_type=spec, recall=recall, copy=False)
        idx.search_embeddings(queries[:10], k)  # warm up
        t = time.perf_counter()
        res = idx.search_embeddings(queries, k)
        qps = len(queries) / (time.perf_counter() - t)
        rec = np.mean([len(set(a) & set(b)) / k for a, b in zip(res.ids, truth)])
        p = idx.plan
        print(f"{(p.spec + (' (auto)' if spec == 'auto' else '')):30} {str(p.params):28} {t_build:8.1f} "
              f"{qps:9,.0f} {qps / exact_qps:8.1f} {rec:9.4f} {p.expected_recall!s:>8}")
        del idx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, help="synthetic collection size")
    ap.add_argument("--dim", type=int, default=1280, help="vector size (EfficientNet-Lite0 embeddings: 1280)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--fmnist", action="store_true", help="the 70k real Fashion-MNIST embeddings")
    ap.add_argument("--input-size", type=int, help="model resolution for --fmnist embeddings (default 224)")
    ap.add_argument("--types", default="auto", help="comma-separated: auto and/or FAISS factory strings")
    ap.add_argument("--recall", type=float, default=0.95, help="recall@10 target for auto")
    a = ap.parse_args()
    types = a.types.split(",")
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; recall target {a.recall}")
    if a.fmnist:
        etr, _, _ = embeddings("train", input_size=a.input_size)
        ete, _, _ = embeddings("test", input_size=a.input_size)
        base = np.concatenate([etr, ete[a.queries:]])
        run("Fashion-MNIST embeddings", base, np.array(ete[:a.queries]), types, a.recall)
    if a.n:
        (base, t_gen) = timed(clustered, a.n, a.dim, 0)
        queries = clustered(a.queries, a.dim, seed=1, clusters=max(a.n // 1000, 10))
        print(f"generated {a.n:,} clustered vectors in {t_gen:.0f}s")
        run("synthetic clustered", base, queries, types, a.recall)


if __name__ == "__main__":
    main()
