"""Verification benchmarks: pairs from labels, ROC / EER / TAR@FAR with a picture. The model,
``Verifier``, lives in :mod:`zoo.tasks.verifier` (re-exported here)::

    pairs, same = make_pairs(labels, 2000)
    evaluate(Verifier(model="efficientnet_lite0"), pairs, same, plot="roc.png")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recipes.common import RecipeError
from zoo.tasks.verifier.model import (  # noqa: F401  (the model lives in zoo.tasks)
    LOSSES, FaceCropper, FaceNotFoundError, Verifier, _genuine_impostor, _split_pairs, calibrate_scores, eer,
)


def make_pairs(labels, n: int, same_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, same): ``n`` random index pairs over ``labels``, ``same_fraction`` of them genuine."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    by = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    ok = [c for c, r in by.items() if len(r) >= 2]
    if not ok or len(by) < 2:
        raise RecipeError("pairs need 2+ classes and a class with 2+ images")
    same = rng.random(n) < same_fraction
    i = np.empty(n, np.int64)
    j = np.empty(n, np.int64)
    for t in range(n):
        if same[t]:
            a, b = rng.choice(by[ok[rng.integers(len(ok))]], 2, replace=False)
        else:
            ca, cb = rng.choice(list(by), 2, replace=False)
            a, b = rng.choice(by[ca]), rng.choice(by[cb])
        i[t], j[t] = a, b
    return i, j, same


def evaluate(verifier, pairs, same, plot=None, far_points=(1e-2, 1e-3)) -> dict:
    """ROC AUC, EER, TAR at each FAR in ``far_points`` (None where there are too few impostor
    pairs to resolve it), FAR/TAR at the verifier's threshold, and a ROC plot PNG at ``plot``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = verifier.score_pairs(pairs) if hasattr(verifier, "score_pairs") else np.asarray(verifier, float)
    same = np.asarray(same, bool)
    gen, imp = _genuine_impostor(scores, same)
    fpr, tpr, _ = roc_curve(same, scores)
    rate, t_eer = eer(scores, same)
    out = {"auc": float(roc_auc_score(same, scores)), "eer": rate, "eer_threshold": t_eer,
           "n_genuine": int(len(gen)), "n_impostor": int(len(imp))}
    for f in far_points:
        out[f"tar@far={f:g}"] = float(tpr[fpr <= f].max()) if f * len(imp) >= 1 else None
    t = getattr(verifier, "threshold", None)
    if t is not None:
        out.update(threshold=float(t), far=float(np.mean(imp >= t)), tar=float(np.mean(gen >= t)))
    if plot is not None:
        out["plot"] = str(_plot_roc(fpr, tpr, out, plot))
    return out


def _plot_roc(fpr, tpr, r, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    floor = 1.0 / max(r["n_impostor"], 1)
    ax.plot(np.maximum(fpr, floor), tpr, lw=2, label=f"AUC {r['auc']:.3f}, EER {r['eer']:.3f}")
    ax.plot([r["eer"]], [1 - r["eer"]], "o", label="EER")
    if "far" in r:
        ax.plot([max(r["far"], floor)], [r["tar"]], "s", label=f"threshold {r['threshold']:.3f}")
    ax.set(xscale="log", xlim=(floor, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate",
           title="verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
