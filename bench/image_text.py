"""Zero-shot Fashion-MNIST from class names: the ConSE baseline vs LiT trained with two classes held out.

    python bench/image_text.py [--per-class 2000] [--test-per-class 200] [--input-size 96]

- ConSE: EfficientNet-Lite0 (224 px, ImageNet head) + all-MiniLM-L6-v2, no image-text training.
- LiT: the same Lite0 locked (96 px embeddings, computed once) + MiniLM locked; SigLIP loss, an MLP
  image head into MiniLM's space (identity text head). Trained on captions of 8 classes; Sandal and
  Bag (chosen before any measurement) and some wordings of every class are never in a caption.
- Zero-shot is 10-way over FASHION_NAMES on a stratified test subset. "calibrated": calibrated
  stacking (Chao et al. 2016), gamma picked WITHOUT the held-out classes: an auxiliary model trained
  on 6 of the 8 classes, gamma maximising the harmonic mean of seen / pseudo-unseen accuracy on
  training-split images it did not train on.
- Text->image on held-out wordings: test images of all 10 classes captioned only with phrases and
  templates no training caption uses; recall@10 (an image paired with that exact caption in the top
  10) and precision@10 (share of the top 10 with the caption's class).
Timings are wall-clock on a shared 2-core CPU (pessimistic).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np
from _common import CACHE

from recipes import image_text as it

HELD_OUT = [5, 8]                      # Sandal, Bag
SEEN = [c for c in range(10) if c not in HELD_OUT]
PSEUDO = [2, 7]                         # Pullover, Sneaker: held out of the auxiliary model only
GAMMAS = np.round(np.arange(0.0, 1.01, 0.05), 2)
LIT = dict(loss="siglip", text_head="identity", image_head="mlp", epochs=15, batch_size=256, lr=3e-4)


def accuracies(pred, y) -> dict:
    seen, held = np.isin(y, SEEN), np.isin(y, HELD_OUT)
    return {"all": (pred == y).mean(), "seen": (pred[seen] == y[seen]).mean(), "held": (pred[held] == y[held]).mean()}


def zero_shot(model, vecs, y, names=it.FASHION_NAMES) -> dict:
    r = accuracies(model.zero_shot_embeddings(vecs, names).argmax(1), y)
    held = np.isin(y, HELD_OUT)
    two = model.zero_shot_embeddings(vecs[held], [names[c] for c in HELD_OUT]).argmax(1)
    r["held_2way"] = (np.array(HELD_OUT)[two] == y[held]).mean()
    return r


def pick_gamma(tower, feats, pairs, rows_fit, rows_val, seed) -> tuple[float, float]:
    """Calibration chosen on seen classes only: an auxiliary model without PSEUDO classes."""
    y = pairs.labels
    fit = rows_fit[~np.isin(y[rows_fit], PSEUDO)]
    aux = it.train(pairs.take(fit), image_model=tower, image_features=feats[fit], progress=False, seed=seed, **LIT)
    names = [it.FASHION_NAMES[c] for c in SEEN]
    yv = np.searchsorted(SEEN, y[rows_val])
    vv = it.l2(aux.image_head(feats[rows_val]))
    pseudo = np.isin(y[rows_val], PSEUDO)
    best = (0.0, -1.0)
    for g in GAMMAS:
        aux.calibration = float(g)
        pred = aux.zero_shot_embeddings(vv, names).argmax(1)
        a, b = (pred[~pseudo] == yv[~pseudo]).mean(), (pred[pseudo] == yv[pseudo]).mean()
        h = 2 * a * b / (a + b) if a + b else 0.0
        best = max(best, (h, float(g)), key=lambda t: t[0])
    return best[1], best[0]


def cached(what: str, key: dict, compute):
    """(array, seconds it took when computed) from the bench cache, computing it the first time."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = CACHE / f"image_text-{what}-{h}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False), json.loads(path.with_suffix(".json").read_text())["seconds"]
    t = time.perf_counter()
    out = compute()
    dt = time.perf_counter() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out, allow_pickle=False)
    path.with_suffix(".json").write_text(json.dumps({"seconds": dt, **key}))
    return out, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-class", type=int, default=2000, help="training images per seen class")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-conse", action="store_true")
    a = ap.parse_args()
    import zoo
    from zoo.text import load_text_tower

    test = it.fashion_pairs("test", per_class=a.test_per_class, seed=a.seed + 1)
    held_caps = it.Pairs(test.images, it.fashion_captions(test.labels, held_out=True, seed=a.seed + 2), test.labels)
    y = test.labels
    rows = []

    if not a.skip_conse:
        zs = it.conse("efficientnet_lite0")
        v, sec = cached("conse-test", {"fp": zs.fingerprint(), "per_class": a.test_per_class, "seed": a.seed},
                        lambda: zs.encode_images(test.images))
        r = zero_shot(zs, v, y)
        ev = zs.evaluate((v, held_caps.captions, held_caps.labels))
        rows.append(("ConSE (no image-text training)", r, None, ev, sec))
        print(f"ConSE: {r} (embedding {sec:.0f}s)", flush=True)

    t0 = time.perf_counter()
    tower = zoo.load("efficientnet_lite0", input_size=a.input_size)
    load_text_tower("minilm")
    t_load = time.perf_counter() - t0
    pool = it.fashion_pairs("train", classes=SEEN, per_class=a.per_class + 100, seed=a.seed)
    feats, t_embed = cached("lit-train", {"fp": tower.fingerprint(), "per_class": a.per_class, "seed": a.seed},
                            lambda: tower.embed(pool.images, batch_size=128))
    rng = np.random.default_rng(a.seed)
    rows_val = np.concatenate([rng.permutation(np.flatnonzero(pool.labels == c))[:100] for c in SEEN])
    rows_fit = np.setdiff1d(np.arange(len(pool)), rows_val)
    t2 = time.perf_counter()
    lit = it.train(pool.take(rows_fit), pool.take(rows_val), image_model=tower, image_features=feats[rows_fit],
                   val_features=feats[rows_val], progress=False, seed=a.seed, **LIT)
    t_train = time.perf_counter() - t2
    t3 = time.perf_counter()
    gamma, h = pick_gamma(tower, feats, pool, rows_fit, rows_val, a.seed)
    t_gamma = time.perf_counter() - t3
    tv, _ = cached("lit-test", {"fp": tower.fingerprint(), "per_class": a.test_per_class, "seed": a.seed},
                   lambda: tower.embed(test.images, batch_size=128))
    v = it.l2(lit.image_head(tv))
    plain = zero_shot(lit, v, y)
    lit.calibration = gamma
    cal = zero_shot(lit, v, y)
    ev = lit.evaluate((v, held_caps.captions, held_caps.labels))
    total = t_embed + t_train + t_gamma
    rows.append((f"LiT, {len(rows_fit)} pairs of 8 classes", plain, cal, ev, total))

    print(f"\nFashion-MNIST test subset: {len(y)} images ({a.test_per_class} per class); "
          f"held out of training: {', '.join(it.FASHION_NAMES[c] for c in HELD_OUT)}")
    print(f"names: {', '.join(it.FASHION_NAMES)}\n")
    print(f"{'model':34} {'10-way all':>10} {'8 trained':>10} {'2 held-out':>10} {'held 2-way':>10} "
          f"{'t2i R@10':>9} {'t2i P@10':>9} {'seconds':>8}")
    for name, r, c, e, sec in rows:
        print(f"{name:34} {100 * r['all']:10.1f} {100 * r['seen']:10.1f} {100 * r['held']:10.1f} "
              f"{100 * r['held_2way']:10.1f} {100 * e['t2i_recall@10']:9.1f} {100 * e['t2i_precision@10']:9.1f} "
              f"{sec:8.0f}")
        if c is not None:
            print(f"{'  + calibrated, gamma=%.2f' % gamma:34} {100 * c['all']:10.1f} {100 * c['seen']:10.1f} "
                  f"{100 * c['held']:10.1f} {100 * c['held_2way']:10.1f}")
    print(f"\nLiT time (embedding timed when first cached): embed {len(pool)} training images at {a.input_size}px {t_embed:.0f}s, train "
          f"{t_train:.0f}s ({LIT['epochs']} epochs), pick gamma {t_gamma:.0f}s (aux harmonic mean {h:.3f}); "
          f"total {total / 60:.1f} min (+ {t_load:.0f}s loading both towers)")
    print("\nLiT seen/held-out trade-off by calibration gamma (for reference; gamma above was not chosen on these):")
    for g in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9):
        lit.calibration = g
        r = zero_shot(lit, v, y)
        print(f"  gamma {g:.1f}: 8 trained {100 * r['seen']:5.1f}, 2 held-out {100 * r['held']:5.1f}")
    print(f"LiT i2t R@1 {100 * ev['i2t_recall@1']:.1f}, t2i R@1 {100 * ev['t2i_recall@1']:.1f} on "
          f"{ev['n_captions']} held-out captions; val loss by epoch "
          + " ".join(f"{x:.3f}" for x in lit.history["val_loss"]))


if __name__ == "__main__":
    main()
