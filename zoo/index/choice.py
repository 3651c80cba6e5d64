"""Choose a FAISS index type from the collection size and a recall target, then tune it.

Tiers (thresholds measured on the 2-core build CPU with ``bench/search.py``):

- ``Flat`` (exact) below ``FLAT_MAX`` vectors, or whenever the target is >= ``EXACT_RECALL``;
- ``HNSW32`` up to ``HNSW_MAX`` (on 69k Fashion-MNIST embeddings: 17x exact search at recall@10
  0.97, against 4.6x for IVF-Flat at the same target; built in about 20 s);
- ``IVF{nlist},PQ{m}x4fs,RFlat`` beyond: 4-bit fast-scan PQ proposes candidates that are
  re-ranked with exact distances, so the returned scores are exact (1M x 1280 clustered
  vectors: 32x exact search at recall@10 0.957, built in about 3 minutes; 300k: 136x at 0.956).

Approximate indexes are then tuned on the collection itself (500 of its rows as queries,
against exact search): along each knob ladder (``nprobe`` per ``k_factor_rf``; ``efSearch``)
the first setting reaching the target is timed, the fastest of those is kept, and its measured
recall@10 is recorded as the index's expected recall.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from zoo.extras import require
from zoo.index.errors import IndexConfigError

faiss = require("faiss", "similarity search")

log = logging.getLogger(__name__)

FLAT_MAX = 50_000
HNSW_MAX = 200_000
EXACT_RECALL = 0.999
RECALL_K = 10
METRICS = {"cosine": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


@dataclass
class IndexPlan:
    """A FAISS ``index_factory`` string, its search settings and the recall they reach."""

    spec: str
    expected_recall: float | None = None   # recall@10 vs exact search, measured when tuned
    params: dict = field(default_factory=dict)
    reason: str = ""
    recall_target: float | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "recall_at": RECALL_K}

    @classmethod
    def from_dict(cls, d: dict) -> "IndexPlan":
        return cls(d["spec"], d.get("expected_recall"), dict(d.get("params") or {}), d.get("reason", ""),
                   d.get("recall_target"))

    @property
    def exact(self) -> bool:
        return self.spec == "Flat"


def check_metric(metric: str) -> str:
    m = str(metric).lower()
    if m not in METRICS:
        raise IndexConfigError(f"unknown metric {metric!r}: use 'cosine' (normalised inner product) or 'l2'")
    return m


def _nlist(n: int, per_list: float) -> int:
    """A power of two near ``n / per_list``, at least 16 and leaving >= 39 training points per list."""
    want = max(16, min(n / per_list, n / 39))
    return int(2 ** max(4, round(math.log2(want))))


def _pq_code(dim: int) -> str:
    """4-bit fast-scan PQ with about 4 dimensions per sub-quantizer, or SQ8 if ``dim`` does not split."""
    for per in (4, 2, 8, 5, 3, 6):
        m = dim // per
        if dim % per == 0 and m % 2 == 0 and m > 0:
            return f"PQ{m}x4fs"
    return "SQ8"


def choose(n: int, dim: int, recall: float = 0.95) -> IndexPlan:
    """The index type for ``n`` vectors of ``dim`` dimensions at a recall@10 target."""
    if not 0 < recall <= 1:
        raise IndexConfigError(f"recall target must be in (0, 1]; got {recall}")
    if recall >= EXACT_RECALL:
        return IndexPlan("Flat", 1.0, {}, f"recall target {recall} needs exact search", recall)
    if n < FLAT_MAX:
        return IndexPlan("Flat", 1.0, {}, f"{n:,} vectors < {FLAT_MAX:,}: exact search is fast enough", recall)
    if n < HNSW_MAX:
        return IndexPlan("HNSW32", None, {}, f"{n:,} vectors: graph search over exact vectors", recall)
    return IndexPlan(f"IVF{_nlist(n, 1000)},{_pq_code(dim)},RFlat", None, {},
                     f"{n:,} vectors: fast-scan PQ candidates re-ranked exactly", recall)


def plan_for(spec: str, n: int, dim: int, recall: float = 0.95) -> IndexPlan:
    """A plan for ``spec``: "auto" (see :func:`choose`) or any FAISS ``index_factory`` string."""
    if spec in (None, "", "auto"):
        return choose(n, dim, recall)
    try:
        faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise IndexConfigError(
            f"{spec!r} is not a FAISS index_factory string ({str(exc).splitlines()[-1][:120]}); "
            "examples: 'Flat', 'HNSW32', 'IVF1024,Flat', 'IVF1024,PQ64x4fs,RFlat', or 'auto'") from exc
    return IndexPlan(spec, 1.0 if spec == "Flat" else None, {}, "chosen by the user", recall)


def make(plan: IndexPlan, dim: int, metric: str) -> faiss.Index:
    """An empty (untrained) index for ``plan``."""
    return faiss.index_factory(dim, plan.spec, METRICS[check_metric(metric)])


def train(index: faiss.Index, vectors: np.ndarray, seed: int = 0):
    """Train ``index`` (no-op when it needs none) on a sample of ``vectors``."""
    if index.is_trained:
        return
    ivf = _ivf(index)
    need = ivf.nlist if ivf is not None else 1
    if len(vectors) < need:
        raise IndexConfigError(f"{len(vectors)} vectors cannot train an index with {need} lists: "
                               "use a smaller nlist, 'Flat', or index_type='auto'")
    cap = max(64 * need, 10_000)
    if len(vectors) > cap:
        rows = np.sort(np.random.default_rng(seed).choice(len(vectors), cap, replace=False))
        vectors = vectors[rows]
    if ivf is not None:
        ivf.cp.seed = seed
    index.train(np.ascontiguousarray(vectors, dtype=np.float32))


def _ivf(index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw(index):
    idx = faiss.downcast_index(index)
    return idx if hasattr(idx, "hnsw") else None


def apply_params(index: faiss.Index, params: dict):
    """Set search-time parameters (``nprobe``, ``efSearch``, ``k_factor_rf``) by name."""
    ps = faiss.ParameterSpace()
    for name, value in params.items():
        ps.set_index_parameter(index, name, value)


def _ladders(index: faiss.Index) -> list[list[dict]]:
    """Search settings, in ladders of rising cost (recall rises along each ladder)."""
    ivf, hnsw = _ivf(index), _hnsw(index)
    if ivf is not None:
        probes = [p for p in (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512) if p < ivf.nlist]
        probes.append(ivf.nlist)
        if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
            return [[{"nprobe": p, "k_factor_rf": kf} for p in probes] for kf in (2, 4, 8, 16, 32)]
        return [[{"nprobe": p} for p in probes]]
    if hnsw is not None:
        return [[{"efSearch": ef} for ef in (16, 32, 64, 128, 256, 512, 1024)]]
    return [[{}]]


def measure_recall(index, vectors, metric: str, params: dict | None = None, n_queries: int = 500,
                   k: int = RECALL_K, seed: int = 0, truth=None) -> tuple[float, float]:
    """(recall@k, queries/s) of ``index`` (holding ``vectors`` at positions 0..n-1) vs exact search.

    Queries are rows of the collection; each query's own row is left out of both lists.
    """
    n = len(vectors)
    rows, gt = truth if truth is not None else ground_truth(vectors, metric, n_queries, k, seed)
    if params:
        apply_params(index, params)
    q = vectors[rows]
    t = time.perf_counter()
    _, got = index.search(q, min(k + 1, n))
    qps = len(q) / max(time.perf_counter() - t, 1e-9)
    hits = 0.0
    for r, g, a in zip(rows, gt, got):
        g = [i for i in g if i != r][:k]
        a = set(i for i in a if i != r and i >= 0)
        hits += len(a.intersection(g)) / max(len(g), 1)
    return hits / len(rows), qps


def ground_truth(vectors, metric: str, n_queries: int = 500, k: int = RECALL_K, seed: int = 0):
    """(query rows, exact top-(k+1) positions) for recall measurement."""
    n = len(vectors)
    rows = np.sort(np.random.default_rng(seed + 1).choice(n, min(n_queries, n), replace=False))
    _, gt = faiss.knn(vectors[rows], vectors, min(k + 1, n), metric=METRICS[metric])
    return rows, gt


def tune(index, vectors, plan: IndexPlan, metric: str, target: float, seed: int = 0) -> IndexPlan:
    """Keep the fastest measured setting whose recall@10 reaches ``target``; record it in ``plan``."""
    if plan.exact:
        plan.expected_recall = 1.0
        return plan
    truth = ground_truth(vectors, metric, seed=seed)
    reached, best = [], None   # (qps, params, recall); best = highest recall seen
    for ladder in _ladders(index):
        seen = []
        for params in ladder:
            r, qps = measure_recall(index, vectors, metric, params, truth=truth)
            seen.append(r)
            log.debug("%s %s recall@10 %.3f, %.0f q/s", plan.spec, params, r, qps)
            if best is None or r > best[2] + 1e-9:
                best = (qps, params, r)
            if r >= target:
                reached.append((qps, params, r))
                break
            if len(seen) >= 4 and seen[-1] - seen[-4] < 0.002:
                break  # recall has plateaued on this ladder: the other knob limits it
    qps, params, r = max(reached, key=lambda t: t[0]) if reached else best
    if r < target:
        log.warning("%s reaches recall@10 %.3f at best, below the target %.3f: "
                    "pass index_type='Flat' for exact search", plan.spec, r, target)
    apply_params(index, params)
    plan.params, plan.expected_recall, plan.recall_target = dict(params), round(float(r), 4), target
    return plan
