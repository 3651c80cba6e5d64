"""Real-data detection benchmark: tree crowns in NEON aerial RGB images (the ``deepforest`` wheel's data).

The four annotated images the wheel ships (Pascal VOC XML beside each image): OSBS_029 (400x400,
61 crowns), SOAP_061 (400x400, 37, marked alive or dead: all are crowns here) and two large Yellowstone crops (1249x1035 with 279 crowns,
2299x2472 with 574). Train on tiles of the other three (``detection.tiles``: 400 px, 25% overlap;
10% of the tiles hold out for validation mAP), test on all of OSBS_029, which no tile comes from.
Every run also scores OSBS_029's right half alone, so that runs given its left half's crowns
(``--site-labels``: what a few labels of the target site give) compare with the cross-site ones.

Prints COCO mAP / mAP50 (pycocotools) and DeepForest's own measure beside them: box recall and
precision at IoU >= 0.4, one-to-one matching (``deepforest.evaluate``), at score >= 0.3 (what its
tutorial draws). DeepForest's test suite holds its release model (RetinaNet/ResNet-50 trained on
NEON crowns from many sites) to precision and recall > 0.5 on this same image
(``tests/test_main.py::test_evaluate`` in weecology/DeepForest). Writes ``test.png`` (truth green,
predictions in colour) and ``curves.png`` under --out.

    python bench/detect_trees.py                       # 5-10 min on a 2-core AMD EPYC with AVX-512
    python bench/detect_trees.py --augment overhead    # every orientation (flips and quarter turns)
    python bench/detect_trees.py --unfreeze 2          # only the last two stages unfrozen (the first setting)
    python bench/detect_trees.py --simclr-epochs 2     # SimCLR on unlabelled crops first (never of OSBS_029)
    python bench/detect_trees.py --site-labels add     # + the left half of OSBS_029's crowns (test: right half)
    python bench/detect_trees.py --epochs 4 --unfreeze-epochs 0    # a quick look

deepforest is installed ``--no-deps`` (it declares torch); only its data files are read.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402

TEST_IMAGE = "OSBS_029"
# scale jitter 0.8-1.25 and little hue change (crowns are green), over the "default" preset's colour jitter
AUGMENTS = {"upright": {"flip": True, "scale": (0.8, 1.25), "hue": 0.02}, "overhead": "overhead",
            # colour changed as much as a site's soil, season and sun do (hue kept near green)
            "colour": {"flip": True, "scale": (0.8, 1.25), "brightness": 0.3, "contrast": (0.5, 1.5),
                       "saturation": (0.3, 1.7), "hue": 0.08}}


def deepforest_data() -> Path:
    """The deepforest wheel's data folder (found without importing deepforest, which needs torch)."""
    spec = importlib.util.find_spec("deepforest")
    if spec is None or not spec.origin:
        sys.exit("deepforest is not installed: pip install --no-deps deepforest (scripts/setup.sh does)")
    return Path(spec.origin).parent / "data"


def matched_recall_precision(truth, predicted, iou: float = 0.4) -> tuple[float, float, float]:
    """(recall, precision, mean IoU of matches) with one-to-one matching maximising IoU, a match
    counting when its IoU >= ``iou`` (DeepForest's ``evaluate``)."""
    from scipy.optimize import linear_sum_assignment

    t, p = np.asarray(truth, float).reshape(-1, 4), np.asarray(predicted, float).reshape(-1, 4)
    if not len(t) or not len(p):
        return 0.0, 0.0, 0.0
    lt = np.maximum(t[:, None, :2], p[None, :, :2])
    rb = np.minimum(t[:, None, 2:], p[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    ious = inter / (area(t)[:, None] + area(p)[None, :] - inter)
    r, c = linear_sum_assignment(-ious)
    good = ious[r, c] >= iou
    return good.sum() / len(t), good.sum() / len(p), float(ious[r, c][good].mean()) if good.any() else 0.0


def read_uint8(path) -> np.ndarray:
    """One image file as uint8 RGB (H, W, 3)."""
    from zoo.images import read_image

    return np.clip(np.round(read_image(path)), 0, 255).astype(np.uint8)


def unlabelled_crops(paths, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random ``size`` px crops (uint8) from the images at ``paths``, each image's share by area."""
    images = [read_uint8(p) for p in paths]
    rng = np.random.default_rng(seed)
    area = np.array([(im.shape[0] - size + 1) * (im.shape[1] - size + 1) for im in images], float)
    which = rng.choice(len(images), n, p=area / area.sum())
    out = np.empty((n, size, size, 3), np.uint8)
    for k, i in enumerate(which):
        y, x = rng.integers(0, images[i].shape[0] - size + 1), rng.integers(0, images[i].shape[1] - size + 1)
        out[k] = images[i][y:y + size, x:x + size]
    return out


def halves(data, min_visible: float = 0.5):
    """The one image of ``data`` cut down the middle: (left, right) halves with the boxes of each kept,
    clipped, when ``min_visible`` of a box lies inside (``detection.tiles``' rule)."""
    from recipes import detection

    px = read_uint8(data.images[0])
    w = px.shape[1] // 2
    b = np.asarray(data.boxes[0], np.float32).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out = []
    for x0, x1 in ((0, w), (w, px.shape[1])):
        c = np.clip(b - [x0, 0, x0, 0], 0, [x1 - x0, px.shape[0]] * 2)
        keep = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1]) >= min_visible * area
        out.append(detection.DetectionData([px[:, x0:x1]], [c[keep]], [np.asarray(data.labels[0])[keep]],
                                           data.class_names, [f"{data.sources[0]}@{x0},0"]))
    return tuple(out)


def scores(det, test, threshold: float) -> dict:
    """COCO mAP / mAP50 / mAP75 and DeepForest's recall / precision at IoU 0.4 on one image."""
    r = det.evaluate(test)
    found = det.detect(test.images, score_threshold=threshold)[0]
    rec, prec, miou = matched_recall_precision(test.boxes[0], found["boxes"])
    return {"mAP": round(r["mAP"], 4), "mAP50": round(r["mAP50"], 4), "mAP75": round(r["mAP75"], 4),
            "deepforest_box_recall@0.4": round(float(rec), 3), "deepforest_box_precision@0.4": round(float(prec), 3),
            "matched_mean_iou": round(miou, 3), "predicted": len(found["boxes"]), "truth": len(test.boxes[0])}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=416, help="network input (tiles are 400 px; 416 = 400 + padding)")
    p.add_argument("--tile", type=int, default=400)
    p.add_argument("--epochs", type=int, default=30, help="frozen-backbone epochs")
    p.add_argument("--unfreeze-epochs", type=int, default=8)
    p.add_argument("--unfreeze", default="all", help="'all' or the last N pyramid stages")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--augment", default="upright", choices=sorted(AUGMENTS),
                   help="overhead: every orientation (flips and quarter turns); upright: left-right flips only; "
                        "colour: upright with stronger colour jitter")
    p.add_argument("--simclr-epochs", type=int, default=0,
                   help="first pre-train the backbone with SimCLR on unlabelled crops of the training images and "
                        "SOAP_031 (no labels read; never OSBS_029) for this many epochs (0: ImageNet weights as "
                        "they are)")
    p.add_argument("--simclr-crops", type=int, default=2048, help="how many unlabelled crops")
    p.add_argument("--simclr-size", type=int, default=128, help="crop side and SimCLR's input size")
    p.add_argument("--site-labels", default="none", choices=["none", "add", "only"],
                   help="the left half of OSBS_029's crowns for training: none (cross-site, the target), added to "
                        "the other sites' tiles, or alone (then also its validation set); every run also scores "
                        "the right half on its own")
    p.add_argument("--site-repeat", type=int, default=8, help="copies of the left half in each epoch")
    p.add_argument("--score", type=float, default=0.3, help="score threshold for DeepForest's recall/precision")
    p.add_argument("--out", default="runs/bench_trees")
    a = p.parse_args()
    print(cpu_line(), flush=True)

    from recipes import detection

    data = detection.read_voc(deepforest_data())
    # one class: SOAP_061 labels its crowns "Alive"/"Dead", the others "Tree"
    data = detection.DetectionData(data.images, data.boxes, [np.zeros_like(lab) for lab in data.labels], ["Tree"],
                                   data.sources)
    names = [Path(s).stem for s in data.sources]
    test = data.take([names.index(TEST_IMAGE)])
    rest = data.take([i for i, n in enumerate(names) if n != TEST_IMAGE])
    tiled = detection.tiles(rest, size=a.tile, overlap=0.25)
    order = np.random.default_rng(0).permutation(len(tiled))
    k = max(1, len(tiled) // 10)
    train, val = tiled.take(order[k:]), tiled.take(order[:k])
    left, right = halves(test)
    if a.site_labels != "none":   # the half repeated, so that it weighs as much as 8 tiles an epoch
        site = left.take([0] * a.site_repeat)
        train, val = (site, left) if a.site_labels == "only" else (detection.DetectionData(
            list(train.images) + site.images, list(train.boxes) + site.boxes, list(train.labels) + site.labels,
            ["Tree"], list(train.sources) + site.sources), val)
    print(f"train: {len(train)} images ({a.site_labels} of OSBS_029's left half; tiles of "
          f"{', '.join(n for n in names if n != TEST_IMAGE)}) "
          f"({sum(len(b) for b in train.boxes)} crowns); val: {len(val)} tiles; "
          f"test: {TEST_IMAGE} ({len(test.boxes[0])} crowns)", flush=True)

    t0 = time.perf_counter()
    backbone = a.backbone
    if a.simclr_epochs:
        from recipes import simclr

        sources = [s for s, n in zip(data.sources, names) if n != TEST_IMAGE]
        sources.append(str(deepforest_data() / "SOAP_031.png"))
        crops = unlabelled_crops(sources, a.simclr_size, a.simclr_crops)
        backbone = simclr.pretrain(crops, backbone=a.backbone, input_size=a.simclr_size, epochs=a.simclr_epochs,
                                   batch_size=32, out_dir=Path(a.out) / "simclr")
        print(f"SimCLR: {a.simclr_epochs} epochs of {len(crops)} crops ({a.simclr_size} px) from "
              f"{len(sources)} images, {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    unfreeze = a.unfreeze if a.unfreeze == "all" else int(a.unfreeze)
    det = detection.train(train, val, backbone=backbone, input_size=a.size, head_epochs=a.epochs,
                          epochs=a.unfreeze_epochs, unfreeze=unfreeze, batch_size=a.batch,
                          augment=AUGMENTS[a.augment], out_dir=a.out, verbose=2)
    train_s = time.perf_counter() - t0
    whole, half = scores(det, test, a.score), scores(det, right, a.score)
    detection.sheet(det, test, Path(a.out) / "test.png", columns=1, score_threshold=a.score, scale=2)
    det.save(Path(a.out) / "model")
    summary = {"test_image": TEST_IMAGE, **whole, "right_half": half, "score_threshold": a.score,
               "train_tiles": len(train), "train_seconds": round(train_s), "kept": det.training_config.get("kept"),
               "config": vars(a)}
    if a.site_labels != "none":   # its left half was trained on: only the right half is a test
        summary = {k: v for k, v in summary.items() if k not in whole}
    Path(a.out, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    for name, r in (() if a.site_labels != "none" else ((TEST_IMAGE, whole),)) + ((f"{TEST_IMAGE} right half", half),):
        print(f"\n{name}: mAP {r['mAP']:.3f}, mAP50 {r['mAP50']:.3f}; DeepForest's measure at IoU 0.4 and score "
              f">= {a.score}: recall {r['deepforest_box_recall@0.4']:.3f}, precision "
              f"{r['deepforest_box_precision@0.4']:.3f} (its release model is held to > 0.5 on both for the "
              "whole image)")
    print(f"training {train_s / 60:.1f} min on {len(train)} images (site labels: {a.site_labels})")


if __name__ == "__main__":
    main()
