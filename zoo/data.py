"""Labelled image collections: folders, numpy arrays, tensorflow-datasets, Fashion-MNIST.

A :class:`LabeledImages` holds images (an array or file paths), integer labels and class
names; ``batches`` turns it into a parallel ``tf.data`` pipeline that decodes, resizes,
augments, batches and prefetches while the model runs.
"""
from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo import images as zimages
from zoo.errors import DataError, NoSplitError

log = logging.getLogger(__name__)
FASHION_MNIST_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class LabeledImages:
    """Images (array (N,H,W[,C]) or list of file paths) with int labels and class names.

    Pixels go through :mod:`zoo.images`' one converter; for a float array, whether it holds
    [0, 1] or [0, 255] values is decided once, over the whole array (``value_range``).
    """

    images: np.ndarray | list
    labels: np.ndarray
    class_names: list[str]
    value_range: str = "auto"

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        if self.labels.ndim != 1 or not np.issubdtype(self.labels.dtype, np.integer):
            raise DataError(f"labels must be a 1-D array of integer class ids; got {self.labels.dtype} "
                            f"shaped {self.labels.shape}")
        self.labels = self.labels.astype(np.int64)
        if isinstance(self.images, np.ndarray):
            if len(self.images):
                zimages.as_image_array(self.images)  # shape and dtype checked; stored as given
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"labels must be in 0..{len(self.class_names) - 1}")
        self._scale = None

    @property
    def pixel_scale(self) -> float:
        """The factor that takes this collection's raw values to [0, 255] (decided once)."""
        if self._scale is None:
            self._scale = zimages._array_scale(self.images, self.value_range) \
                if isinstance(self.images, np.ndarray) and len(self.images) else 1.0
        return self._scale

    def __len__(self):
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take(self, index) -> "LabeledImages":
        index = np.asarray(index)
        imgs = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        out = LabeledImages(imgs, self.labels[index], self.class_names, self.value_range)
        out._scale = self._scale if self._scale is not None else (self.pixel_scale if isinstance(imgs, np.ndarray) else None)
        return out

    def subset(self, per_class: int | None = None, total: int | None = None, seed: int = 0) -> "LabeledImages":
        """A stratified random subset: ``per_class`` images of each class, or ``total`` overall."""
        rng = np.random.default_rng(seed)
        if total is not None:
            per_class = max(1, total // self.num_classes)
        idx = np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[:per_class]
                              for c in range(self.num_classes)])
        return self.take(rng.permutation(idx))

    def split(self, fraction: float = 0.1, seed: int = 0) -> tuple["LabeledImages", "LabeledImages"]:
        """(rest, held-out) with ``fraction`` of each class held out."""
        rng = np.random.default_rng(seed)
        held = []
        for c in range(self.num_classes):
            idx = rng.permutation(np.flatnonzero(self.labels == c))
            held.append(idx[: max(1, int(round(len(idx) * fraction)))] if len(idx) > 1 else idx[:0])
        held = np.concatenate(held)
        rest = np.setdiff1d(np.arange(len(self)), held)
        return self.take(rng.permutation(rest)), self.take(held)

    def batches(self, size: int, batch_size: int = 64, shuffle: bool = False, augment=None,
                seed: int = 0, repeat: bool = False) -> tf.data.Dataset:
        """``(images float32 [0,255] (B,size,size,3), labels)`` batches."""
        if isinstance(self.images, np.ndarray):
            scale = self.pixel_scale
            ds = tf.data.Dataset.from_tensor_slices((self.images, self.labels))
            if shuffle:
                ds = ds.shuffle(min(len(self), 20000), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size).map(lambda a, y: (zimages.dataset_pixels(a, scale, size), y),
                                          num_parallel_calls=tf.data.AUTOTUNE)
        else:
            src = zimages.from_files(self.images, size, batch_size=1)
            keep = {p: i for i, p in enumerate(map(str, self.images))}
            labels = tf.constant(self.labels[[keep[p] for p in src.sources]])
            ds = src.dataset.unbatch().map(lambda i, img: (img, tf.gather(labels, i)))
            if shuffle:
                ds = ds.shuffle(min(len(self), 5000), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size)
        if augment is not None:
            ds = ds.map(lambda a, y: (augment(a, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


class DatasetImages:
    """Adapter giving a ``tf.data.Dataset`` of (image, label) the LabeledImages interface."""

    def __init__(self, ds: tf.data.Dataset, class_names, value_range: str = "auto"):
        self.ds, self.class_names, self.value_range = ds, list(class_names), value_range
        self._scale = None
        spec = ds.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise DataError("a training dataset must yield (image, label) pairs")
        self._batched = spec[0].shape.rank == 4 or (spec[0].shape.rank == 3 and spec[1].shape.rank == 1)

    @property
    def pixel_scale(self) -> float:
        """Raw values -> [0, 255], decided once from the first elements (see zoo.images)."""
        if self._scale is None:
            self._scale = zimages.dataset_scale(self.ds, self.value_range)
        return self._scale

    @property
    def num_classes(self):
        return len(self.class_names)

    def batches(self, size, batch_size=64, shuffle=False, augment=None, seed=0, repeat=False):
        ds = self.ds.unbatch() if self._batched else self.ds
        if shuffle:
            ds = ds.shuffle(5000, seed=seed)
        if repeat:
            ds = ds.repeat()
        scale = self.pixel_scale
        ds = ds.batch(batch_size).map(lambda a, y: (zimages.dataset_pixels(a, scale, size), tf.cast(y, tf.int64)))
        if augment is not None:
            ds = ds.map(lambda a, y: (augment(a, training=True), y))
        return ds.prefetch(tf.data.AUTOTUNE)

    def __len__(self):
        n = self.ds.cardinality().numpy()
        if n < 0:
            n = sum(1 for _ in (self.ds.unbatch() if self._batched else self.ds))
        elif self._batched:
            n = sum(1 for _ in self.ds.unbatch())
        return int(n)


def as_labeled(d, class_names=None):
    """LabeledImages or DatasetImages from any supported training-data form."""
    if isinstance(d, (LabeledImages, DatasetImages)):
        return d
    if isinstance(d, tf.data.Dataset):
        names = class_names or getattr(d, "class_names", None)
        if names is None:
            ys = np.concatenate([np.atleast_1d(y.numpy()) for _, y in d])
            names = [str(i) for i in range(int(ys.max()) + 1)]
        return DatasetImages(d, names)
    if isinstance(d, tuple) and len(d) == 2:
        return from_arrays(d[0], d[1], class_names)
    if isinstance(d, (str, Path)):
        return load(d)
    raise DataError(f"cannot use {type(d).__name__} as labelled data: pass zoo.data.LabeledImages, "
                    "(x, y) arrays, a tf.data.Dataset of (image, label), a folder or 'fashion_mnist'")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        magic, = struct.unpack(">I", f.read(4))
        ndim = magic & 0xFF
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {np.prod(shape)} values, found {data.size}")
    return data.reshape(shape)


def fashion_mnist(split: str = "train", data_dir=None) -> LabeledImages:
    """Fashion-MNIST (70k 28x28 grayscale, 10 classes) from the Debian package's files
    (``apt-get install dataset-fashion-mnist``) or ``data_dir``; falls back to
    tensorflow-datasets when online."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    dirs = ([Path(data_dir)] if data_dir else []) + FASHION_MNIST_DIRS
    if os.environ.get("ZOO_FASHION_MNIST"):
        dirs.insert(0, Path(os.environ["ZOO_FASHION_MNIST"]))
    for d in dirs:
        for ext in (".gz", ""):
            xi, yi = d / f"{prefix}-images-idx3-ubyte{ext}", d / f"{prefix}-labels-idx1-ubyte{ext}"
            if xi.is_file() and yi.is_file():
                return LabeledImages(_read_idx(xi), _read_idx(yi), list(FASHION_MNIST_CLASSES))
    try:
        return from_tfds("fashion_mnist", split=split, data_dir=data_dir)
    except DataError as exc:
        looked = ", ".join(str(d) for d in dirs)
        raise DataError(f"Fashion-MNIST not found in {looked}, and tensorflow-datasets failed ({exc}). "
                        "Install it with `apt-get install dataset-fashion-mnist` or pass data_dir=") from exc


def from_tfds(name: str, split: str = "train", data_dir=None, download: bool | None = None) -> LabeledImages:
    """A tensorflow-datasets image classification dataset as numpy (small datasets only)."""
    import tensorflow_datasets as tfds

    if download is None:
        download = os.environ.get("ZOO_OFFLINE", "") not in ("1", "true", "yes")
    try:
        ds, info = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True,
                             with_info=True, download=download, batch_size=-1)
    except Exception as exc:  # tfds raises many types (network, missing files, unknown name)
        raise DataError(f"tensorflow-datasets could not load {name!r} split {split!r}: {exc}") from exc
    x, y = tfds.as_numpy(ds)
    names = info.features["label"].names if "label" in info.features else [str(i) for i in range(int(y.max()) + 1)]
    return LabeledImages(x, y, list(names))


def image_folder(root) -> LabeledImages:
    """Class-per-subfolder images: ``root/<class>/<image>``. Class names are sorted folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders; expected {root}/<class>/<image files>")
    paths, labels = [], []
    for i, c in enumerate(classes):
        files = zimages.list_image_files(root / c)
        paths += [str(p) for p in files]
        labels += [i] * len(files)
    if not paths:
        raise DataError(f"no image files under {root}/<class>/")
    return LabeledImages(paths, np.array(labels), classes)


def from_arrays(x, y, class_names=None) -> LabeledImages:
    y = np.asarray(y)
    return LabeledImages(np.asarray(x), y, list(class_names) if class_names is not None
                         else [str(i) for i in range(int(y.max()) + 1)])


def load(spec, split: str = "train", data_dir=None) -> LabeledImages:
    """``"fashion_mnist"``, ``"tfds:<name>"``, or a class-per-subfolder directory."""
    if isinstance(spec, LabeledImages):
        return spec
    s = str(spec)
    if s in ("fashion_mnist", "fashion-mnist", "fmnist"):
        return fashion_mnist(split, data_dir)
    if s.startswith("tfds:"):
        return from_tfds(s[5:], split, data_dir)
    p = Path(s)
    if p.is_dir():
        sub = p / split
        if sub.is_dir():
            return image_folder(sub)
        if any((p / name).is_dir() for name in ("train", "test", "val")) or split != "train":
            raise NoSplitError(f"{p} has no {split}/ subfolder: hold out part of the training images "
                               "(LabeledImages.split) rather than test on images the model trained on")
        return image_folder(p)
    raise DataError(f"unknown dataset {s!r}: give 'fashion_mnist', 'tfds:<name>' or a folder of class subfolders")


# ---- named demo datasets (plugins) -------------------------------------------------------------------
DATASET_GROUP = "zoo.datasets"  # entry points: name -> callable(kind, **settings) -> (train, val)


def named_datasets() -> list[str]:
    """Demo datasets other packages provide by name (e.g. ``scenes`` from the recipes), for the CLI."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=DATASET_GROUP)})


def named_dataset(name: str, kind: str, **settings):
    """``(train, val)`` of a named demo dataset for a kind ("detector", "segmenter", "multilabel")."""
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group=DATASET_GROUP)}
    if name not in eps:
        raise DataError(f"no demo dataset {name!r} (known: {', '.join(sorted(eps)) or 'none installed'})")
    return eps[name].load()(kind, **settings)
