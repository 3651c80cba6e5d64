"""Embedding a file list in shards that a build resumes from: each shard's vectors, then the JSON
that commits them, written atomically. Shared by the in-process build and the Beam pipeline."""
from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from zoo.errors import ImageError
from zoo.index.errors import IndexFormatError
from zoo.io import atomic_write

log = logging.getLogger(__name__)
STATE = "build.json"  # what the shards in a work folder were made from


def _npy_bytes(v: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(v, np.float32), allow_pickle=False)
    return buf.getvalue()


def _state(model, files, shard_size) -> dict:
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    return {"fingerprint": model.fingerprint(), "files_sha256": digest, "count": len(files), "shard_size": shard_size}


def shard_path(work, i: int, ext: str) -> Path:
    """``work/shard-NNNNN.npy`` (vectors) or ``.json`` (kept / skipped paths: its presence commits the shard)."""
    return Path(work) / f"shard-{i:05d}.{ext}"


def prepare_work(model, files, work_dir, shard_size: int) -> tuple[Path, int]:
    """(work folder, number of shards); shards of a different build found there are dropped."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    state = _state(model, files, shard_size)
    sp = work / STATE
    if sp.is_file() and json.loads(sp.read_text() or "{}") != state:
        log.warning("%s holds shards of a different build (model, files or shard size changed): starting over", work)
        for f in work.glob("shard-*"):
            f.unlink()
    atomic_write(sp, json.dumps(state))
    return work, (len(files) + shard_size - 1) // shard_size


def embed_shard(model, chunk: list[str], batch_size: int) -> tuple[np.ndarray, dict]:
    """(vectors, {"kept": [...], "skipped": [[path, reason], ...]}) of one shard of files.

    The skip policy of every build engine: unreadable files are skipped with their reason."""
    try:
        r = model.embed(chunk, batch_size=batch_size, progress=False, return_sources=True)
        v = r.outputs
        rec = {"kept": [str(p) for p in r.sources], "skipped": [[str(p), str(why)] for p, why in r.skipped]}
    except ImageError as exc:  # every file of the shard unreadable
        v = np.zeros((0, model.feature_dim), np.float32)
        rec = {"kept": [], "skipped": [[p, str(exc)] for p in chunk]}
    return v, rec


def write_shard(work, i: int, v: np.ndarray, rec: dict, before_commit=None):
    """Write shard ``i`` atomically: vectors first, then the JSON that commits them. A retried
    shard overwrites its own files, so retries neither lose nor duplicate anything."""
    atomic_write(shard_path(work, i, "npy"), _npy_bytes(v))
    if before_commit is not None:
        before_commit()
    atomic_write(shard_path(work, i, "json"), json.dumps(rec))  # commits the shard


def read_shards(work, n_shards: int, dim: int) -> tuple[np.ndarray, list[str], list]:
    """(vectors, kept paths, skipped (path, reason)) of committed shards 0..n_shards-1, in order."""
    vecs, kept, skipped = [], [], []
    for i in range(n_shards):
        rec = json.loads(shard_path(work, i, "json").read_text())
        v = np.load(shard_path(work, i, "npy"), allow_pickle=False)
        if len(v) != len(rec["kept"]):
            raise IndexFormatError(f"shard {i} in {work} has {len(v)} vectors for {len(rec['kept'])} files: "
                                   "remove the work folder and build again")
        vecs.append(v)
        kept += rec["kept"]
        skipped += [tuple(s) for s in rec["skipped"]]
    for path, reason in skipped:
        log.warning("skipped %s", reason if str(path) in str(reason) else f"{path}: {reason}")
    return (np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32)), kept, skipped
