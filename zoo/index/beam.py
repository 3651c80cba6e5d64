"""Embed image files for an index with an Apache Beam pipeline: ``zoo.index.build(..., engine="beam")``.

```python
idx = zoo.index.build("photos/", out="photos.zidx", engine="beam")          # local, in-process
idx = zoo.index.build(files, out="photos.zidx", engine="beam",               # a cluster
                      beam_options=["--runner=FlinkRunner", "--flink_master=host:8081"])
```
``zoo index build photos/ --out photos.zidx --engine beam [--beam-option --runner=DataflowRunner ...]``

The pipeline is ``Create(shards) | Reshuffle | ParDo(EmbedShard)``:

- shards are fixed-size slices of the sorted file list (shard ``i`` = files ``i*S .. (i+1)*S-1``),
  so a shard's id and content depend only on the file list and ``shard_size``;
- ``EmbedShard`` loads the model once per worker (``DoFn.setup``; a process that already holds
  the same model, e.g. the driver under a local runner, reuses it), checks its fingerprint
  against the driver's, embeds the shard with the same skip policy as the in-process build
  (:func:`zoo.index.build.embed_shard`) and writes ``shard-NNNNN.npy`` then ``shard-NNNNN.json``
  (the commit) atomically into the work folder. A retried shard rewrites its own two files, so
  a retry loses nothing and duplicates nothing; committed shards are skipped when the build is
  run again (resume), exactly like the in-process engine.
- The driver then reads the shards in id order and builds the FAISS index with the same code as
  the in-process build (index type from ``zoo.index.choice``; the same manifest, checksums and
  model binding), so both engines give the same vectors in the same order, hence the same ids.

Runner: by default ``BundleBasedDirectRunner``, Beam's local runner that retries a failed
bundle (up to 4 attempts, as Dataflow does in batch); the FnApi ``DirectRunner`` does not retry
(a failed run is resumed by running the build again). On Dataflow, Flink or Spark the work
folder must be on a file system every worker and the driver share (NFS, a FUSE-mounted
bucket); vectors are written with plain ``os`` calls.

Test hook: ``ZOO_BEAM_FAIL_ONCE="0,3"`` makes shards 0 and 3 raise :class:`InjectedShardFailure`
the first time they are embedded (after their vectors are written, before the commit), marked by
``.fail-once-NNNNN`` files in the work folder; tests use it to check that retries are clean.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from zoo.extras import require
from zoo.index.shards import embed_shard, prepare_work, read_shards, shard_path, write_shard
from zoo.index.errors import IndexConfigError, ModelMismatchError, ZooIndexError

beam = require("apache_beam", "engine='beam'")

log = logging.getLogger(__name__)
FAIL_ONCE_ENV = "ZOO_BEAM_FAIL_ONCE"
DEFAULT_RUNNER = "BundleBasedDirectRunner"

_MODELS: dict[str, object] = {}   # one model per worker process, keyed by model_spec
_MODELS_LOCK = threading.Lock()
_EMBED_LOCK = threading.Lock()   # one shard at a time per process: TF already uses every core


class InjectedShardFailure(RuntimeError):
    """Raised once per shard named in ``ZOO_BEAM_FAIL_ONCE`` (tests only)."""


class BeamBuildError(ZooIndexError):
    """The Beam pipeline finished without committing every shard."""


def model_spec(model) -> dict:
    """What a worker needs to load the same model: a saved folder or registry name, and input size."""
    src = getattr(model, "weights_source", None)
    where = src if src and Path(src).is_dir() else model.entry.full_name
    return {"model": str(where), "input_size": int(model.input_size), "fingerprint": model.fingerprint()}


def _key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def worker_model(spec: dict):
    """The worker's model for ``spec``, loaded once per process; refused if its fingerprint differs."""
    key = _key(spec)
    with _MODELS_LOCK:
        m = _MODELS.get(key)
        if m is None:
            import zoo

            m = zoo.load(spec["model"], input_size=spec["input_size"])
            if m.fingerprint() != spec["fingerprint"]:
                raise ModelMismatchError(
                    f"this worker's {spec['model']} ({m.fingerprint()}) differs from the driver's "
                    f"({spec['fingerprint']}): install the same weights on every worker")
            _MODELS[key] = m
        return m


def _fail_once_shards() -> frozenset[int]:
    raw = os.environ.get(FAIL_ONCE_ENV, "").strip()
    if not raw:
        return frozenset()
    try:
        return frozenset(int(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise IndexConfigError(f"{FAIL_ONCE_ENV} must be comma-separated shard numbers, got {raw!r}") from None


def _options(options):
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    if options is None:
        opts = PipelineOptions([])
    elif isinstance(options, PipelineOptions):
        opts = options
    elif isinstance(options, (list, tuple)) and all(isinstance(o, str) for o in options):
        opts = PipelineOptions(list(options))
    else:
        raise IndexConfigError(f"beam_options must be a PipelineOptions or a list of '--flag=value' strings, "
                               f"not {type(options).__name__}")
    runner = opts.view_as(StandardOptions).runner
    return opts, runner or DEFAULT_RUNNER


class EmbedShard(beam.DoFn):
    """(shard id, paths) -> shard id, after committing ``shard-NNNNN.{npy,json}`` in ``work``."""

    def __init__(self, spec: dict, work: str, batch_size: int, fail_once=frozenset()):
        self.spec, self.work, self.batch_size, self.fail_once = spec, work, batch_size, frozenset(fail_once)
        self.model = None

    def setup(self):
        self.model = worker_model(self.spec)

    def process(self, element):
        i, chunk = element
        if not shard_path(self.work, i, "json").is_file():  # committed by an earlier attempt: done
            with _EMBED_LOCK:
                v, rec = embed_shard(self.model, list(chunk), self.batch_size)
            write_shard(self.work, i, v, rec, before_commit=lambda: self._maybe_fail(i))
        yield i

    def _maybe_fail(self, i):
        if i in self.fail_once:
            marker = Path(self.work) / f".fail-once-{i:05d}"
            if not marker.exists():
                marker.touch()
                raise InjectedShardFailure(f"injected failure of shard {i} ({FAIL_ONCE_ENV})")


def embed_files_beam(model, files: list[str], work_dir, shard_size: int = 1024, batch_size: int = 64,
                     options=None, progress: bool = True):
    """(vectors, kept paths, skipped (path, reason)) for ``files``, embedded by a Beam pipeline.

    Same shards, order and skip policy as :func:`zoo.index.build.embed_files`."""
    opts, runner = _options(options)
    work, n_shards = prepare_work(model, files, work_dir, shard_size)
    todo = [i for i in range(n_shards) if not shard_path(work, i, "json").is_file()]
    if len(todo) < n_shards and progress:
        print(f"resuming: {n_shards - len(todo)} of {n_shards} shards already embedded in {work}", file=sys.stderr)
    if todo:
        spec = model_spec(model)
        with _MODELS_LOCK:
            _MODELS.setdefault(_key(spec), model)  # a worker in this process reuses the driver's model
        fn = EmbedShard(spec, str(Path(work).resolve()), batch_size, _fail_once_shards())
        t = time.perf_counter()
        with beam.Pipeline(runner=runner, options=opts) as p:
            _ = (p
                 | "Shards" >> beam.Create([(i, files[i * shard_size:(i + 1) * shard_size]) for i in todo])
                 | "Spread" >> beam.Reshuffle()
                 | "Embed" >> beam.ParDo(fn))
        if progress:
            print(f"beam ({runner}): embedded {len(todo)} shards of {shard_size} files in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    missing = [i for i in range(n_shards) if not shard_path(work, i, "json").is_file()]
    if missing:
        raise BeamBuildError(f"the pipeline finished but shards {missing[:10]} are not in {work}: with a remote "
                             "runner the work folder must be shared by the driver and every worker")
    return read_shards(work, n_shards, model.feature_dim)
