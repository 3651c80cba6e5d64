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
from zoo.errors import DataError

log = logging.getLogger(__name__)
FASHION_MNIST_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class LabeledImages:
    """Images (uint8 array (N,H,W[,C]) or list of file paths) with int labels and class names."""

    images: np.ndarray | list
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"labels must be in 0..{len(self.class_names) - 1}")

    def __len__(self):
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take(self, index) -> "LabeledImages":
        index = np.asarray(index)
        imgs = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        return LabeledImages(imgs, self.labels[index], self.class_names)

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
            x = self.images
            if x.ndim == 3:
                x = x[..., None]
            ds = tf.data.Dataset.from_tensor_slices((x, self.labels))
            if shuffle:
                ds = ds.shuffle(min(len(self), 20000), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size).map(lambda a, y: (_to_rgb_batch(a, size), y),
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


def _to_rgb_batch(a, size):
    a = tf.cast(a, tf.float32)
    if a.shape[-1] == 1:
        a = tf.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:
        a = a[..., :3]
    return tf.image.resize(a, (size, size))


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
        return image_folder(sub if sub.is_dir() else p)
    raise DataError(f"unknown dataset {s!r}: give 'fashion_mnist', 'tfds:<name>' or a folder of class subfolders")
