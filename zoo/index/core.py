"""``ImageIndex``: FAISS vectors + per-item metadata + the model that made the vectors.

Vectors sit in the FAISS index at positions 0..n-1; ``ids`` maps position -> user id (int64,
never reused). ``remove`` marks positions dead and searches skip them; once dead rows pass
``COMPACT_FRACTION`` the index is rebuilt from its own stored vectors, so every index type,
HNSW included, supports removal. Dead rows are saved as such: saving never rebuilds.

Writers: ``save`` refuses (:class:`IndexConflictError`) when another writer saved to the folder
since this index was loaded from it; :func:`open_for_update` holds the writers' lock from load
to save, so concurrent updates wait for each other instead (see ``zoo.index.store``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zoo.extras import require
from zoo.index import choice, store
from zoo.index.errors import (
    EmbeddingShapeError,
    IndexConfigError,
    MetadataError,
    ModelMismatchError,
)

faiss = require("faiss", "similarity search")

log = logging.getLogger(__name__)
COMPACT_FRACTION = 0.1


class BuildReport(NamedTuple):
    """What :func:`zoo.index.build` indexed: the ``ids`` given, the source (path, or input
    position) of each, and the ``(source, reason)`` of every input it skipped."""

    ids: np.ndarray
    sources: list
    skipped: list


class SearchResult(NamedTuple):
    """Per query, the ``k`` best: ``ids`` (-1 where fewer exist), ``scores`` and ``metadata``.

    ``scores`` are cosine similarities (higher is closer) for the cosine metric and Euclidean
    distances (lower is closer) for L2.
    """

    ids: np.ndarray
    scores: np.ndarray
    metadata: list


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x).__name__)


def clean_metadata(items, n: int) -> list[dict]:
    """``n`` JSON-safe dicts from a list of dicts (or None)."""
    if items is None:
        return [{} for _ in range(n)]
    items = list(items)
    if len(items) != n:
        raise MetadataError(f"got {len(items)} metadata records for {n} vectors: pass one dict per image")
    out = []
    for m in items:
        if m is not None and not isinstance(m, dict):
            raise MetadataError(f"metadata records must be dicts; got {type(m).__name__}")
        try:
            out.append(json.loads(json.dumps(m or {}, default=_jsonable)))
        except TypeError as exc:
            raise MetadataError(f"metadata must be JSON-serialisable (str, numbers, lists, dicts); "
                                f"{exc} is not") from exc
    return out


def model_record(model) -> dict:
    """What the index stores about the model that made its vectors."""
    src = getattr(model, "weights_source", None)
    return {"name": model.name, "input_size": model.input_size,
            "source": src if src and Path(src).is_dir() else None, "fingerprint": model.fingerprint()}


def fingerprint_diff(want: dict, got: dict) -> str:
    keys = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    return ", ".join(f"{k}: index has {want.get(k)!r}, got {got.get(k)!r}" for k in keys)


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class ImageIndex:
    """Similarity search over image embeddings. Build with :func:`zoo.index.build`."""

    def __init__(self, index: faiss.Index, plan: choice.IndexPlan, metric: str, *, ids=None, metadata=None,
                 next_id: int = 0, model_info: dict | None = None, model=None, gpu: bool | str = "auto"):
        self._index = index
        self.plan = plan
        self.metric = choice.check_metric(metric)
        self._ids = np.asarray(ids if ids is not None else np.arange(index.ntotal), dtype=np.int64)
        self._alive = np.ones(index.ntotal, dtype=bool)
        self._meta: dict[int, dict] = dict(metadata or {})
        self._next_id = max(int(next_id), int(self._ids.max()) + 1 if len(self._ids) else 0)
        self.model_info = model_info
        self._model = None
        self._gpu_wanted = gpu_available() if gpu == "auto" else bool(gpu)
        self._gpu_index = None
        self.path: Path | None = None
        self.build_report: BuildReport | None = None  # set by zoo.index.build
        self._disk: tuple | None = None   # (real path, uid, generation) this index was loaded from/saved to
        self._lock = None                 # the writers' lock held by open_for_update
        self._lock_path: str | None = None
        if model is not None:
            self.model = model

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_embeddings(cls, vectors, metadata=None, *, ids=None, model=None, metric: str = "cosine",
                        index_type: str = "auto", recall: float = 0.95, gpu="auto", seed: int = 0,
                        copy: bool = True) -> "ImageIndex":
        """Index precomputed ``vectors`` (N, D). ``model`` (a ZooModel) records where they came from.

        ``copy=False`` saves memory on large float32 inputs, which are then L2-normalised in place
        for the cosine metric.
        """
        metric = choice.check_metric(metric)
        x = _as_matrix(vectors, copy)
        if metric == "cosine":
            faiss.normalize_L2(x)
        ids = _check_ids(ids, len(x), 0)
        meta = clean_metadata(metadata, len(x))
        plan = choice.plan_for(index_type, len(x), x.shape[1], recall)
        index = choice.make(plan, x.shape[1], metric)
        choice.train(index, x, seed)
        index.add(x)
        choice.tune(index, x, plan, metric, recall, seed)
        out = cls(index, plan, metric, ids=ids, metadata={int(i): m for i, m in zip(ids, meta) if m},
                  model_info=model_record(model) if model is not None else None, model=model, gpu=gpu)
        log.info("indexed %d vectors with %s (expected recall@10 %s)", len(x), plan.spec, plan.expected_recall)
        return out

    @classmethod
    def empty(cls, dim: int, *, model=None, metric: str = "cosine") -> "ImageIndex":
        """An exact index with nothing in it yet; ``add`` fills it."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise EmbeddingShapeError(f"dim must be a positive integer (the vectors' length); got {dim!r}")
        dim = int(dim)
        plan = choice.IndexPlan("Flat", 1.0, {}, "empty index: exact search")
        return cls(choice.make(plan, dim, metric), plan, metric,
                   model_info=model_record(model) if model is not None else None, model=model)

    # ---- model ------------------------------------------------------------------------------
    @property
    def model(self):
        """The ZooModel that embeds queries, loaded on first use and checked by fingerprint."""
        if self._model is None:
            if self.model_info is None:
                raise ModelMismatchError("this index was built from raw vectors with no model recorded: "
                                         "query it with search_embeddings(), or set index.model = a ZooModel")
            import zoo

            info = self.model_info
            src = info.get("source")
            m = zoo.load(src) if src and Path(src).is_dir() else zoo.load(info["name"], input_size=info["input_size"])
            self.model = m
        return self._model

    @model.setter
    def model(self, m):
        if self.model_info is not None:
            self.check_fingerprint(m.fingerprint())
        elif self.dim != m.feature_dim:
            raise ModelMismatchError(f"{m.name} makes {m.feature_dim}-d vectors; this index holds {self.dim}-d")
        else:
            self.model_info = model_record(m)
        self._model = m

    def check_fingerprint(self, fp: dict):
        """Refuse vectors from a model other than the one the index was built with."""
        want = (self.model_info or {}).get("fingerprint")
        if want is None:
            return
        if dict(fp) != dict(want):
            raise ModelMismatchError(
                f"this index was built with {want.get('model')} and its embeddings are not comparable with "
                f"another model's or preprocessing's ({fingerprint_diff(want, dict(fp))}): query with the same "
                f"model (zoo.load({self.model_info['name']!r}, input_size={self.model_info['input_size']})) "
                "or rebuild the index")

    # ---- properties -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._alive.sum())

    @property
    def ids(self) -> np.ndarray:
        """Ids of the live items, in index order."""
        return self._ids[self._alive].copy()

    def metadata(self, ids) -> list[dict | None]:
        """Metadata of ``ids`` (None for unknown ids)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        live = np.isin(ids, self._ids[self._alive])
        return [dict(self._meta.get(int(i), {})) if ok else None for i, ok in zip(ids, live)]

    def info(self) -> dict:
        return {"count": len(self), "dim": self.dim, "metric": self.metric, "index": self.plan.to_dict(),
                "model": self.model_info, "dead": int((~self._alive).sum()),
                "gpu": self._gpu_wanted and gpu_available(), "path": str(self.path) if self.path else None,
                "generation": self._disk[2] if self._disk else None,
                "suggested": choice.choose(max(len(self), 1), self.dim, self.plan.recall_target or 0.95).spec}

    def __repr__(self):
        name = (self.model_info or {}).get("name", "raw vectors")
        return f"<ImageIndex {len(self)} x {self.dim} {self.metric} {self.plan.spec} model={name}>"

    # ---- search -----------------------------------------------------------------------------
    def _prep(self, vectors) -> np.ndarray:
        x = _as_matrix(vectors)
        if x.shape[1] != self.dim:
            raise EmbeddingShapeError(f"vectors have {x.shape[1]} dimensions; this index holds {self.dim}")
        if self.metric == "cosine":
            faiss.normalize_L2(x)
        return x

    def _searcher(self, k: int = 1) -> faiss.Index:
        """The GPU copy when a GPU is usable (FAISS GPU search allows k <= 2048), else the CPU index."""
        if not self._gpu_wanted or k > 2048 or not gpu_available():
            return self._index
        if self._gpu_index is None:
            try:
                self._gpu_res = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._index)  # keeps nprobe
            except (RuntimeError, AttributeError) as exc:
                log.info("%s stays on the CPU (%s)", self.plan.spec, exc)
                self._gpu_wanted = False
                return self._index
        return self._gpu_index

    def search_embeddings(self, vectors, k: int = 10, fingerprint: dict | None = None) -> SearchResult:
        """The ``k`` nearest items to each vector. ``fingerprint`` (of the model that made the
        vectors, ``model.fingerprint()``) is checked against the index's when given."""
        if fingerprint is not None:
            self.check_fingerprint(fingerprint)
        k = int(k)
        if k < 1:
            raise IndexConfigError(f"k must be >= 1; got {k}")
        q = self._prep(vectors)
        D, P = self._search_live(q, k)
        ok = P >= 0
        found = self._ids[np.maximum(P, 0)] if len(self._ids) else np.zeros_like(P)  # empty: every row pads
        ids = np.where(ok, found, -1).astype(np.int64)
        scores = np.where(ok, D if self.metric == "cosine" else np.sqrt(np.maximum(D, 0)), np.nan).astype(np.float32)
        meta = [[dict(self._meta.get(int(i), {})) if i >= 0 else None for i in row] for row in ids]
        return SearchResult(ids, scores, meta)

    def _search_live(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(raw FAISS scores, positions) of the ``k`` nearest live rows; position -1 pads.

        Removed rows are skipped by fetching more than ``k`` and, for the rare query whose extra
        candidates were all removed, searching again with 4x as many.
        """
        n_total, dead = self._index.ntotal, int((~self._alive).sum())
        D_out = np.full((len(q), k), np.nan, np.float32)
        P_out = np.full((len(q), k), -1, np.int64)
        if not n_total:
            return D_out, P_out
        kk = min(n_total, k + dead if dead <= 4 * k else int(1.5 * k * n_total / max(n_total - dead, 1)) + 16)
        pending = np.arange(len(q))
        while len(pending):
            D, I = self._searcher(kk).search(q[pending], kk)
            ok = (I >= 0) & self._alive[np.maximum(I, 0)]
            done = (ok.sum(1) >= k) | (kk >= n_total)
            order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
            D, I, ok = (np.take_along_axis(a, order, 1) for a in (D, I, ok))
            w = I.shape[1]
            rows = pending[done]
            D_out[rows, :w] = np.where(ok[done], D[done], np.nan)
            P_out[rows, :w] = np.where(ok[done], I[done], -1)
            pending, kk = pending[~done], min(n_total, kk * 4)
        return D_out, P_out

    def search(self, images, k: int = 10, batch_size: int = 64, progress: bool = False,
               return_sources: bool = False):
        """Embed ``images`` with the index's model and search; a :class:`SearchResult`.

        Rows for unreadable files are dropped; ``return_sources=True`` returns
        ``Embedded(outputs=SearchResult, sources, skipped)`` saying which query each row is.
        """
        emb = self.model.embed(images, batch_size=batch_size, progress=progress, return_sources=True)
        res = self.search_embeddings(emb.outputs, k)
        return emb._replace(outputs=res) if return_sources else res

    # ---- add / remove -----------------------------------------------------------------------
    def add_embeddings(self, vectors, metadata=None, ids=None, fingerprint: dict | None = None) -> np.ndarray:
        """Add vectors; returns their ids (new ones unless ``ids`` is given)."""
        if fingerprint is not None:
            self.check_fingerprint(fingerprint)
        x = self._prep(vectors)
        ids = _check_ids(ids, len(x), self._next_id)
        clash = np.intersect1d(ids, self.ids)
        if len(clash):
            raise MetadataError(f"ids {clash[:5].tolist()} are already in the index: remove them first")
        meta = clean_metadata(metadata, len(x))
        self._index.add(x)
        self._ids = np.concatenate([self._ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(x), bool)])
        self._meta.update({int(i): m for i, m in zip(ids, meta) if m})
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._gpu_index = None
        return ids

    def add(self, images, metadata=None, ids=None, batch_size: int = 64, progress: bool = True,
            return_sources: bool = False):
        """Embed and add ``images`` (any input ``ZooModel.embed`` takes); returns the new ids.

        ``metadata``: one dict per input image; file inputs also get ``{"path": ...}``. Unreadable
        files are skipped: ``return_sources=True`` returns ``Embedded(outputs=ids, sources,
        skipped)`` saying which input each id is and which inputs were skipped, and why.
        """
        from zoo.images import IMAGE_EXTENSIONS, list_image_files

        files = None
        if isinstance(images, (str, Path)) and Path(images).is_dir():
            files = [str(p) for p in list_image_files(images)]
            images = files
        elif isinstance(images, (list, tuple)) and images and all(isinstance(x, (str, Path)) for x in images):
            files = [str(Path(p)) for p in images]
        elif isinstance(images, (str, Path)) and Path(images).suffix.lower() in IMAGE_EXTENSIONS:
            files = [str(Path(images))]
        if metadata is not None:
            metadata = list(metadata)
            if files is not None and len(metadata) != len(files):
                raise MetadataError(f"got {len(metadata)} metadata records for {len(files)} files: "
                                    "pass one dict per file (folders: in sorted path order)")
        emb = self.model.embed(images, batch_size=batch_size, progress=progress, return_sources=True)
        vectors = emb.outputs
        if files is not None:
            where = {p: i for i, p in enumerate(files)}
            rows = [where[str(p)] for p in emb.sources]
            meta = [{**((metadata[r] or {}) if metadata is not None else {}), "path": files[r]} for r in rows]
        else:
            rows = list(range(len(vectors)))
            meta = metadata
        if ids is not None:
            ids = np.asarray(ids, dtype=np.int64).ravel()
            if files is not None and len(ids) == len(files):
                ids = ids[rows]
        added = self.add_embeddings(vectors, meta, ids)
        return emb._replace(outputs=added) if return_sources else added

    def remove(self, ids) -> int:
        """Remove items by id; returns how many were removed (unknown ids are ignored)."""
        hit = np.isin(self._ids, np.asarray(ids, dtype=np.int64).ravel()) & self._alive
        self._alive[hit] = False
        for i in self._ids[hit]:
            self._meta.pop(int(i), None)
        n = int(hit.sum())
        if n and (~self._alive).sum() > COMPACT_FRACTION * len(self._alive):
            self.compact()
        return n

    # ---- maintenance ------------------------------------------------------------------------
    def vectors(self, ids=None) -> np.ndarray:
        """The stored (normalised, for cosine) vectors of ``ids`` (default: all live items)."""
        pos = np.flatnonzero(self._alive) if ids is None else _positions(self, ids)
        if len(pos) == 0:
            return np.zeros((0, self.dim), np.float32)
        ivf = choice._ivf(self._index)
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()
        return np.vstack([self._index.reconstruct_batch(pos[s:s + 65536]) for s in range(0, len(pos), 65536)])

    def compact(self):
        """Drop removed rows from the FAISS index (reuses its training; HNSW is rebuilt)."""
        if self._alive.all():
            return
        x = self.vectors()
        new = faiss.clone_index(self._index)
        new.reset()
        if len(x):
            new.add(x)
        choice.apply_params(new, self.plan.params)
        self._index, self._ids = new, self._ids[self._alive]
        self._alive = np.ones(len(self._ids), bool)
        self._gpu_index = None

    def rebuild(self, index_type: str = "auto", recall: float | None = None, seed: int = 0):
        """Re-choose (or set) the index type for the current size and retrain; ids are kept."""
        x = self.vectors()
        recall = recall or self.plan.recall_target or 0.95
        plan = choice.plan_for(index_type, len(x), self.dim, recall)
        index = choice.make(plan, self.dim, self.metric)
        choice.train(index, x, seed)
        index.add(x)
        choice.tune(index, x, plan, self.metric, recall, seed)
        self._index, self.plan, self._ids = index, plan, self._ids[self._alive]
        self._alive = np.ones(len(self._ids), bool)
        self._gpu_index = None

    def duplicates(self, threshold: float = 0.9, k: int = 10) -> list[list[int]]:
        """Groups of near-duplicate ids, largest first.

        Two items are linked when one is among the other's ``k`` nearest and their cosine
        similarity is >= ``threshold`` (L2 metric: distance <= ``threshold``); groups are the
        connected components of those links.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(self)
        if n < 2:
            return []
        ids = self.ids
        x = self.vectors()
        k = min(int(k) + 1, n)
        D, I = self._search_live(x, k)
        pos_rank = np.full(len(self._alive), -1, np.int64)
        pos_rank[np.flatnonzero(self._alive)] = np.arange(n)
        J = np.where(I >= 0, pos_rank[np.maximum(I, 0)], -1)
        close = D >= threshold if self.metric == "cosine" else np.sqrt(np.maximum(D, 0)) <= threshold
        link = close & (J >= 0) & (J != np.arange(n)[:, None])
        rows = np.repeat(np.arange(n), J.shape[1])[link.ravel()]
        cols = J.ravel()[link.ravel()]
        g = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        groups = {}
        for r, c in enumerate(comp):
            groups.setdefault(c, []).append(int(ids[r]))
        out = [sorted(v) for v in groups.values() if len(v) > 1]
        return sorted(out, key=lambda v: (-len(v), v[0]))

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path, *, force: bool = False, timeout: float | None = store.LOCK_TIMEOUT) -> Path:
        """Write to the folder ``path`` (e.g. ``photos.zidx``) atomically (see ``zoo.index.store``).

        Saving back to the folder this index was loaded from (or last saved to) raises
        :class:`IndexConflictError`, writing nothing, when another writer saved there since;
        ``force=True`` overwrites their changes. Saving to any other path replaces what is there.
        Waits up to ``timeout`` s (None: for ever) for another writer's lock, then raises
        :class:`IndexLockedError`.
        """
        target = os.path.realpath(path)
        expect = self._disk[1:] if self._disk is not None and self._disk[0] == target and not force else None
        lock = self._lock if self._lock is not None and self._lock_path == target else None
        manifest = {"model": self.model_info, "metric": self.metric, "dim": self.dim, "count": len(self),
                    "dead": int((~self._alive).sum()),
                    "next_id": self._next_id, "index": self.plan.to_dict()}
        _, uid, generation = store.save(target, self._index, manifest, self._ids, self._alive, self._meta,
                                        expect=expect, lock=lock, timeout=timeout)
        self._disk = (target, uid, generation)
        self.path = Path(path)
        return self.path

    @classmethod
    def load(cls, path, model=None, gpu="auto", verify: bool = True) -> "ImageIndex":
        """Read an index folder; ``model`` (a ZooModel) is checked against the recorded fingerprint."""
        doc, index, ids, alive, meta = store.load(path, verify)
        plan = choice.IndexPlan.from_dict(doc["index"])
        if plan.params:
            choice.apply_params(index, plan.params)
        out = cls(index, plan, doc["metric"], ids=ids, metadata=meta, next_id=doc.get("next_id", 0),
                  model_info=doc.get("model"), gpu=gpu)
        out._alive = alive
        if model is not None:
            out.model = model
        out.path = Path(path)
        out._disk = (os.path.realpath(path), doc.get("uid"), int(doc.get("generation", 0)))
        return out


@contextlib.contextmanager
def open_for_update(path, model=None, *, gpu="auto", verify: bool = True,
                    timeout: float | None = store.LOCK_TIMEOUT):
    """``with open_for_update("photos.zidx") as idx: idx.add(...)``: load with the writers' lock
    held, save on a clean exit (nothing is saved when the block raises), then release.

    Other writers wait for the lock (up to ``timeout`` s, then :class:`IndexLockedError`), so
    concurrent updates are applied one after another and none is lost. Readers never wait.
    """
    lock = store.writer_lock(os.path.realpath(path))
    with store.locked(lock, path, timeout):
        idx = ImageIndex.load(path, model=model, gpu=gpu, verify=verify)
        idx._lock, idx._lock_path = lock, os.path.realpath(path)
        try:
            yield idx
            idx.save(path)
        finally:
            idx._lock = idx._lock_path = None


def _as_matrix(vectors, copy: bool = True) -> np.ndarray:
    x = np.array(vectors, dtype=np.float32, order="C", copy=True if copy else None)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise EmbeddingShapeError(f"expected vectors shaped (N, D); got {np.shape(vectors)}")
    if not np.isfinite(x).all():
        raise EmbeddingShapeError("vectors contain NaN or infinite values")
    return x


def _check_ids(ids, n: int, start: int) -> np.ndarray:
    if ids is None:
        return np.arange(start, start + n, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if len(ids) != n:
        raise MetadataError(f"got {len(ids)} ids for {n} vectors")
    if len(np.unique(ids)) != n or (ids < 0).any():
        raise MetadataError("ids must be unique non-negative integers")
    return ids


def _positions(index: ImageIndex, ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).ravel()
    live = np.flatnonzero(index._alive)
    order = {int(i): p for i, p in zip(index._ids[live], live)}
    missing = [int(i) for i in ids if int(i) not in order]
    if missing:
        raise MetadataError(f"ids {missing[:5]} are not in the index")
    return np.array([order[int(i)] for i in ids], dtype=np.int64)
