"""Checkpoint folders: keras-hub presets, Hugging Face transformers and timm checkpoints.

A registry entry whose ``WeightFile.format`` is ``"hub_folder"`` takes a folder holding one of:

- a keras-hub preset: ``config.json`` (with ``registered_name``) + ``model.weights.h5``, e.g. what
  ``backbone.save_to_preset(dir)`` writes or keras-hub downloads from Kaggle;
- a Hugging Face transformers checkpoint: ``config.json`` (with ``model_type``) + ``model.safetensors``;
- a timm checkpoint as timm pushes it to the Hugging Face hub: ``config.json`` (with
  ``architecture``) + ``model.safetensors``.

Only safetensors and Keras' HDF5 are read: a folder with nothing but ``pytorch_model.bin`` or a
``.pth`` pickle is refused with how to convert it (unpickling runs code).

The folder is found as single files are (:func:`zoo.weights.resolve.resolve`): an explicit path;
the project cache ``$ZOO_HOME/weights/<name>/``; keras-hub's caches (kagglehub's
``~/.cache/kagglehub/models/...`` for Kaggle presets, the Hugging Face cache for ``hf://``
handles); then a download of the preset into the project cache (skipped with ``ZOO_OFFLINE=1``).
Upstream publishes no checksums for these folders, so a download records the SHA-256 of every
file in ``zoo-weights.json`` and later loads verify against it; a registry record with a known
``file_hash`` pins the main weight file as well.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from zoo.errors import ChecksumMismatchError, WeightsFormatError, WeightsNotFoundError
from zoo.entry import ModelEntry, WeightFile

log = logging.getLogger(__name__)
MANIFEST = "zoo-weights.json"
CONFIG = "config.json"
WEIGHT_FILES = ("model.weights.h5", "model.safetensors", "model.safetensors.index.json",
                "open_clip_model.safetensors")
PICKLES = ("pytorch_model.bin", "model.pth", "pytorch_model.pth", "model.pt", "open_clip_pytorch_model.bin")
_VERIFIED: dict[tuple, str] = {}


# ---- where a folder may be ----------------------------------------------------------------------
def _kagglehub_folder(handle: str) -> Path | None:
    """kagglehub's cache folder of ``kaggle://owner/model/framework/variation/version``."""
    parts = handle.removeprefix("kaggle://").split("/")
    if len(parts) != 5:
        return None
    base = Path(os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub")).expanduser()
    owner, model, framework, variation, version = parts
    return base / "models" / owner / model / framework / variation / version


def _hf_cache_folder(handle: str) -> Path | None:
    """The newest snapshot of ``hf://org/name`` in the Hugging Face cache (None if never downloaded)."""
    repo = handle.removeprefix("hf://")
    home = os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")
    base = Path(os.environ.get("HF_HUB_CACHE", Path(home) / "hub")).expanduser()
    snaps = base / f"models--{repo.replace('/', '--')}" / "snapshots"
    found = sorted((p for p in snaps.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if snaps.is_dir() else []
    return found[-1] if found else snaps


def folder_candidates(wf: WeightFile) -> list[tuple[str, Path | None]]:
    """(description, folder) of every local place a checkpoint folder may be, in search order."""
    from zoo.weights.paths import zoo_home

    out = [("project cache", zoo_home() / "weights" / wf.filename)]
    handle = wf.url or ""
    if handle.startswith("kaggle://"):
        out.append(("keras-hub's Kaggle cache", _kagglehub_folder(handle)))
    elif handle.startswith("hf://"):
        out.append(("the Hugging Face cache", _hf_cache_folder(handle)))
    return out


# ---- what a folder holds ------------------------------------------------------------------------
def is_checkpoint_folder(path) -> bool:
    return path is not None and Path(path).is_dir() and (Path(path) / CONFIG).is_file() and any(
        (Path(path) / f).is_file() for f in WEIGHT_FILES)


def read_config(folder: Path) -> dict:
    try:
        with open(folder / CONFIG, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as exc:
        raise WeightsFormatError(f"{folder / CONFIG} is not readable JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise WeightsFormatError(f"{folder / CONFIG} is not a JSON object")
    return cfg


def layout(folder) -> str:
    """``"keras_hub"``, ``"transformers"`` or ``"timm"``; a clear error for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsNotFoundError(f"checkpoint folder {folder} does not exist")
    if not (folder / CONFIG).is_file():
        raise WeightsFormatError(f"{folder} has no {CONFIG}: pass a keras-hub preset folder, or a Hugging Face "
                                 "or timm checkpoint folder (config.json + model.safetensors)")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        pickles = [f for f in PICKLES if (folder / f).is_file()] + [p.name for p in folder.glob("*.pth")]
        if pickles:
            raise WeightsFormatError(
                f"{folder} holds only {pickles[0]}, a pickle, which zoo does not unpickle (loading it can run code). "
                "Convert it once where you trust it: `from safetensors.torch import save_file; "
                f"save_file(torch.load('{pickles[0]}', weights_only=True), 'model.safetensors')`, "
                "or download the repository's model.safetensors")
        raise WeightsFormatError(f"{folder} has no weight file (one of {', '.join(WEIGHT_FILES)})")
    cfg = read_config(folder)
    if "registered_name" in cfg:
        return "keras_hub"
    if "model_type" in cfg:
        return "transformers"
    if "architecture" in cfg:
        return "timm"
    raise WeightsFormatError(f"{folder / CONFIG} is neither a keras-hub preset (registered_name), a Hugging Face "
                             "config (model_type) nor a timm config (architecture)")


# ---- checksums ----------------------------------------------------------------------------------
def write_manifest(folder: Path, source: str):
    from zoo.weights.paths import file_digest

    files = {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=1))


def verify_folder(folder: Path, wf: WeightFile) -> Path:
    """Check the files against the folder's manifest (written when zoo downloaded it) and the
    registry's hash of the main weight file, when known. Memoised per file size and mtime."""
    from zoo.weights.paths import file_digest

    expected = {}
    if (folder / MANIFEST).is_file():
        try:
            expected = dict(json.loads((folder / MANIFEST).read_text())["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ChecksumMismatchError(f"{folder / MANIFEST} is damaged ({exc}): delete the folder and download "
                                        "it again") from None
    if wf.file_hash:
        main = next((f for f in WEIGHT_FILES if (folder / f).is_file()), None)
        if main:
            expected[main] = wf.file_hash
    for name, digest in expected.items():
        p = folder / name
        if not p.is_file():
            raise ChecksumMismatchError(f"{p} is missing from {folder}, whose manifest lists it: delete the folder "
                                        "and supply it again")
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        if _VERIFIED.get(key) == digest:
            continue
        actual = file_digest(p, "sha256" if len(digest) == 64 else "md5")
        if actual != digest:
            raise ChecksumMismatchError(f"{p} has sha256 {actual}, but {digest} was recorded for it: the file is "
                                        f"corrupt or was replaced; delete {folder} and supply it again")
        _VERIFIED[key] = digest
    if not expected:
        log.info("%s has no recorded checksums; loading it unverified", folder)
    return folder


# ---- download -----------------------------------------------------------------------------------
def download_folder(handle: str, dest: Path) -> Path:
    """Fetch a keras-hub preset (``kaggle://...``) or ``hf://`` repository into ``dest`` with a manifest."""
    if handle.startswith("kaggle://"):
        import kagglehub

        src = Path(kagglehub.model_download(handle.removeprefix("kaggle://")))
    elif handle.startswith("hf://"):
        from zoo.extras import require

        snapshot_download = require("huggingface_hub", "downloading hf:// checkpoints").snapshot_download
        src = Path(snapshot_download(handle.removeprefix("hf://"),
                                     allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "assets/*"]))
    else:
        raise OSError(f"no way to download {handle!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".part-"))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        write_manifest(tmp, handle)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_folder(entry: ModelEntry, path=None, download: bool | None = None) -> Path:
    """A verified local checkpoint folder for ``entry``, or WeightsNotFoundError saying where it looked."""
    from zoo.weights.paths import zoo_home

    wf = entry.weights
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file() and p.name in (CONFIG, *WEIGHT_FILES):
            p = p.parent
        layout(p)  # a clear error for a missing folder, a pickle or an unknown layout
        return verify_folder(p, wf)
    looked = []
    for what, p in folder_candidates(wf):
        looked.append(f"  - {what}: {p if p else '-'}")
        if is_checkpoint_folder(p):
            return verify_folder(p, wf)
    if download is None:
        download = os.environ.get("ZOO_OFFLINE", "") not in ("1", "true", "yes")
    dest = zoo_home() / "weights" / wf.filename
    if download and wf.url:
        try:
            log.info("downloading %s from %s", entry.full_name, wf.url)
            return verify_folder(download_folder(wf.url, dest), wf)
        except Exception as exc:  # noqa: BLE001 - kagglehub / huggingface_hub raise their own types
            looked.append(f"  - download {wf.url}: failed ({type(exc).__name__}: {exc})")
    else:
        looked.append(f"  - download {wf.url or '(no source)'}: skipped (offline)")
    raise WeightsNotFoundError(
        f"no weights for {entry.full_name}. Looked in:\n" + "\n".join(looked)
        + f"\nTo fix: pass weights='/path/to/folder' holding a keras-hub preset (config.json + model.weights.h5) "
          f"or a Hugging Face / timm checkpoint of {entry.source or entry.name} (config.json + model.safetensors), "
          f"or put that folder at {dest}"
        + (f", or go online (unset ZOO_OFFLINE) to download {wf.url}" if wf.url else "")
        + ". Use weights=None for a randomly initialised model."
    )
