"""Build an index, streaming large folders through the model in resumable shards.

Files are embedded ``shard_size`` at a time; each shard's vectors go to ``shard-NNNNN.npy`` in a
work folder, followed by a small JSON that commits it. Re-running the same build with the same
work folder skips the committed shards, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from zoo.errors import ImageError
from zoo.index.core import ImageIndex
from zoo.index.errors import MetadataError

log = logging.getLogger(__name__)
STATE = "build.json"


def resolve_model(model, input_size: int | None = None):
    """A ZooModel from a name, a saved-model folder or a ZooModel."""
    if hasattr(model, "embed") and hasattr(model, "fingerprint"):
        return model
    import zoo

    return zoo.load(model, input_size=input_size)


def _files_of(source) -> list[str] | None:
    from zoo.images import IMAGE_EXTENSIONS, list_image_files

    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = list_image_files(p)
            if not files:
                raise ImageError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {p}")
            return [str(f) for f in files]
        return [str(p)]
    if isinstance(source, (list, tuple)) and source and all(isinstance(x, (str, os.PathLike)) for x in source):
        return [str(Path(x)) for x in source]
    return None


def _write_atomic(path: Path, write):
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, v: np.ndarray):
    with open(path, "wb") as f:
        np.save(f, np.asarray(v, np.float32))


def _state(model, files, shard_size) -> dict:
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    return {"fingerprint": model.fingerprint(), "files_sha256": digest, "count": len(files), "shard_size": shard_size}


def embed_files(model, files: list[str], work_dir, shard_size: int = 1024, batch_size: int = 64,
                progress: bool = True) -> tuple[np.ndarray, list[str], list]:
    """(vectors, kept paths, skipped (path, reason)) for ``files``, resuming from ``work_dir``."""
    from zoo.model import Progress

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    state = _state(model, files, shard_size)
    sp = work / STATE
    if sp.is_file() and json.loads(sp.read_text() or "{}") != state:
        log.warning("%s holds shards of a different build (model, files or shard size changed): starting over", work)
        for f in work.glob("shard-*"):
            f.unlink()
    _write_atomic(sp, lambda t: t.write_text(json.dumps(state)))
    n_shards = (len(files) + shard_size - 1) // shard_size
    done = [i for i in range(n_shards) if (work / f"shard-{i:05d}.json").is_file()]
    if done and progress:
        print(f"resuming: {len(done)} of {n_shards} shards already embedded in {work}", file=sys.stderr)
    left = len(files) - sum(min(shard_size, len(files) - i * shard_size) for i in done)
    bar = Progress(left, "embedding", progress and left > 0)
    vecs, kept, skipped = [], [], []
    for i in range(n_shards):
        chunk = files[i * shard_size:(i + 1) * shard_size]
        npy, meta = work / f"shard-{i:05d}.npy", work / f"shard-{i:05d}.json"
        if not meta.is_file():
            try:
                v = model.embed(chunk, batch_size=batch_size, progress=False)
                rec = {"kept": [str(p) for p in model.last_sources], "skipped": [list(s) for s in model.last_skipped]}
            except ImageError as exc:  # every file of the shard unreadable
                v = np.zeros((0, model.feature_dim), np.float32)
                rec = {"kept": [], "skipped": [[p, str(exc)] for p in chunk]}
            _write_atomic(npy, lambda t: _save_npy(t, v))
            _write_atomic(meta, lambda t: t.write_text(json.dumps(rec)))  # commits the shard
            bar.update(len(chunk))
        rec = json.loads(meta.read_text())
        vecs.append(np.load(npy))
        kept += rec["kept"]
        skipped += [tuple(s) for s in rec["skipped"]]
    bar.close()
    for path, reason in skipped:
        log.warning("skipped %s", reason if str(path) in str(reason) else f"{path}: {reason}")
    dim = model.feature_dim
    return (np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32)), kept, skipped


def build(source, model="efficientnet_lite0", *, metadata=None, metric: str = "cosine",
          index_type: str = "auto", recall: float = 0.95, input_size: int | None = None,
          batch_size: int = 64, work_dir=None, shard_size: int = 1024, gpu="auto", progress: bool = True,
          seed: int = 0) -> ImageIndex:
    """Embed ``source`` and index it.

    ``source``: a folder (searched recursively), file paths, a numpy array of images or a
    tf.data.Dataset. ``metadata``: one dict per image (folders: sorted path order) or, for files,
    a callable ``path -> dict``; files also get ``{"path": ...}``. ``model``: a registry name,
    saved-model folder or ZooModel. ``index_type``: "auto" (from size and ``recall``, see
    ``zoo.index.choice``) or a FAISS factory string. ``work_dir``: where file shards are kept so
    that a re-run resumes (default: a temporary folder removed afterwards).
    """
    m = resolve_model(model, input_size)
    files = _files_of(source)
    if files is None:
        vectors = m.embed(source, batch_size=batch_size, progress=progress)
        if metadata is not None and not callable(metadata) and len(list(metadata)) != len(vectors):
            raise MetadataError(f"got {len(list(metadata))} metadata records for {len(vectors)} images")
        meta = list(metadata) if metadata is not None else None
    else:
        if metadata is not None and not callable(metadata):
            metadata = list(metadata)
            if len(metadata) != len(files):
                raise MetadataError(f"got {len(metadata)} metadata records for {len(files)} files: "
                                    "pass one dict per file (folders: in sorted path order) or a callable")
        tmp = None if work_dir is not None else tempfile.mkdtemp(prefix="zoo-index-build-")
        try:
            vectors, kept, _ = embed_files(m, files, work_dir or tmp, shard_size, batch_size, progress)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        if not len(kept):
            raise ImageError(f"none of the {len(files)} files could be read")
        where = {p: i for i, p in enumerate(files)}
        if callable(metadata):
            meta = [{**(metadata(p) or {}), "path": p} for p in kept]
        else:
            meta = [{**((metadata[where[p]] or {}) if metadata else {}), "path": p} for p in kept]
    return ImageIndex.from_embeddings(vectors, meta, model=m, metric=metric, index_type=index_type,
                                      recall=recall, gpu=gpu, seed=seed)
