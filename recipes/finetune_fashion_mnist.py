"""The main job: fine-tune EfficientNet-Lite0 (real ImageNet weights, offline) on Fashion-MNIST.

    python -m recipes.finetune_fashion_mnist                 # quick: 12k images, about 5 min on 2 cores
    python -m recipes.finetune_fashion_mnist --full          # the benchmark recipe on all 60k

Prints test accuracy on the full 10k test set and writes the model folder, training curves
and confusion matrices to --out (default runs/fmnist).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import zoo
from zoo import data

QUICK = dict(subset=12000, input_size=64, epochs=2, head_epochs=10, lr=5e-4, augment="light", val_fraction=0.1)
FULL = dict(subset=None, input_size=64, epochs=4, head_epochs=10, lr=5e-4, augment="light", val_fraction=0.05)


def run(model="efficientnet_lite0", out="runs/fmnist", subset=None, input_size=64, epochs=3,
        head_epochs=10, lr=5e-4, augment="light", val_fraction=0.1, batch_size=64, seed=0, verbose=None,
        **train_options) -> dict:
    """Fine-tune, save, and evaluate on the 10k test set, plain and with flip test-time augmentation.

    ``train_options``: further :class:`zoo.training.TrainConfig` settings (``max_minutes``, ``ema``...)."""
    t0 = time.perf_counter()
    train, test = data.fashion_mnist("train"), data.fashion_mnist("test")
    if subset:
        train = train.subset(total=subset, seed=seed)
    m = zoo.load(model, input_size=input_size)
    clf = m.finetune(train, epochs=epochs, head_epochs=head_epochs, lr=lr, augment=augment,
                     val_fraction=val_fraction, batch_size=batch_size, out_dir=out, seed=seed, verbose=verbose,
                     **train_options)
    train_s = time.perf_counter() - t0
    clf.save(Path(out) / "model")  # beside the plots: saving replaces its folder whole
    result = clf.evaluate(test, plot=Path(out) / "confusion_test.png")
    tta = clf.evaluate(test, tta=True)
    summary = {
        "model": model, "input_size": input_size, "train_images": len(train), "validation_split": val_fraction, "epochs": epochs,
        "head_epochs": head_epochs, "lr": lr, "augment": augment, **train_options,
        "kept": clf.training_config.get("kept"),
        "test_accuracy": round(result["accuracy"], 4),
        "test_accuracy_flip_tta": round(tta["accuracy"], 4), "test_images": result["n"],
        "train_seconds": round(train_s), "total_seconds": round(time.perf_counter() - t0), "out": str(out),
    }
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="all 60k training images (the benchmark recipe)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--out", default="runs/fmnist")
    p.add_argument("--epochs", type=int)
    p.add_argument("--subset", type=int)
    p.add_argument("--input-size", type=int)
    a = p.parse_args(argv)
    cfg = dict(FULL if a.full else QUICK)
    for k in ("epochs", "subset", "input_size"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    s = run(a.model, a.out, **cfg)
    print(json.dumps(s, indent=2))
    print(f"\nTest accuracy: {s['test_accuracy']:.2%} ({s['test_accuracy_flip_tta']:.2%} with flip TTA) on {s['test_images']} Fashion-MNIST test images "
          f"({s['train_images']} training images, {s['total_seconds']}s). Model in {s['out']}/model, plots in {s['out']}/")


if __name__ == "__main__":
    main()
