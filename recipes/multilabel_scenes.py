"""Multi-label demo: which of the ten Fashion-MNIST classes appear in each demo scene.

    python -m recipes.multilabel_scenes                  # the recipe below, a few minutes on 2 cores
    python -m recipes.multilabel_scenes --n-train 600 --epochs 1   # a quick look

A scene (``recipes.scenes``: Fashion-MNIST items pasted on photos, tinted, partly occluded) shows
3-6 items; its labels are the set of their classes. ``zoo.load(...).finetune(train, val,
multilabel=True)`` trains a sigmoid head on EfficientNet-Lite0 (head first on cached features, then
unfrozen) and picks each class's threshold on the validation scenes. Prints mAP and micro/macro F1
on held-out test scenes and on scenes composed differently (the "shifted" style), and writes the
model folder and curves to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RECIPE = dict(n_train=2000, n_val=200, n_test=500, size=128, input_size=128, head_epochs=10, epochs=8, lr=5e-4,
              batch_size=32)


def run(out="runs/multilabel", backbone="efficientnet_lite0", n_train=2000, n_val=200, n_test=500, size=128,
        input_size=128, head_epochs=10, epochs=8, lr=5e-4, batch_size=32, seed=0, verbose=None) -> dict:
    import zoo
    from recipes.scenes import scenes

    t0 = time.perf_counter()
    train, val = scenes(("train", "val"), n={"train": n_train, "val": n_val}, size=size, seed=seed)
    test = scenes("test", n=n_test, size=size, seed=seed)
    shifted = scenes("test", n=n_test, size=size, seed=seed, style="shifted")
    t1 = time.perf_counter()
    clf = zoo.load(backbone, input_size=input_size).finetune(
        train, val, multilabel=True, head_epochs=head_epochs, epochs=epochs, lr=lr, batch_size=batch_size,
        out_dir=out, seed=seed, verbose=verbose)
    train_s = time.perf_counter() - t1
    folder = clf.save(Path(out) / "model")
    r, rs = clf.evaluate(test), clf.evaluate(shifted)
    rounded = lambda d: {k: round(v, 4) for k, v in d.items() if isinstance(v, float)}  # noqa: E731
    summary = {"backbone": backbone, "train_scenes": n_train, "input_size": input_size, "head_epochs": head_epochs,
               "epochs": epochs, "kept": clf.training_config["kept"], "test": rounded(r), "shifted": rounded(rs),
               "test_per_class_AP": {k: v["AP"] and round(v["AP"], 3) for k, v in r["per_class"].items()},
               "thresholds": clf.training_config["thresholds"], "train_seconds": round(train_s),
               "total_seconds": round(time.perf_counter() - t0), "model": str(folder)}
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/multilabel")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--n-train", type=int, default=RECIPE["n_train"])
    p.add_argument("--head-epochs", type=int, default=RECIPE["head_epochs"])
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    a = p.parse_args(argv)
    s = run(a.out, a.backbone, **{**RECIPE, "n_train": a.n_train, "head_epochs": a.head_epochs, "epochs": a.epochs})
    print(json.dumps(s, indent=2))
    t, sh = s["test"], s["shifted"]
    print(f"\nTest scenes ({RECIPE['n_test']}): mAP {t['mAP']:.3f}, F1 micro {t['f1_micro']:.3f}, macro "
          f"{t['f1_macro']:.3f}; shifted scenes: mAP {sh['mAP']:.3f}, F1 micro {sh['f1_micro']:.3f}. "
          f"Trained in {s['train_seconds']} s ({s['total_seconds']} s in all); model in {s['model']}")


if __name__ == "__main__":
    main()
