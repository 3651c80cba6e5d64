"""Multi-label data: images with an (N, C) 0/1 matrix of the classes each shows."""
from __future__ import annotations

import numpy as np

from zoo.data import LabeledImages
from zoo.errors import DataError


class MultiLabelImages(LabeledImages):
    """Images (array or file paths) with ``labels`` (N, C) of 0/1 and the C class names; batches
    come from :meth:`zoo.data.LabeledImages.batches` (the same pixel path) with the rows as targets."""

    def __post_init__(self):
        y = np.asarray(self.labels)
        if y.ndim != 2 or y.shape[1] != len(self.class_names):
            raise DataError(f"multi-label targets must be (N, {len(self.class_names)}) for classes "
                            f"{self.class_names[:4]}...; got shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise DataError("multi-label targets must be 0 or 1")
        if len(self.images) != len(y):
            raise DataError(f"{len(self.images)} images but {len(y)} label rows")
        self.labels = y.astype(np.float32)
        self._scale = None

    def take(self, index) -> "MultiLabelImages":
        index = np.asarray(index)
        imgs = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        out = MultiLabelImages(imgs, self.labels[index], self.class_names, self.value_range)
        out._scale = self._scale
        return out

    def split(self, fraction: float = 0.1, seed: int = 0):
        """(rest, held-out) at random (classes overlap, so no stratification)."""
        order = np.random.default_rng(seed).permutation(len(self))
        k = max(1, int(round(fraction * len(self))))
        return self.take(order[k:]), self.take(order[:k])

    def subset(self, per_class=None, total=None, seed: int = 0) -> "MultiLabelImages":
        n = total if total is not None else per_class * len(self.class_names)
        return self.take(np.random.default_rng(seed).permutation(len(self))[:n])


def as_multilabel(d, class_names=None) -> MultiLabelImages:
    """MultiLabelImages from itself, ``(images, targets[, class_names])`` where targets are an
    (N, C) 0/1 array or per-image lists of class names, or objects with ``images``, ``labels``
    (per image, the class ids it shows, as the demo scenes) and ``class_names``."""
    if isinstance(d, MultiLabelImages):
        return d
    if isinstance(d, tuple) and len(d) in (2, 3):
        images, targets = d[0], d[1]
        names = list(d[2]) if len(d) == 3 else (list(class_names) if class_names is not None else None)
        return MultiLabelImages(images, multi_hot(targets, names), names or _names_of(targets))
    if all(hasattr(d, a) for a in ("images", "labels", "class_names")):
        names = list(class_names or d.class_names)
        rows = [np.asarray(lab).reshape(-1).astype(int).tolist() for lab in d.labels]
        return MultiLabelImages(d.images, multi_hot(rows, names, ids=True), names)
    raise DataError(f"cannot use {type(d).__name__} as multi-label data: pass (images, targets) with targets an "
                    "(N, C) 0/1 array or lists of class names, or objects with images, labels and class_names")


def _names_of(targets) -> list:
    t = np.asarray(targets) if not isinstance(targets, list) else None
    if t is not None and t.ndim == 2:
        return [str(i) for i in range(t.shape[1])]
    return sorted({str(n) for row in targets for n in row})


def multi_hot(targets, class_names=None, ids: bool = False) -> np.ndarray:
    """(N, C) float32 0/1 from an (N, C) array, per-image lists of class names, or (``ids``) of class ids."""
    if not isinstance(targets, list) or (targets and isinstance(targets[0], np.ndarray) and targets[0].ndim == 1
                                         and not ids and targets[0].dtype.kind in "fiub"):
        t = np.asarray(targets)
        if t.ndim == 2:
            return t.astype(np.float32)
    names = list(class_names) if class_names is not None else _names_of(targets)
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(targets), len(names)), np.float32)
    for r, row in enumerate(targets):
        for v in row:
            key = int(v) if ids else str(v)
            c = key if ids else index.get(key)
            if c is None or not 0 <= c < len(names):
                raise DataError(f"image {r}: label {v!r} is not one of the classes {names[:6]}...")
            out[r, c] = 1.0
    return out


def read_csv(path) -> MultiLabelImages:
    """A CSV with a header naming a ``path`` (or ``image``/``file``) column and a ``labels`` column of
    class names separated by ``|`` (empty: none); relative paths are taken from the CSV's folder.
    Class names are the sorted names found."""
    import csv
    from pathlib import Path

    p = Path(path)
    if not p.is_file() or p.suffix.lower() != ".csv":
        raise DataError(f"{p}: give a .csv with columns path,labels (labels separated by '|')")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    key = next((k for k in ("path", "image", "file") if rows and k in rows[0]), None)
    if key is None or "labels" not in rows[0]:
        raise DataError(f"{p}: needs a header with a path column and a labels column")
    files = [str(Path(r[key]) if Path(r[key]).is_absolute() else p.parent / r[key]) for r in rows]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(files)} images in {p} do not exist (first: {missing[0]})")
    targets = [[v.strip() for v in (r["labels"] or "").split("|") if v.strip()] for r in rows]
    return MultiLabelImages(files, multi_hot(targets), _names_of(targets))
