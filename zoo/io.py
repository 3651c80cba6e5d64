"""The saved-folder format: a config with the SHA-256 of every file, written atomically.

A saved model is a folder::

    config.json          {"format": "zoo.model", "format_version": 3, "kind": "classifier",
                          "files": {"backbone.weights.h5": "<sha256>", ...},
                          "versions": {...}, ...the kind's own fields (zoo.tasks.base)}
    backbone.weights.h5, task.weights.h5, *.npy   (whatever the kind writes)

Every file is listed with its SHA-256 and checked on load; the folder is written aside and
swapped in (:func:`replace_dir`), so a crash never leaves a half-written model. ``zoo.load``
opens a folder through the class its kind registered (:mod:`zoo.tasks`), so no table of kinds
is kept here. Format v1 and v2 folders still load (each kind's ``load_legacy``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from zoo.errors import ChecksumMismatchError, SavedModelError

FORMAT = "zoo.model"
FORMAT_VERSION = 3          # the newest this zoo writes and reads
CONFIG_FILE = "config.json"
STALE_TEMP_SECONDS = 3600  # temp folders older than this are left-overs of a killed writer


# ---- files -----------------------------------------------------------------------------------
def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data: bytes | str):
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_dir(new: Path, dest: Path):
    """Swap folder ``new`` into ``dest``; the old folder survives until the new one is in place."""
    new, dest = Path(new), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(dest, old)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sweep_stale(parent: Path, name: str, max_age: float = STALE_TEMP_SECONDS):
    """Remove ``.{name}.tmp-*`` / ``.{name}.old-*`` left by writers killed more than ``max_age`` s ago."""
    now = time.time()
    for p in Path(parent).glob(f".{name}.*"):
        if (".tmp-" in p.name or ".old-" in p.name) and now - p.stat().st_mtime > max_age:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def library_versions() -> dict:
    import sys

    import zoo

    out = {"zoo": zoo.__version__, "python": sys.version.split()[0]}
    for mod in ("keras", "tensorflow", "numpy", "faiss"):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, "__version__"):
            out[mod] = m.__version__
    return out


def write_folder(path, kind: str, config: dict, files: dict, format_version: int = 2) -> Path:
    """Write a model folder atomically.

    ``files``: ``{name: bytes | str | dict | ndarray | callable(path)}``; a callable writes the
    file itself (e.g. ``keras_model.save_weights``). ``config`` gets format, kind, versions and
    the SHA-256 of every file.
    """
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        digests = {}
        for name, content in files.items():
            f = tmp / name
            if isinstance(content, dict):
                f.write_text(json.dumps(content, indent=2))
            elif isinstance(content, np.ndarray):
                with open(f, "wb") as fh:
                    np.save(fh, content, allow_pickle=False)
            elif callable(content):
                content(f)
            else:
                f.write_bytes(content.encode() if isinstance(content, str) else content)
            fsync_file(f)
            digests[name] = sha256_file(f)
        cfg = {"format": FORMAT, "format_version": format_version, "kind": kind, **config,
               "files": digests, "versions": library_versions()}
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
        fsync_file(tmp / CONFIG_FILE)
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# ---- reading ---------------------------------------------------------------------------------
def read_config(path, kind: str | None = None, error: type = SavedModelError) -> dict:
    """The folder's config, its kind normalised, every recorded file checked by SHA-256.

    Raises ``error`` (a :class:`SavedModelError`: missing/invalid config, unknown format, wrong
    kind, missing file) or :class:`ChecksumMismatchError`.
    """
    try:
        return _read_config(Path(path), kind)
    except SavedModelError as exc:
        if error is SavedModelError or isinstance(exc, error):
            raise
        raise error(str(exc)) from exc


def _read_config(path: Path, kind: str | None) -> dict:
    f = path / CONFIG_FILE
    if not path.is_dir():
        raise SavedModelError(f"{path} is not a folder written by save()")
    if not f.is_file():
        raise SavedModelError(f"{path} has no {CONFIG_FILE}: not a folder written by save()")
    try:
        cfg = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SavedModelError(f"{f} is not valid JSON ({exc}): save the model again") from exc
    if not isinstance(cfg, dict):
        raise SavedModelError(f"{f} must hold a JSON object")
    cfg = _upgrade(path, cfg)
    if kind is not None and cfg["kind"] != kind:
        raise SavedModelError(f"{path} holds a {cfg['kind']!r} model, not a {kind!r}")
    for name, digest in cfg["files"].items():
        fp = path / name
        if Path(name).name != name:
            raise SavedModelError(f"{f}: file name {name!r} must be a plain name inside the folder")
        if not fp.is_file():
            raise SavedModelError(f"{path} has no {name}: the folder is incomplete; save it again")
        if sha256_file(fp) != digest:
            raise ChecksumMismatchError(f"{fp} does not match the SHA-256 in {f}: the folder is corrupt "
                                        "or was edited; save it again")
    return cfg


def _upgrade(path: Path, cfg: dict) -> dict:
    """Bring a v1 config to the v2 shape (kind names, files with checksums)."""
    from zoo.kinds import canonical

    kind = cfg.get("kind")
    if not isinstance(kind, str):
        raise SavedModelError(f"{path}/{CONFIG_FILE} has no 'kind': not a folder written by save()")
    kind = canonical(kind)
    version = cfg.get("format_version", 1)
    if "format" in cfg and cfg["format"] != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise SavedModelError(f"{path} holds format {cfg.get('format')} v{version}; this zoo reads "
                              f"{FORMAT} up to v{FORMAT_VERSION}: upgrade zoo")
    cfg = {**cfg, "kind": kind}
    if version >= 2:
        if not isinstance(cfg.get("files"), dict):
            raise SavedModelError(f"{path}/{CONFIG_FILE} lists no files with checksums: save the model again")
        return cfg
    files = {}
    if kind in ("classifier", "backbone"):
        if not cfg.get("weights_sha256"):
            raise SavedModelError(f"{path}/{CONFIG_FILE} has no weights_sha256, so its weights cannot be "
                                  "verified: save the model again")
        files["model.weights.h5"] = cfg["weights_sha256"]
    cfg["files"] = files  # v1 recipe folders hold .npy arrays read without pickle
    return cfg


def require(cfg: dict, path, **types) -> dict:
    """Check that ``cfg`` has each key with the given type(s); a clear error otherwise."""
    for key, typ in types.items():
        if key not in cfg:
            raise SavedModelError(f"{path}/{CONFIG_FILE} is missing {key!r}: save the model again")
        if not isinstance(cfg[key], typ) or (typ is int and isinstance(cfg[key], bool)):
            want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise SavedModelError(f"{path}/{CONFIG_FILE}: {key!r} must be {want}, not "
                                  f"{type(cfg[key]).__name__}")
    return cfg


def load_folder(path, **kwargs):
    """Open any saved folder through the class its kind registered (:func:`zoo.kinds.get_kind`)."""
    from zoo.kinds import get_kind

    path = Path(path)
    cfg = read_config(path)
    return get_kind(cfg["kind"]).load(path, cfg, **kwargs)
