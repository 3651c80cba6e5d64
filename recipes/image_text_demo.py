"""Train the demo image-text model (LiT) on Fashion-MNIST captions and save it under runs/.

    python -m recipes.image_text_demo [--per-class 1000] [--out runs/image_text]

EfficientNet-Lite0 (locked, 64 px embeddings computed once) and all-MiniLM-L6-v2 (locked), an MLP
image head into MiniLM's space, SigLIP loss; captions generated from the class names, synonyms and
descriptions of all ten classes (recipes.image_text.FASHION_PHRASES). Evaluated on test images
with wordings no caption used: zero-shot from the plain class names, zero-shot from held-out
synonyms ("jeans", "parka", "tennis shoe"...), and text->image retrieval by held-out captions.
Writes ``<out>/model`` (``zoo.load`` opens it; the Image-text app page uses it) and
``<out>/metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from recipes import image_text as it

# one held-out wording per class, without its article: names no training caption contains
HELD_OUT_NAMES = [ps[1][0].split(" ", 1)[1] if ps[1][0].startswith(("a ", "an ")) else ps[1][0]
                  for ps in it.FASHION_PHRASES.values()]
SETTINGS = dict(loss="siglip", text_head="identity", image_head="mlp", epochs=15, batch_size=256, lr=3e-4)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-class", type=int, default=1000, help="training images per class (6000 = all)")
    ap.add_argument("--test-per-class", type=int, default=200, help="test images per class (1000 = all)")
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--out", default="runs/image_text")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import zoo

    t0 = time.perf_counter()
    train = it.fashion_pairs("train", per_class=a.per_class, seed=a.seed)
    val = it.fashion_pairs("test", per_class=20, seed=a.seed + 10)
    tower = zoo.load("efficientnet_lite0", input_size=a.input_size)
    model = it.train(train, val, image_model=tower, out_dir=a.out, seed=a.seed, **SETTINGS)
    t_train = time.perf_counter() - t0
    test = it.fashion_pairs("test", per_class=a.test_per_class, seed=a.seed + 1)
    vecs = model.encode_images(test.images)
    acc = lambda names: float((model.zero_shot_embeddings(vecs, names).argmax(1) == test.labels).mean())  # noqa: E731
    held = it.Pairs(test.images, it.fashion_captions(test.labels, held_out=True, seed=a.seed + 2), test.labels)
    ev = model.evaluate(held)
    metrics = {"zero_shot_class_names": acc(it.FASHION_NAMES), "zero_shot_held_out_names": acc(HELD_OUT_NAMES),
               "held_out_names": HELD_OUT_NAMES, "t2i_recall@10": ev["t2i_recall@10"],
               "t2i_precision@10": ev["t2i_precision@10"], "i2t_recall@1": ev["i2t_recall@1"],
               "train_pairs": len(train), "test_images": len(test), "train_seconds": round(t_train, 1),
               "settings": {**SETTINGS, "input_size": a.input_size}}
    out = Path(a.out)
    from zoo.io import atomic_write

    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2))
    print(f"saved {out / 'model'} ({len(train)} pairs, {t_train / 60:.1f} min)")
    print(f"10-way zero-shot on {len(test)} test images: {metrics['zero_shot_class_names']:.1%} from the class names "
          f"({', '.join(it.FASHION_NAMES)}), {metrics['zero_shot_held_out_names']:.1%} from names no caption used "
          f"({', '.join(HELD_OUT_NAMES)})")
    print(f"text->image with held-out captions: recall@10 {ev['t2i_recall@10']:.1%}, "
          f"precision@10 {ev['t2i_precision@10']:.1%} ({ev['n_captions']} captions)")
    return metrics


if __name__ == "__main__":
    main()
