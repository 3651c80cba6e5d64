"""What the demo scenes allow: the mIoU and mAP50 of an oracle that knows every item's exact mask and
box and gets its class right with probability ``a``, and how often a classifier of scene-item crops
is right.

The targets of issues 10 and 11 (mAP50 >= 0.90, U-Net mIoU >= 0.80) are judged on these scenes, whose
Fashion-MNIST items are tinted, thresholded, scaled to 28-58 px and partly hidden by each other. The
first part (numpy and pycocotools, seconds) says which item accuracy each target needs even with
perfect masks and boxes; the second (``--classifier``, minutes) measures the accuracy that the
offline default backbone reaches on crops of the held-out scenes' items when trained on nothing else.

    python bench/scene_ceiling.py                                   # the oracle tables
    python bench/scene_ceiling.py --classifier 12000:2 24000:4 48000:6   # + item classifiers (crops:epochs)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402

ACCURACIES = (0.70, 0.77, 0.80, 0.85, 0.88, 0.90, 0.95, 1.0)


def oracle_labels(labels, a: float, rng) -> list:
    """Each item's class kept with probability ``a``, else another class drawn uniformly."""
    out = []
    for lab in labels:
        wrong = (lab + rng.integers(1, 10, size=len(lab))) % 10
        out.append(np.where(rng.random(len(lab)) < a, lab, wrong))
    return out


def oracle_miou(data, labels) -> float:
    """mIoU (background included, keras' MeanIoU as ``seg.evaluate``) of exact visible masks painted
    with ``labels``."""
    import keras

    painted = np.stack([np.concatenate([[0], np.asarray(lab) + 1])[inst] for inst, lab in zip(data.instances, labels)])
    metric = keras.metrics.MeanIoU(data.num_classes + 1)
    metric.update_state(data.masks, painted)
    return float(metric.result())


def oracle_map50(data, labels, ranked: bool, rng) -> float:
    """COCO mAP50 of exact boxes with ``labels``; scores random, or (``ranked``) every right label
    scored above every wrong one: the two ends of what the ranking can do."""
    from zoo.tasks.detector import coco_metrics

    dets = []
    for true, lab, boxes in zip(data.labels, labels, data.boxes):
        score = rng.random(len(lab)) * 0.5 + (0.5 * (np.asarray(lab) == true) if ranked else 0.25)
        dets.append({"boxes": boxes, "scores": score, "labels": lab})
    return coco_metrics(data.boxes, data.labels, dets, list(data.class_names))["mAP50"]


def oracle_table(data, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    print(f"\n{data.style} test scenes ({len(data)}, {sum(map(len, data.labels))} items): oracle with exact masks and boxes")
    print(f"{'item accuracy':>14} {'mIoU':>7} {'mAP50 random scores':>20} {'mAP50 ranked scores':>20}")
    for a in ACCURACIES:
        labels = oracle_labels(data.labels, a, rng)
        print(f"{a:>14.2f} {oracle_miou(data, labels):>7.3f} {oracle_map50(data, labels, False, rng):>20.3f} "
              f"{oracle_map50(data, labels, True, rng):>20.3f}")


def classifier_row(n: int, epochs: int, size: int, tests: dict) -> None:
    from recipes.scenes import item_backbone, item_crops

    t = time.perf_counter()
    clf = item_backbone(n=n, input_size=size, head_epochs=2, epochs=epochs, source="scenes", verbose=0)
    seconds = time.perf_counter() - t
    row = []
    for style, data in tests.items():
        r = clf.evaluate(item_crops(data, size=size))
        cm = r["confusion_matrix"]
        per = dict(zip(clf.class_names, np.diag(cm) / np.maximum(cm.sum(1), 1)))
        row.append(f"{style} {r['accuracy']:.3f} (Shirt {per['Shirt']:.2f}, Coat {per['Coat']:.2f}, Bag {per['Bag']:.2f})")
    print(f"{n:>7} crops x {epochs} epochs at {size} px, {seconds:5.0f} s: " + "; ".join(row), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=500, help="held-out scenes per style (the recipes' test set)")
    p.add_argument("--classifier", nargs="*", default=[], metavar="CROPS:EPOCHS",
                   help="also train item classifiers on training-scene crops (2 frozen epochs first)")
    p.add_argument("--crop-size", type=int, default=48)
    a = p.parse_args(argv)
    print(cpu_line())
    from recipes.scenes import scenes

    tests = {style: scenes("test", n=a.scenes, size=128, seed=0, style=style) for style in ("default", "shifted")}
    for data in tests.values():
        oracle_table(data)
    if a.classifier:
        print("\nitem classifiers (efficientnet_lite0 fine-tuned on training-scene crops), accuracy on held-out crops:")
        for spec in a.classifier:
            n, epochs = (int(v) for v in spec.split(":"))
            classifier_row(n, epochs, a.crop_size, tests)


if __name__ == "__main__":
    main()
