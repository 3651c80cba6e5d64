"""Models, data, indexes and recipes the pages share, cached with ``st.cache_resource``.

Slow things are done once per server process and, where it takes more than a few seconds, once
per machine: the Fashion-MNIST index and the verification threshold are saved under
``$ZOO_HOME/apps`` (default ``~/.cache/zoo/apps``) and re-checked against the model's
fingerprint when read back.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from apps.ui import cache_dir, display, pixelated

log = logging.getLogger("apps")

DEFAULT_MODEL = "efficientnet_lite0"
SMALL_SIZE = 96                 # Fashion-MNIST is 28x28: 96 px keeps the first index build to seconds
FMNIST_PER_CLASS = 200          # the bundled collection: 2,000 test images
VERIFY_CAL_PER_CLASS = 30       # calibration images per Fashion-MNIST class for the Verify threshold
VERIFY_CAL_PAIRS = 4000
VERIFY_FAR = 0.01


# ---- models and data --------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def model(name: str = DEFAULT_MODEL, input_size: int | None = None):
    """A shared, read-only ZooModel (fine-tuning loads its own copy: it changes the weights)."""
    import zoo

    return zoo.load(name, input_size=input_size)


@st.cache_resource(show_spinner=False)
def pretrained_names() -> list[str]:
    """Registry names whose weights are on this machine, default model first."""
    import zoo

    names = zoo.list_models(pretrained=True)
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


@st.cache_resource(show_spinner=False)
def gradcam(name: str):
    from zoo.explain import GradCAM

    return GradCAM(model(name))


@st.cache_resource(show_spinner=False)
def fmnist(split: str):
    from zoo import data

    return data.fashion_mnist(split)


@st.cache_resource(show_spinner=False)
def fmnist_subset(split: str, per_class: int, seed: int = 0):
    return fmnist(split).subset(per_class=per_class, seed=seed)


# ---- similarity collections -------------------------------------------------------------------
@dataclass
class Collection:
    """An index plus how to show its items."""

    title: str
    index: object
    thumb: Callable[[int], np.ndarray | None]
    caption: Callable[[int, dict], str]
    label_of: Callable[[dict], str | None] = field(default=lambda meta: (meta or {}).get("label"))
    skipped: list = field(default_factory=list)  # (path, reason) of files left out


def _index_is_current(path: Path, m) -> object | None:
    import zoo.index

    if not (path / "manifest.json").is_file():
        return None
    try:
        return zoo.index.load(path, model=m)
    except zoo.index.ZooIndexError as exc:  # another model version, damaged files: rebuild
        log.warning("rebuilding %s: %s", path, exc)
        return None


@st.cache_resource(show_spinner=False)
def fmnist_collection(name: str = DEFAULT_MODEL, size: int = SMALL_SIZE, per_class: int = FMNIST_PER_CLASS):
    """The bundled collection: ``per_class`` Fashion-MNIST test images per class, indexed once."""
    import zoo.index

    m = model(name, size)
    sub = fmnist_subset("test", per_class)
    path = cache_dir("indexes") / f"fashion_mnist-test-{per_class}pc-{name}-{size}.zidx"
    idx = _index_is_current(path, m)
    if idx is None or len(idx) != len(sub):
        meta = [{"label": sub.class_names[y], "class": int(y), "item": i} for i, y in enumerate(sub.labels)]
        idx = zoo.index.build(sub.images, model=m, metadata=meta, progress=False, out=path, overwrite=True)
    images = sub.images
    return Collection(
        title=f"Fashion-MNIST: {len(sub):,} test images ({per_class} per class), {name} at {size}px",
        index=idx,
        thumb=lambda i: pixelated(images[int(i)], 3),
        caption=lambda i, meta: f"#{int(i)} {meta.get('label', '')}",
    )


def folder_key(folder: Path, size: int, name: str) -> str:
    return hashlib.sha256(f"{folder.resolve()}|{name}|{size}".encode()).hexdigest()[:16]


def listing_digest(files) -> str:
    """Changes when a file is added, removed or rewritten (path, size, mtime)."""
    h = hashlib.sha256()
    for f in sorted(files):
        try:
            s = Path(f).stat()
            h.update(f"{f}|{s.st_size}|{s.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}|gone\n".encode())
    return h.hexdigest()


def upload_collection(loaded, size: int, name: str = DEFAULT_MODEL) -> Collection:
    """A small exact index of uploaded images (``ui.Loaded``), private to the visitor's session:
    rebuilt on every run from embeddings cached by content."""
    import zoo.index

    vectors = np.stack([embed_one(x.image, name, size) for x in loaded])
    idx = zoo.index.from_embeddings(vectors, [{"name": x.name} for x in loaded], model=model(name, size),
                                    index_type="Flat")
    thumbs = [display(x.image, 192) for x in loaded]
    return Collection(title=f"{len(loaded)} uploaded images, {name} at {size}px", index=idx,
                      thumb=lambda i: thumbs[int(i)], caption=lambda i, meta: meta.get("name", f"#{int(i)}"),
                      label_of=lambda meta: None)


@st.cache_resource(show_spinner=False, max_entries=4)
def folder_collection(folder: str, size: int, name: str = DEFAULT_MODEL, files_digest: str = "",
                      root: str | None = None):
    """An index of a folder of images (built once, saved on disk) or a saved ``.zidx`` index.

    With ``root`` (``apps.serving``), files that resolve outside it are neither indexed nor shown.
    """
    import zoo.index
    from zoo.images import list_image_files

    from apps.serving import inside
    from zoo.io import atomic_write

    p = Path(folder).expanduser()
    allowed = (lambda f: inside(f, Path(root))) if root else (lambda f: True)
    skipped: list = []
    if (p / "manifest.json").is_file():  # a saved index: its own model
        from apps.serving import check_index_model

        idx = check_index_model(zoo.index.load(p), Path(root) if root else None)
        title = f"index {p} ({len(idx):,} items, {idx.model_info['name'] if idx.model_info else 'raw vectors'})"
    else:
        m = model(name, size)
        files = [str(f) for f in list_image_files(p) if allowed(f)]
        if not files:
            from zoo.errors import ImageError

            raise ImageError(f"no image files under {p}")
        path = cache_dir("indexes") / f"folder-{folder_key(p, size, name)}.zidx"
        source = path.with_name(path.name + ".source.json")  # which files the saved index covers
        digest = listing_digest(files)
        idx = _index_is_current(path, m)
        record = json.loads(source.read_text()) if idx is not None and source.is_file() else {}
        if record.get("files") != digest:
            idx = zoo.index.build(files, model=m, out=path, overwrite=True, progress=False)
            skipped = [(str(f), str(why)) for f, why in idx.build_report.skipped]
            atomic_write(source, json.dumps({"folder": str(p.resolve()), "files": digest, "skipped": skipped}))
        else:
            skipped = [tuple(s) for s in record.get("skipped", [])]
        title = f"folder {p} ({len(idx):,} images), {name} at {size}px"
    meta_of = {}

    def thumb(i):
        path = meta_of.setdefault(int(i), (idx.metadata([i])[0] or {}).get("path"))
        return file_thumbnail(path) if path and allowed(path) else None

    return Collection(title=title, index=idx, thumb=thumb,
                      caption=lambda i, meta: Path(meta.get("path", f"#{i}")).name,
                      label_of=lambda meta: Path(meta["path"]).parent.name if meta and meta.get("path") else None,
                      skipped=skipped)


@st.cache_data(show_spinner=False, max_entries=2000)
def file_thumbnail(path: str, side: int = 192) -> np.ndarray | None:
    from zoo.errors import ImageError
    from zoo.images import read_image

    try:
        return display(read_image(path), side)
    except ImageError:
        return None


# ---- few-shot ---------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def fewshot_bundled(k_shot: int, classes: tuple[int, ...], seed: int = 0, name: str = DEFAULT_MODEL,
                    size: int = SMALL_SIZE):
    """A k-NN few-shot classifier on ``k_shot`` Fashion-MNIST training images per class.

    Returns (classifier, support images, support labels (names), support embeddings).
    """
    from recipes.fewshot import KNNClassifier

    m = model(name, size)
    train = fmnist("train")
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), k_shot, replace=False) for c in classes])
    images = train.images[rows]
    labels = np.array([train.class_names[c] for c in train.labels[rows]])
    emb = m.embed(images, progress=False)
    knn = KNNClassifier(model=m, k=5).fit(emb, labels)
    return knn, images, labels, emb


@st.cache_resource(show_spinner=False)
def fewshot_heldout(classes: tuple[int, ...], per_class: int = 50, name: str = DEFAULT_MODEL,
                    size: int = SMALL_SIZE):
    """(images, label names, embeddings) of held-out Fashion-MNIST test images of ``classes``."""
    test = fmnist_subset("test", per_class, seed=1)
    keep = np.isin(test.labels, classes)
    images = test.images[keep]
    labels = np.array([test.class_names[c] for c in test.labels[keep]])
    return images, labels, model(name, size).embed(images, progress=False)


# ---- verification -----------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def verifier(name: str = DEFAULT_MODEL, size: int | None = None):
    """A ``recipes.verification.Verifier`` with its threshold calibrated at ``VERIFY_FAR`` on
    Fashion-MNIST pairs (same class = same), saved on disk after the first time."""
    from recipes import verification as ver
    from recipes.common import RecipeError

    m = model(name, size)
    path = cache_dir("verifiers") / f"{name}-{m.input_size}-fmnist-far{VERIFY_FAR:g}"
    if (path / "config.json").is_file():
        try:
            v = ver.Verifier.load(path, model=m)
            if v.threshold is not None:
                return v
        except RecipeError as exc:
            log.warning("recalibrating %s: %s", path, exc)
    sub = fmnist_subset("test", VERIFY_CAL_PER_CLASS, seed=2)
    e = m.embed(sub.images, progress=False)
    i, j, same = ver.make_pairs(sub.labels, VERIFY_CAL_PAIRS, seed=0)
    v = ver.Verifier(model=m)
    v.calibrate((e[i], e[j]), same, far=VERIFY_FAR)
    v.calibration["data"] = (f"{VERIFY_CAL_PAIRS:,} pairs of {len(sub):,} Fashion-MNIST test images "
                             "(same class = same)")
    v.save(path)
    return v


@st.cache_resource(show_spinner=False)
def face_cropper():
    from recipes.verification import FaceCropper

    return FaceCropper()


def show_image(image, caption: str | None = None, max_side: int = 640):
    st.image(display(image, max_side), caption=caption, width="stretch")


@st.cache_data(show_spinner=False, ttl=30)
def folder_digest(folder: str) -> str:
    """Digest of a folder's image listing, re-read at most every 30 s (keys the index cache)."""
    from zoo.images import list_image_files

    p = Path(folder).expanduser()
    if (p / "manifest.json").is_file():
        return listing_digest([str(p / "manifest.json")])
    return listing_digest([str(f) for f in list_image_files(p)])


@st.cache_data(show_spinner=False, max_entries=256)
def embed_one(image: np.ndarray, name: str = DEFAULT_MODEL, size: int | None = None) -> np.ndarray:
    """(D,) embedding of one uploaded image, cached by content (reruns do not re-embed uploads)."""
    return model(name, size).embed(image[None], progress=False)[0]
