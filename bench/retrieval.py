"""Retrieval and verification on Fashion-MNIST: frozen EfficientNet-Lite0 features vs raw pixels.

    python bench/retrieval.py [--input-size 224]

Retrieval: gallery = the 60k training images, queries = the 10k test images, relevant = same
class, exact cosine search (Flat). recall@k = share of queries with a relevant image in the top k;
mAP@10 = mean over queries of sum_k P(k) rel(k) / 10. Also: time to embed and index all 70k
images (images/s), and verification on classes held out of metric fine-tuning.
"""
from __future__ import annotations

import argparse

import numpy as np

from _common import embeddings, fashion_mnist, pixels, timed

import zoo.index as zi
from recipes import verification as ver


def retrieval_metrics(gallery, g_labels, queries, q_labels, ks=(1, 5, 10)) -> dict:
    idx = zi.from_embeddings(gallery, index_type="Flat")
    res = idx.search_embeddings(queries, k=max(ks))
    rel = g_labels[res.ids] == q_labels[:, None]
    out = {f"recall@{k}": float(rel[:, :k].any(1).mean()) for k in ks}
    prec = np.cumsum(rel[:, :10], 1) / np.arange(1, 11)
    out["mAP@10"] = float(((prec * rel[:, :10]).sum(1) / 10).mean())
    return out


SPLITS = ([6, 7, 8, 9], [1, 3, 5, 7], [2, 5, 8], [0, 2, 4, 6])


def verification(train_e, y, test_e, ty, held_classes, seed=0) -> dict:
    """Frozen vs fine-tuned heads on test pairs of ``held_classes``, which training never sees."""
    seen, held = ~np.isin(y, held_classes), np.isin(ty, held_classes)
    i, j, same = ver.make_pairs(ty[held], 20000, seed=seed)
    pairs = (test_e[held][i], test_e[held][j])
    out = {"frozen": ver.evaluate(ver.Verifier(model=None), pairs, same)}
    for loss in ("supcon", "contrastive"):
        v = ver.Verifier(model=None)
        v.finetune(train_e[seen], y[seen], loss=loss)
        out[f"{loss} head"] = ver.evaluate(v, pairs, same)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input-size", type=int, default=None, help="model resolution (default: the entry's, 224)")
    a = ap.parse_args()
    (xtr, ytr), (xte, yte) = fashion_mnist("train"), fashion_mnist("test")
    etr, t_tr, m = embeddings("train", input_size=a.input_size)
    ete, t_te, _ = embeddings("test", input_size=a.input_size)
    n = len(etr) + len(ete)
    allv = np.concatenate([etr, ete])
    idx, t_index = timed(zi.from_embeddings, allv, model=m)
    print(f"model {m.name} at {m.input_size}px, {m.feature_dim}-d")
    if t_tr is not None and t_te is not None:
        print(f"end to end, 70k Fashion-MNIST images: embed {n / (t_tr + t_te):.0f} img/s "
              f"({t_tr + t_te:.0f}s), index ({idx.plan.spec}, expected recall@10 {idx.plan.expected_recall}) "
              f"{t_index:.1f}s, together {n / (t_tr + t_te + t_index):.0f} img/s")
    feats = retrieval_metrics(etr, ytr, ete, yte)
    raw = retrieval_metrics(pixels(xtr), ytr, pixels(xte), yte)
    print("\nretrieval, 10k test queries against 60k train, exact cosine search")
    print(f"{'metric':10} {'features':>9} {'pixels':>9} {'ratio':>7}")
    for k in feats:
        print(f"{k:10} {feats[k]:9.4f} {raw[k]:9.4f} {feats[k] / raw[k]:7.3f}")
    got = idx.search_embeddings(ete, k=10).ids
    want = zi.from_embeddings(allv, index_type="Flat").search_embeddings(ete, k=10).ids
    overlap = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    print(f"auto index over all 70k ({idx.plan.spec}): recall@10 vs exact on the 10k test queries {overlap:.4f}")
    print("\nverification on held-out classes: 20k test pairs of classes the head never saw; the head is "
          "trained on the train images of the other classes (defaults: 300 steps, anchor 0.3)")
    print(f"{'held-out classes':17} {'embedding':17} {'AUC':>7} {'EER':>7} {'TAR@1e-2':>9} {'TAR@1e-3':>9}")
    for held in SPLITS:
        rows = {"raw pixels": verification(pixels(xtr), ytr, pixels(xte), yte, held)["frozen"],
                **verification(etr, ytr, ete, yte, held)}
        for name, r in rows.items():
            print(f"{str(held):17} {name:17} {r['auc']:7.4f} {r['eer']:7.4f} {r['tar@far=0.01']:9.4f} "
                  f"{r['tar@far=0.001']:9.4f}")
        f, s = rows["frozen"], rows["supcon head"]
        print(f"{'':17} supcon head / frozen: AUC x{s['auc'] / f['auc']:.3f}, EER x{s['eer'] / f['eer']:.3f}")


if __name__ == "__main__":
    main()
