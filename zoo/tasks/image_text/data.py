"""Image-caption pairs: from a CSV or JSONL file of image,caption rows, or arrays."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import DataError


@dataclass
class Pairs:
    """Images (array or file paths) with one caption each (and optional integer labels)."""

    images: object
    captions: list
    labels: np.ndarray | None = None

    def __post_init__(self):
        self.captions = [str(c).strip() for c in self.captions]
        if len(self.images) != len(self.captions):
            raise DataError(f"{len(self.images)} images but {len(self.captions)} captions")
        if not self.captions:
            raise DataError("no image-caption pairs")
        empty = [i for i, c in enumerate(self.captions) if not c]
        if empty:
            raise DataError(f"{len(empty)} empty captions (first at row {empty[0]}): give every image a caption")
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if len(self.labels) != len(self.captions):
                raise DataError(f"{len(self.labels)} labels for {len(self.captions)} pairs")

    def __len__(self):
        return len(self.captions)

    def take(self, rows) -> "Pairs":
        rows = np.asarray(rows, int)
        imgs = self.images[rows] if isinstance(self.images, np.ndarray) else [self.images[i] for i in rows]
        return Pairs(imgs, [self.captions[i] for i in rows], None if self.labels is None else self.labels[rows])


def _path_key(row: dict, keys) -> str | None:
    for k in keys:
        if row.get(k) not in (None, ""):
            return str(row[k])
    return None


def read_pairs(source, images_dir=None, captions=None, labels=None) -> Pairs:
    """Image-caption pairs from a CSV (header with ``image``/``path``/``file`` and ``caption``/``text``
    columns, optional ``label``), a JSONL file (one object per line, same keys), or arrays:
    ``read_pairs(images, captions=[...])``. Relative paths are taken from ``images_dir`` (default: the
    file's folder); missing image files are an error that names the first."""
    if isinstance(source, Pairs):
        return source
    if captions is not None:
        return Pairs(source if isinstance(source, np.ndarray) else list(source), list(captions), labels)
    p = Path(source)
    if not p.is_file():
        raise DataError(f"{p} is not a file: pass a CSV or JSONL of image,caption rows, or arrays with captions=")
    if p.suffix.lower() == ".csv":
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif p.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{p}:{n} is not valid JSON ({exc})") from exc
    else:
        raise DataError(f"{p}: pairs are read from .csv or .jsonl files")
    base = Path(images_dir) if images_dir is not None else p.parent
    paths, caps, labs = [], [], []
    for n, row in enumerate(rows, 1):
        img = _path_key(row, ("image", "path", "file", "filename"))
        cap = _path_key(row, ("caption", "text"))
        if img is None or cap is None:
            raise DataError(f"{p} row {n}: needs an image (column image/path/file) and a caption (caption/text)")
        paths.append(str(Path(img) if Path(img).is_absolute() else base / img))
        caps.append(cap)
        labs.append(row.get("label"))
    if not paths:
        raise DataError(f"{p} holds no pairs")
    missing = [x for x in paths if not Path(x).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(paths)} image files in {p} do not exist (first: {missing[0]}): "
                        "check images_dir")
    has_labels = all(v not in (None, "") for v in labs)
    return Pairs(paths, caps, np.asarray(labs) if has_labels else None)
