"""tensorflow-datasets by name, for every kind's reader (``zoo.tasks.<kind>.data.read_tfds``).

The first call downloads and prepares the dataset into ``data_dir`` (tfds's default,
``~/tensorflow_datasets``, unless given); later calls read the prepared files and need no
network. With ``ZOO_OFFLINE=1`` or ``download=False`` nothing is downloaded: a dataset that is not
prepared raises :class:`zoo.errors.DataError` saying what to do.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from zoo.errors import DataError, MissingDependencyError

log = logging.getLogger(__name__)

ALIASES = {"voc": "voc/2007", "coco": "coco/2017", "oxford_iiit_pet": "oxford_iiit_pet"}


def offline(download: bool) -> bool:
    return not download or os.environ.get("ZOO_OFFLINE", "") in ("1", "true", "yes")


def split_name(name: str) -> tuple[str, str]:
    """(supported base name, name for tfds.builder) from e.g. ``"voc"``, ``"voc/2012:5.0.0"``."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    base, _, version = name.strip().lower().partition(":")
    base = ALIASES.get(base, base)
    return base, base + (":" + version if version else "")


def load(full: str, split: str, data_dir, limit, download: bool, local: str):
    """(numpy example iterator, tfds DatasetInfo) of a prepared (or now prepared) dataset."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise MissingDependencyError("tensorflow-datasets is not installed: `pip install tensorflow-datasets`, "
                                     f"or read local files with {local}") from exc
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    try:
        builder = tfds.builder(full, data_dir=data_dir)
    except Exception as exc:  # unknown version or config, unreadable data_dir
        raise DataError(f"tensorflow-datasets has no dataset {full!r} ({exc})") from exc
    if not builder.is_prepared():
        where = builder.data_path
        if offline(download):
            why = "download=False" if not download else "ZOO_OFFLINE=1 is set"
            raise DataError(
                f"tensorflow-datasets {full!r} is not prepared in {where} and downloading is off ({why}). "
                f"Run once online (unset ZOO_OFFLINE, download=True) to download and prepare it, pass "
                f"data_dir= where it is already prepared, or read local files with {local}")
        try:
            builder.download_and_prepare()
        except Exception as exc:  # network, disk space, manual-download datasets, checksum errors
            raise DataError(
                f"tensorflow-datasets could not download and prepare {full!r} into {where} ({exc}). Check the "
                f"network and disk space, pass data_dir= where it is already prepared, or read local files "
                f"with {local}") from exc
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as exc:  # unknown split
        splits = sorted(builder.info.splits.keys()) if builder.info.splits else []
        raise DataError(f"tensorflow-datasets {full!r} has no split {split!r}"
                        f"{' (splits: ' + ', '.join(splits) + ')' if splits else ''}: {exc}") from exc
    if limit is not None:
        ds = ds.take(int(limit))
    return tfds.as_numpy(ds), builder.info


def text(v, default):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v) if v is not None and str(v) else default
