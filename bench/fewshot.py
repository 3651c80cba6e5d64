"""Few-shot accuracy on Fashion-MNIST episodes: frozen EfficientNet-Lite0 features vs raw pixels.

    python bench/fewshot.py [--episodes 600] [--input-size 224]

Episodes are drawn from the 10k test images (5-way, 15 queries per class, fixed seed); every
classifier variant sees the same episodes, on features and on raw pixels (784 values / 255).
"""
from __future__ import annotations

import argparse

from _common import embeddings, fashion_mnist, pixels

from recipes import fewshot

VARIANTS = {
    "default (5-NN, support centring)": {},
    "prototype, support centring": {"mode": "prototype"},
    "prototype, centring + power 0.5": {"mode": "prototype", "power": 0.5},
    "plain 1-NN cosine": {"k": 1, "center": "none"},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--input-size", type=int)
    a = ap.parse_args()
    x, y = fashion_mnist("test")
    e, _, m = embeddings("test", input_size=a.input_size)
    print(f"{m.name} at {m.input_size}px; {a.episodes} episodes per setting, 5-way, 15 queries per class")
    pix = pixels(x)
    for shot in (1, 5):
        print(f"\n5-way {shot}-shot{'':28} {'features':>14} {'raw pixels':>14} {'gain (paired)':>15} {'ratio':>6}")
        for name, kw in VARIANTS.items():
            r = fewshot.evaluate_episodes((x, y), k_shot=shot, episodes=a.episodes, embeddings=e, **kw)
            print(f"{name:42} {100 * r['accuracy']:6.1f} ± {100 * r['ci95']:4.1f} "
                  f"{100 * r['baseline_accuracy']:6.1f} ± {100 * r['baseline_ci95']:4.1f} "
                  f"{100 * r['gain']:+7.1f} ± {100 * r['gain_ci95']:4.1f} {r['accuracy'] / r['baseline_accuracy']:6.3f}")
        plain = fewshot.evaluate_episodes((pix, y), k_shot=shot, episodes=a.episodes, embeddings=pix,
                                          baseline=False, k=1, center="none")
        d = fewshot.evaluate_episodes((x, y), k_shot=shot, episodes=a.episodes, embeddings=e, baseline=False)
        print(f"default on features vs plain 1-NN on raw pixels ({100 * plain['accuracy']:.1f}): "
              f"{100 * (d['accuracy'] - plain['accuracy']):+.1f} points")


if __name__ == "__main__":
    main()
