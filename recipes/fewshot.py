"""Few-shot classification over frozen embeddings: k-NN or nearest prototype, SimpleShot style.

Features are centred on the support mean (or a given mean) and L2-normalised before cosine
search (Wang et al. 2019, "SimpleShot"). Measured on 5-way Fashion-MNIST episodes with
EfficientNet-Lite0 at 224px (``bench/fewshot.py``), centring adds about 1.5 points to k-NN.
``k`` is capped at the smallest class's support size, so a 1-shot fit is 1-NN.

```python
knn = KNNClassifier(model="efficientnet_lite0", k=5)
knn.fit(support_images, labels)          # or knn.fit("support/") with one subfolder per class
knn.predict(images); knn.predict_proba(images)
knn.calibrate_unknown(reject_rate=0.05)  # then predict() answers "unknown" below the threshold
```
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from recipes.common import RecipeError, labelled_folder, resolve_model
from zoo.tasks.fewshot.model import MODES, KNNClassifier  # noqa: F401  (the model lives in zoo.tasks)

# ---- episodes ------------------------------------------------------------------------------
def _mean_ci(a) -> tuple[float, float]:
    a = np.asarray(a, float)
    return float(a.mean()), float(1.96 * a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def _dataset(dataset):
    """(images, labels) from a tuple, an object with ``.images``/``.labels``, or a folder."""
    if isinstance(dataset, (str, Path)):
        return labelled_folder(dataset)
    if hasattr(dataset, "images") and hasattr(dataset, "labels"):
        return dataset.images, np.asarray(dataset.labels)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        return dataset[0], np.asarray(dataset[1])
    raise RecipeError("dataset must be (images, labels), an object with .images and .labels, or a folder "
                      "with one subfolder per class")


def _pixels(images, rows) -> np.ndarray:
    """Raw-pixel vectors in [0, 1] (files are read and resized to 32x32 RGB)."""
    if isinstance(images, np.ndarray):
        x = images[rows]
        return x.reshape(len(x), -1).astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    import tensorflow as tf

    from zoo.images import read_image, to_rgb

    out = []
    for r in rows:
        img = read_image(images[r]) if isinstance(images[r], (str, Path)) else to_rgb(images[r])
        out.append(tf.image.resize(img, (32, 32)).numpy().ravel() / 255.0)
    return np.stack(out).astype(np.float32)


def sample_episodes(labels, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int = 0):
    """[(support rows, query rows)] drawn with a fixed seed."""
    labels = np.asarray(labels)
    classes = [c for c in np.unique(labels) if (labels == c).sum() >= k_shot + n_query]
    if len(classes) < n_way:
        raise RecipeError(f"only {len(classes)} classes have {k_shot + n_query}+ images; "
                          f"{n_way}-way {k_shot}-shot with {n_query} queries needs {n_way}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        s, q = [], []
        for c in rng.choice(classes, n_way, replace=False):
            rows = rng.permutation(np.flatnonzero(labels == c))
            s += rows[:k_shot].tolist()
            q += rows[k_shot:k_shot + n_query].tolist()
        out.append((np.array(s), np.array(q)))
    return out


def evaluate_episodes(dataset, n_way: int = 5, k_shot: int = 5, n_query: int = 15, episodes: int = 200,
                      model="efficientnet_lite0", embeddings=None, baseline: bool = True, seed: int = 0,
                      batch_size: int = 64, **classifier) -> dict:
    """Mean accuracy with a 95% CI over few-shot episodes, and raw pixels on the same episodes.

    ``dataset``: (images, labels), an object with ``.images``/``.labels``, or a class-per-subfolder
    folder. ``embeddings``: precomputed (N, D) for the whole dataset (skips the model). Extra
    keyword arguments configure :class:`KNNClassifier` for both features and pixels.
    """
    images, labels = _dataset(dataset)
    labels = np.asarray(labels)
    eps = sample_episodes(labels, n_way, k_shot, n_query, episodes, seed)
    rows = np.unique(np.concatenate([np.concatenate(e) for e in eps]))
    if embeddings is None:
        m = resolve_model(model)
        sub = images[rows] if isinstance(images, np.ndarray) else [images[r] for r in rows]
        from zoo.runtimes import bulk_model

        e, _, skipped = bulk_model(m, "auto", len(sub)).embed(sub, batch_size=batch_size, progress=False,
                                                             return_sources=True)
        if len(e) != len(rows):
            raise RecipeError(f"{len(rows) - len(e)} images could not be read: {skipped[:3]}")
        feats = np.zeros((len(labels), e.shape[1]), np.float32)
        feats[rows] = e
    else:
        feats = np.asarray(embeddings, np.float32)
    pix = None
    if baseline:
        p = _pixels(images, rows)
        pix = np.zeros((len(labels), p.shape[1]), np.float32)
        pix[rows] = p

    def run(x):
        acc = []
        for s, q in eps:
            clf = KNNClassifier(model=None, **classifier).fit(x[s], labels[s])
            acc.append(float((clf.predict(x[q]) == labels[q]).mean()))
        return np.array(acc)

    acc = run(feats)
    out = {"n_way": n_way, "k_shot": k_shot, "n_query": n_query, "episodes": episodes,
           "accuracy": _mean_ci(acc)[0], "ci95": _mean_ci(acc)[1], "per_episode": acc}
    if baseline:
        base = run(pix)
        out.update(baseline_accuracy=_mean_ci(base)[0], baseline_ci95=_mean_ci(base)[1],
                   gain=_mean_ci(acc - base)[0], gain_ci95=_mean_ci(acc - base)[1], baseline_per_episode=base)
    return out
