"""Fashion-MNIST test accuracy and wall time of the fine-tuning recipe on this machine.

Baseline in the same run (``--baseline``): close to the plain recipe the issue measured (64 px,
one head-only epoch, two full epochs, flips only, peak LR 1e-4; the schedule, label smoothing and
10% validation split are the library defaults).

    python bench/finetune.py                     # our recipe on all 60k training images
    python bench/finetune.py --subset 12000      # quicker look
    python bench/finetune.py --baseline          # also run the plain recipe and print the ratio
"""
from __future__ import annotations

import argparse
import json
import time

from recipes.finetune_fashion_mnist import FULL, run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subset", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--baseline", action="store_true")
    p.add_argument("--out", default="runs/bench_finetune")
    a = p.parse_args()
    cfg = dict(FULL, verbose=2)
    for k in ("subset", "epochs", "input_size"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    t = time.perf_counter()
    ours = run(out=a.out, **cfg)
    print(json.dumps(ours, indent=2))
    print(f"recipe: {ours['test_accuracy']:.2%} test accuracy ({ours['test_accuracy_flip_tta']:.2%} with flip TTA) "
          f"in {(time.perf_counter() - t) / 60:.1f} min")
    if a.baseline:
        t = time.perf_counter()
        base = run(out=a.out + "_plain", subset=cfg["subset"], input_size=64, epochs=2, head_epochs=1,
                   lr=1e-4, augment=["flip"], verbose=2)
        print(json.dumps(base, indent=2))
        print(f"plain:  {base['test_accuracy']:.2%} in {(time.perf_counter() - t) / 60:.1f} min; "
              f"recipe/plain error ratio {(1 - ours['test_accuracy']) / (1 - base['test_accuracy']):.2f}")


if __name__ == "__main__":
    main()
