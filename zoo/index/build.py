"""Build an index, streaming large folders through the model in resumable shards.

Files are embedded ``shard_size`` at a time; each shard's vectors go to ``shard-NNNNN.npy`` in a
work folder, followed by a small JSON that commits it. Re-running the same build with the same
work folder skips the committed shards, so an interrupted build resumes where it stopped.

``build(..., out="photos.zidx")`` checks the output before anything is embedded, holds the
writers' lock until the index is saved there, and keeps its shards in ``photos.zidx.work``
beside it (never inside), removed once the index is saved.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from zoo.errors import ImageError
from zoo.index import store
from zoo.index.core import BuildReport, ImageIndex
from zoo.index.errors import IndexConfigError, IndexExistsError, IndexFormatError, MetadataError
from zoo.index.shards import STATE, embed_shard, prepare_work, read_shards, shard_path, write_shard  # noqa: F401

log = logging.getLogger(__name__)
ENGINES = ("local", "beam")


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


def embed_files(model, files: list[str], work_dir, shard_size: int = 1024, batch_size: int = 64,
                progress: bool = True) -> tuple[np.ndarray, list[str], list]:
    """(vectors, kept paths, skipped (path, reason)) for ``files``, resuming from ``work_dir``."""
    from zoo.inference import Progress

    work, n_shards = prepare_work(model, files, work_dir, shard_size)
    done = [i for i in range(n_shards) if shard_path(work, i, "json").is_file()]
    if done and progress:
        print(f"resuming: {len(done)} of {n_shards} shards already embedded in {work}", file=sys.stderr)
    left = len(files) - sum(min(shard_size, len(files) - i * shard_size) for i in done)
    bar = Progress(left, "embedding", progress and left > 0)
    for i in range(n_shards):
        chunk = files[i * shard_size:(i + 1) * shard_size]
        if not shard_path(work, i, "json").is_file():
            write_shard(work, i, *embed_shard(model, chunk, batch_size))
            bar.update(len(chunk))
    bar.close()
    return read_shards(work, n_shards, model.feature_dim)


def check_output(out, overwrite: bool = False) -> Path:
    """``out`` as a Path, refused before any work when it holds an index (unless ``overwrite``)
    or anything else than an index."""
    out = Path(out)
    if out.exists():
        if (out / store.MANIFEST).is_file():
            if not overwrite:
                raise IndexExistsError(f"{out} already holds an index: pass overwrite=True (`zoo index build "
                                       "--overwrite`) to replace it, or choose another output path")
        elif not out.is_dir() or any(out.iterdir()):
            raise IndexFormatError(f"{out} exists and is not a zoo index folder: choose another output path "
                                   "or remove it")
    return out


def build(source, model="efficientnet_lite0", *, out=None, overwrite: bool = False, metadata=None,
          metric: str = "cosine", index_type: str = "auto", recall: float = 0.95, input_size: int | None = None,
          batch_size: int = 64, work_dir=None, shard_size: int = 1024, gpu="auto", progress: bool = True,
          seed: int = 0, timeout: float | None = store.LOCK_TIMEOUT, engine: str = "local",
          beam_options=None, runtime: str = "auto") -> ImageIndex:
    """Embed ``source`` and index it; ``idx.build_report`` says what was indexed and skipped.

    ``source``: a folder (searched recursively), file paths, a numpy array of images or a
    tf.data.Dataset. ``metadata``: one dict per image (folders: sorted path order) or, for files,
    a callable ``path -> dict``; files also get ``{"path": ...}``. ``model``: a registry name,
    saved-model folder or ZooModel. ``index_type``: "auto" (from size and ``recall``, see
    ``zoo.index.choice``) or a FAISS factory string. ``work_dir``: where file shards are kept so
    that a re-run resumes (default: a temporary folder removed afterwards; with ``out``,
    ``OUT.work`` beside it, kept when the build fails and removed once the index is saved).

    ``out``: save the index there. It is checked before anything is embedded (an existing index
    is refused with :class:`IndexExistsError` unless ``overwrite``) and the writers' lock is held
    until the save (another writer's lock: waits ``timeout`` s, then :class:`IndexLockedError`).

    ``engine``: "local" embeds the shards in this process; "beam" embeds them in an Apache Beam
    pipeline (``zoo.index.beam``): the local bundle-based DirectRunner by default, or Dataflow,
    Flink or Spark through ``beam_options`` (a ``PipelineOptions`` or a list of ``--flags``).
    Both engines write the same shards and the same index folder.

    ``runtime``: what embeds the images; "auto" (see :func:`zoo.runtimes.bulk_runtime`) is TFLite
    on a machine without a GPU for 200 images or more (2.5x TensorFlow's img/s for Lite0 here,
    cosine 0.9999998), else TensorFlow. The index is bound to the model either way.
    """
    if engine not in ENGINES:
        raise IndexConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine != "beam" and beam_options is not None:
        raise IndexConfigError("beam_options needs engine='beam'")
    if engine == "beam" and _files_of(source) is None:
        raise IndexConfigError("engine='beam' indexes image files: pass a folder or a list of paths "
                               "(arrays and tf.data.Datasets are embedded in-process: engine='local')")
    eng = (engine, beam_options)
    if out is None:
        return _build(source, model, metadata, metric, index_type, recall, input_size, batch_size, work_dir,
                      shard_size, gpu, progress, seed, eng, runtime)
    out = check_output(out, overwrite)
    real = os.path.realpath(out)
    lock = store.writer_lock(real)
    with store.locked(lock, out, timeout):
        check_output(out, overwrite)  # again, under the lock
        work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
        idx = _build(source, model, metadata, metric, index_type, recall, input_size, batch_size, work,
                     shard_size, gpu, progress, seed, eng, runtime)
        idx._lock, idx._lock_path = lock, real
        try:
            idx.save(out, timeout=timeout)
        finally:
            idx._lock = idx._lock_path = None
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return idx


def _build(source, model, metadata, metric, index_type, recall, input_size, batch_size, work_dir, shard_size,
           gpu, progress, seed, eng=("local", None), runtime="auto") -> ImageIndex:
    from zoo.runtimes import bulk_model

    m = resolve_model(model, input_size)
    files = _files_of(source)
    n = len(files) if files is not None else (len(source) if isinstance(source, (list, tuple, np.ndarray)) else None)
    em = bulk_model(m, runtime, n)  # embeds; the index stays bound to m
    if files is None:
        r = em.embed(source, batch_size=batch_size, progress=progress, return_sources=True)
        vectors, sources, skipped = r.outputs, list(r.sources) or list(range(len(r.outputs))), list(r.skipped)
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
            if eng[0] == "beam":
                from zoo.index.beam import embed_files_beam

                vectors, kept, skipped = embed_files_beam(em, files, work_dir or tmp, shard_size, batch_size,
                                                          options=eng[1], progress=progress)
            else:
                vectors, kept, skipped = embed_files(em, files, work_dir or tmp, shard_size, batch_size, progress)
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
        sources = kept
    idx = ImageIndex.from_embeddings(vectors, meta, model=m, metric=metric, index_type=index_type,
                                     recall=recall, gpu=gpu, seed=seed)
    idx.build_report = BuildReport(idx.ids, sources, skipped)
    return idx
