"""On-disk format of a saved index: a folder committed by an atomic manifest rename.

``photos.zidx/`` holds
- ``manifest.json``: format, model name + fingerprint, metric, index type and expected recall,
  library versions, and the name, size and SHA-256 of each data file;
- ``index-<token>.faiss``: the FAISS index (``faiss.write_index``);
- ``items-<token>.sqlite``: one row per vector (position, id, live flag, JSON metadata); rows
  removed since the last compaction stay, flagged dead, so a save never has to rebuild the index.

A save writes new data files under fresh names, fsyncs them, then replaces ``manifest.json``
with ``os.replace``: that rename is the commit. A crash before it leaves the previous manifest
pointing at the previous, untouched files; leftovers are swept by the next save. (Swapping
whole folders cannot be atomic: a rename onto a non-empty folder fails.)
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import faiss
import numpy as np

from zoo.index.errors import IndexCorruptError, IndexFormatError

FORMAT, FORMAT_VERSION = "zoo.index", 1
MANIFEST = "manifest.json"


def versions() -> dict:
    import zoo

    return {"zoo": zoo.__version__, "faiss": faiss.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def save(path, index: faiss.Index, manifest: dict, ids: np.ndarray, alive: np.ndarray, metadata: dict) -> Path:
    """Write ``index`` + items + ``manifest`` to the folder ``path``; atomic per the module doc."""
    path = Path(path)
    if path.exists() and not (path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir()))):
        raise IndexFormatError(f"{path} exists and is not a zoo index folder: choose another path or remove it")
    if not path.exists():  # a brand-new folder appears whole: build it aside, then rename
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
        try:
            save(tmp, index, manifest, ids, alive, metadata)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path
    token = secrets.token_hex(4)
    names = {"index": f"index-{token}.faiss", "items": f"items-{token}.sqlite"}
    faiss.write_index(index, str(path / names["index"]))
    _write_items(path / names["items"], ids, alive, metadata)
    files = {}
    for key, name in names.items():
        _fsync(path / name)
        files[key] = {"name": name, "bytes": (path / name).stat().st_size, "sha256": _sha256(path / name)}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "versions": versions(), "files": files}
    tmp = path / f".{MANIFEST}.{token}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    _fsync(tmp)
    os.replace(tmp, path / MANIFEST)  # the commit point
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    keep = set(names.values()) | {MANIFEST}
    for f in path.iterdir():  # sweep files of earlier saves and of interrupted ones
        if f.name not in keep and (f.name.startswith(("index-", "items-")) or f.name.startswith(f".{MANIFEST}.")):
            f.unlink(missing_ok=True)
    return path


def read_manifest(path) -> dict:
    """The manifest of the index folder ``path``, checked for format and version."""
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
    if doc.get("format") != FORMAT:
        raise IndexFormatError(f"{path} holds format {doc.get('format')!r}, not {FORMAT!r}")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise IndexFormatError(f"{path} was written by a newer zoo (format v{doc['format_version']}); "
                               f"this zoo reads v{FORMAT_VERSION}: upgrade zoo")
    return doc


def load(path, verify: bool = True) -> tuple[dict, faiss.Index, np.ndarray, np.ndarray, dict]:
    """(manifest, FAISS index, ids and live flags by position, metadata by id) from ``path``.

    ``verify`` checks each file's SHA-256 against the manifest (about 1 s per GB).
    """
    path = Path(path)
    doc = read_manifest(path)
    files = {}
    for key in ("index", "items"):
        rec = (doc.get("files") or {}).get(key)
        if not rec:
            raise IndexCorruptError(f"{path}/{MANIFEST} lists no {key} file: the index is damaged; rebuild it")
        f = path / rec["name"]
        if not f.is_file():
            raise IndexCorruptError(f"{f} is missing: the index is damaged; rebuild it")
        if f.stat().st_size != rec["bytes"] or (verify and _sha256(f) != rec["sha256"]):
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
    if len(ids) != index.ntotal:
        raise IndexCorruptError(f"{path}: {index.ntotal} vectors but {len(ids)} item rows: rebuild the index")
    return doc, index, ids, alive, metadata
