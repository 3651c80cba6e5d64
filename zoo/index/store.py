"""On-disk format of a saved index: a folder committed by an atomic manifest rename.

``photos.zidx/`` holds
- ``manifest.json``: format, model name + fingerprint, metric, index type and expected recall,
  library versions, the name, size and SHA-256 of each data file, the index's ``uid`` and save
  ``generation``, and ``checksum``: the SHA-256 of the manifest's own canonical JSON (sorted keys,
  no spaces) without that field, so an edited or damaged manifest is refused;
- ``index-<token>.faiss``: the FAISS index (``faiss.write_index``);
- ``items-<token>.sqlite``: one row per vector (position, id, live flag, JSON metadata); rows
  removed since the last compaction stay, flagged dead, so a save never has to rebuild the index.

A save writes new data files under fresh names, fsyncs them, then replaces ``manifest.json``
with ``os.replace``: that rename is the commit. A crash before it leaves the previous manifest
pointing at the previous, untouched files; leftovers are swept by the next save. (Swapping
whole folders cannot be atomic: a rename onto a non-empty folder fails.)

Writers: saves hold ``.photos.zidx.lock`` beside the folder (``filelock``: ``flock`` on POSIX,
``msvcrt`` locking on Windows; the OS drops it when its process dies, so a killed writer never
leaves a stale lock). Under it a save checks that the folder still holds the ``uid`` and
``generation`` the saving index was loaded with, and refuses with :class:`IndexConflictError`
otherwise: a writer's save is never silently overwritten. Readers take no lock; a reader that
meets files swept by a concurrent save reads the new manifest again.

Manifests of format v1 (no checksum, no generation) still load, with a logged warning; the
next save writes v2.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from zoo.extras import require
from zoo.index.choice import METRICS
from zoo.index.errors import (
    IndexConflictError,
    IndexCorruptError,
    IndexFormatError,
    IndexLockedError,
)
from zoo.io import atomic_write, fsync_file, sha256_file, sweep_stale

faiss = require("faiss", "similarity search")

log = logging.getLogger(__name__)
FORMAT, FORMAT_VERSION = "zoo.index", 2
MANIFEST = "manifest.json"
LOCK_TIMEOUT = 120.0        # seconds a save waits for another writer's lock
STALE_TEMP_SECONDS = 60.0   # ``.NAME.tmp-*`` older than this, found under the lock, are a killed writer's
_HEX64 = re.compile(r"[0-9a-f]{64}")


def versions() -> dict:
    import zoo

    return {"zoo": zoo.__version__, "faiss": faiss.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


# ---- locking -------------------------------------------------------------------------------
def lock_path(path) -> Path:
    """The writers' lock file of the index folder ``path``: ``.NAME.lock`` beside it."""
    p = Path(os.path.realpath(path))  # one lock whichever (symlinked, relative) path names the folder
    return p.parent / f".{p.name}.lock"


def writer_lock(path) -> FileLock:
    """A (not yet acquired) lock on ``path``; reentrant for the same object, exclusive between
    objects, threads and processes."""
    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lp), thread_local=False)


@contextlib.contextmanager
def locked(lock: FileLock, path, timeout: float | None = LOCK_TIMEOUT):
    """Hold ``lock``; :class:`IndexLockedError` after ``timeout`` s (None: wait for ever)."""
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except Timeout:
        raise IndexLockedError(f"{path} is being written by another process (lock {lock.lock_file} held for "
                               f"more than {timeout} s): try again when it has finished") from None
    try:
        yield lock
    finally:
        lock.release()


# ---- items table ---------------------------------------------------------------------------
def _write_items(path: Path, ids: np.ndarray, alive: np.ndarray, metadata: dict):
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE items (pos INTEGER PRIMARY KEY, id INTEGER NOT NULL, alive INTEGER NOT NULL, "
                    "meta TEXT)")
        con.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                        ((p, int(i), int(a), json.dumps(metadata.get(int(i)) or {}) if a else None)
                         for p, (i, a) in enumerate(zip(ids, alive))))
        con.commit()
    finally:
        con.close()


def _read_items(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, alive, meta FROM items ORDER BY pos").fetchall()
    finally:
        con.close()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    alive = np.fromiter((r[1] for r in rows), dtype=bool, count=len(rows))
    return ids, alive, {int(i): json.loads(m) for i, a, m in rows if a and m and m != "{}"}


# ---- manifest ------------------------------------------------------------------------------
def manifest_checksum(doc: dict) -> str:
    """SHA-256 of ``doc``'s canonical JSON, leaving out its ``checksum`` field."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _is(x, typ) -> bool:
    """isinstance, except that a bool is no number here (JSON true is not 1)."""
    return isinstance(x, typ) and not (isinstance(x, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)))


def _check_fields(where: str, doc: dict, fields: dict):
    for key, typ in fields.items():
        if key not in doc:
            raise IndexFormatError(f"{where} is missing {key!r}: the manifest is incomplete; rebuild the index "
                                   "or restore it from a backup")
        if not _is(doc[key], typ):
            want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise IndexFormatError(f"{where}: {key!r} must be {want}, not {type(doc[key]).__name__} "
                                   f"({doc[key]!r:.60}): rebuild the index or restore it from a backup")


def plain_name(name: str) -> bool:
    """True for a file name that stays inside its folder (no separators, not hidden, not ``..``)."""
    return (isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")
            and not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name)


def check_manifest(doc, mpath: Path) -> dict:
    """Validate every field of a parsed manifest; :class:`IndexFormatError` naming the bad one."""
    where = str(mpath)
    if not isinstance(doc, dict):
        raise IndexCorruptError(f"{where} must hold a JSON object: the index is damaged; rebuild it")
    _check_fields(where, doc, {"metric": str, "dim": int, "count": int, "dead": int, "next_id": int,
                               "index": dict, "files": dict, "model": (dict, type(None))})
    if doc["metric"] not in METRICS:
        raise IndexFormatError(f"{where}: unknown metric {doc['metric']!r} (this zoo knows "
                               f"{', '.join(METRICS)}): rebuild the index")
    for key in ("dim", "count", "dead", "next_id"):
        if doc[key] < (1 if key == "dim" else 0):
            raise IndexFormatError(f"{where}: {key!r} is {doc[key]}, which is impossible: rebuild the index")
    _check_fields(f"{where} 'index'", doc["index"], {"spec": str})
    for key, typ in (("expected_recall", (int, float, type(None))), ("recall_target", (int, float, type(None))),
                     ("params", dict), ("reason", str)):
        if key in doc["index"]:
            _check_fields(f"{where} 'index'", doc["index"], {key: typ})
    if doc["model"] is not None:
        _check_fields(f"{where} 'model'", doc["model"], {"name": str, "input_size": int, "fingerprint": dict,
                                                         "source": (str, type(None))})
    for key in ("index", "items"):
        if key not in doc["files"]:
            raise IndexCorruptError(f"{where} lists no {key} file: the index is damaged; rebuild it")
        rec = doc["files"][key]
        if not isinstance(rec, dict):
            raise IndexFormatError(f"{where}: files.{key} must be an object: rebuild the index")
        _check_fields(f"{where} files.{key}", rec, {"name": str, "bytes": int, "sha256": str})
        if not plain_name(rec["name"]):
            raise IndexCorruptError(f"{where}: files.{key} names {rec['name']!r}, which is not a plain file name "
                                    "inside the index folder: refused; rebuild the index")
        if not _HEX64.fullmatch(rec["sha256"]) or rec["bytes"] < 0:
            raise IndexFormatError(f"{where}: files.{key} has no valid size and SHA-256: rebuild the index")
    if "versions" in doc and not isinstance(doc["versions"], dict):
        raise IndexFormatError(f"{where}: 'versions' must be an object: rebuild the index")
    if doc.get("format_version", 1) >= 2:
        _check_fields(where, doc, {"uid": str, "generation": int})
    return doc


def read_manifest(path) -> dict:
    """The manifest of the index folder ``path``: format, version, checksum and every field checked.

    Format v1 manifests (no checksum) load with a logged warning; save the index to upgrade it.
    """
    path = Path(path)
    if not path.exists():
        raise IndexFormatError(f"{path}: no such index; build one with zoo.index.build or `zoo index build`")
    mpath = path / MANIFEST
    if not path.is_dir() or not mpath.is_file():
        raise IndexFormatError(f"{path} is not a zoo index (no {MANIFEST}); build one with `zoo index build`")
    try:
        doc = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{mpath} is not valid JSON ({exc}): the index is damaged; rebuild it") from exc
    if not isinstance(doc, dict):
        raise IndexCorruptError(f"{mpath} must hold a JSON object: the index is damaged; rebuild it")
    if doc.get("format") != FORMAT:
        raise IndexFormatError(f"{path} holds format {doc.get('format')!r}, not {FORMAT!r}")
    version = doc.get("format_version")
    if not _is(version, int) or version < 1:
        raise IndexFormatError(f"{mpath}: 'format_version' must be a positive integer, not {version!r}: "
                               "rebuild the index")
    if version > FORMAT_VERSION:
        raise IndexFormatError(f"{path} was written by a newer zoo (format v{version}); "
                               f"this zoo reads v{FORMAT_VERSION}: upgrade zoo")
    if "checksum" in doc or version >= 2:
        if doc.get("checksum") != manifest_checksum(doc):
            raise IndexCorruptError(f"{mpath} does not match its checksum (edited by hand or damaged): restore it "
                                    "from a backup or rebuild the index; change settings through zoo.index, "
                                    "never by editing the manifest")
    else:
        log.warning("%s has no checksum (written by an older zoo, format v1): loaded unchecked; save the index "
                    "again (index.save(path)) to add one", mpath)
    return check_manifest(doc, mpath)


def disk_state(path) -> tuple[str | None, int] | None:
    """(uid, generation) of the index at ``path``; None when there is none; ("?", -1) when unreadable."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        return None
    try:
        doc = read_manifest(path)
    except IndexFormatError:
        return "?", -1
    return doc.get("uid"), int(doc.get("generation", 0))


# ---- save ----------------------------------------------------------------------------------
def _is_index_folder(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir()))


def save(path, index: faiss.Index, manifest: dict, ids: np.ndarray, alive: np.ndarray, metadata: dict, *,
         expect: tuple | None = None, lock: FileLock | None = None,
         timeout: float | None = LOCK_TIMEOUT) -> tuple[Path, str, int]:
    """Write ``index`` + items + ``manifest`` to the folder ``path`` under the writers' lock.

    ``expect``: the (uid, generation) the caller loaded; a different index on disk raises
    :class:`IndexConflictError`. ``lock``: a lock the caller already holds on ``path``.
    Returns (path, uid, generation) of what was written.
    """
    path = Path(os.path.realpath(path))
    with locked(lock or writer_lock(path), path, timeout):
        if path.exists() and not _is_index_folder(path):
            raise IndexFormatError(f"{path} exists and is not a zoo index folder: choose another path or remove it")
        now = disk_state(path)
        if expect is not None and now is not None and tuple(now) != tuple(expect):
            raise IndexConflictError(
                f"{path} was changed by another writer since this index was loaded (generation {expect[1]}, now "
                f"{now[1]}): nothing was saved. Load it again and repeat your changes, or hold the lock from load "
                "to save with `with zoo.index.open_for_update(path) as idx:`; save(path, force=True) would "
                "discard the other writer's changes")
        uid = expect[0] if expect is not None and expect[0] not in (None, "?") else secrets.token_hex(8)
        generation = max(now[1] if now else 0, expect[1] if expect else 0, 0) + 1
        sweep_stale(path.parent, path.name, STALE_TEMP_SECONDS)  # killed writers' new-index folders
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "uid": uid, "generation": generation,
               "versions": versions()}
        if not path.exists():  # a brand-new folder appears whole: build it aside, then rename
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
            try:
                _write(tmp, index, doc, ids, alive, metadata)
                os.replace(tmp, path)
                fsync_file(path.parent)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            _write(path, index, doc, ids, alive, metadata)
        return path, uid, generation


def _write(path: Path, index, doc: dict, ids, alive, metadata):
    """New data files, then the manifest rename (the commit), then the sweep of older files."""
    token = secrets.token_hex(4)
    names = {"index": f"index-{token}.faiss", "items": f"items-{token}.sqlite"}
    faiss.write_index(index, str(path / names["index"]))
    _write_items(path / names["items"], ids, alive, metadata)
    files = {}
    for key, name in names.items():
        fsync_file(path / name)
        files[key] = {"name": name, "bytes": (path / name).stat().st_size, "sha256": sha256_file(path / name)}
    doc = {**doc, "files": files}
    doc["checksum"] = manifest_checksum(doc)
    atomic_write(path / MANIFEST, json.dumps(doc, indent=2))  # the commit point
    fsync_file(path)
    keep = set(names.values()) | {MANIFEST}
    for f in path.iterdir():  # files of earlier saves and of interrupted ones (we hold the lock)
        if f.name not in keep and (f.name.startswith(("index-", "items-")) or f.name.startswith(f".{MANIFEST}.")):
            f.unlink(missing_ok=True)


# ---- load ----------------------------------------------------------------------------------
def load(path, verify: bool = True) -> tuple[dict, faiss.Index, np.ndarray, np.ndarray, dict]:
    """(manifest, FAISS index, ids and live flags by position, metadata by id) from ``path``.

    ``verify`` checks each file's SHA-256 against the manifest (about 1 s per GB). A read that
    overlaps a concurrent save (its files swept) starts again on the new manifest.
    """
    path = Path(path)
    for attempt in range(5):
        raw = _manifest_bytes(path)
        try:
            return _load_once(path, verify)
        except IndexCorruptError:
            if attempt == 4 or raw is None or _manifest_bytes(path) == raw:
                raise
            log.info("%s changed while it was read: reading it again", path)


def _manifest_bytes(path: Path) -> bytes | None:
    try:
        return (path / MANIFEST).read_bytes()
    except OSError:
        return None


def _load_once(path: Path, verify: bool):
    doc = read_manifest(path)
    files = {}
    root = path.resolve()
    for key in ("index", "items"):
        rec = doc["files"][key]
        f = path / rec["name"]
        if not f.is_file() or f.resolve().parent != root:
            raise IndexCorruptError(f"{f} is missing: the index is damaged; rebuild it")
        if f.stat().st_size != rec["bytes"] or (verify and sha256_file(f) != rec["sha256"]):
            raise IndexCorruptError(f"{f} does not match the checksum in {MANIFEST} (truncated or modified): "
                                    "restore it from a backup or rebuild the index")
        files[key] = f
    try:
        index = faiss.read_index(str(files["index"]))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{files['index']} could not be read by FAISS ({str(exc).splitlines()[-1][:160]}): "
                                "rebuild the index") from exc
    try:
        ids, alive, metadata = _read_items(files["items"])
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{files['items']} is not a readable item table ({exc}): rebuild the index") from exc
    problems = []
    if len(ids) != index.ntotal:
        problems.append(f"{index.ntotal} vectors but {len(ids)} item rows")
    if index.d != doc["dim"]:
        problems.append(f"the manifest says {doc['dim']} dimensions, the index holds {index.d}")
    if index.metric_type != METRICS[doc["metric"]]:
        problems.append(f"the manifest says metric {doc['metric']!r}, the FAISS index was built for another")
    if int(alive.sum()) != doc["count"] or int((~alive).sum()) != doc["dead"]:
        problems.append(f"the manifest counts {doc['count']} live and {doc['dead']} removed items, the item "
                        f"table {int(alive.sum())} and {int((~alive).sum())}")
    if len(ids) and int(ids.max()) >= doc["next_id"]:
        problems.append(f"next_id {doc['next_id']} would reuse id {int(ids.max())}")
    if problems:
        raise IndexCorruptError(f"{path} is inconsistent ({'; '.join(problems)}): rebuild the index")
    return doc, index, ids, alive, metadata
