"""Real-data detection benchmark: tree crowns in NEON aerial RGB images (the ``deepforest`` wheel's data).

The four annotated images the wheel ships (Pascal VOC XML beside each image): OSBS_029 (400x400,
61 crowns), SOAP_061 (400x400, 37, marked alive or dead: all are crowns here) and two large Yellowstone crops (1249x1035 with 279 crowns,
2299x2472 with 574). Train on tiles of the other three (``detection.tiles``: 400 px, 25% overlap;
10% of the tiles hold out for validation mAP), test on all of OSBS_029, which no tile comes from.

Prints COCO mAP / mAP50 (pycocotools) and DeepForest's own measure beside them: box recall and
precision at IoU >= 0.4, one-to-one matching (``deepforest.evaluate``), at score >= 0.3 (what its
tutorial draws). DeepForest's test suite holds its release model (RetinaNet/ResNet-50 trained on
NEON crowns from many sites) to precision and recall > 0.5 on this same image
(``tests/test_main.py::test_evaluate`` in weecology/DeepForest). Writes ``test.png`` (truth green,
predictions in colour) and ``curves.png`` under --out.

    python bench/detect_trees.py                       # about 14 min on a 2-core CPU (13 min of training)
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
AUGMENTS = {"upright": {"flip": True, "scale": (0.8, 1.25), "hue": 0.02}, "overhead": "overhead"}


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


def unlabelled_crops(paths, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random ``size`` px crops (uint8) from the images at ``paths``, each image's share by area."""
    from zoo.images import read_image

    images = [np.clip(np.round(read_image(p)), 0, 255).astype(np.uint8) for p in paths]
    rng = np.random.default_rng(seed)
    area = np.array([(im.shape[0] - size + 1) * (im.shape[1] - size + 1) for im in images], float)
    which = rng.choice(len(images), n, p=area / area.sum())
    out = np.empty((n, size, size, 3), np.uint8)
    for k, i in enumerate(which):
        y, x = rng.integers(0, images[i].shape[0] - size + 1), rng.integers(0, images[i].shape[1] - size + 1)
        out[k] = images[i][y:y + size, x:x + size]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=416, help="network input (tiles are 400 px; 416 = 400 + padding)")
    p.add_argument("--tile", type=int, default=400)
    p.add_argument("--epochs", type=int, default=30, help="frozen-backbone epochs")
    p.add_argument("--unfreeze-epochs", type=int, default=8)
    p.add_argument("--unfreeze", default="2", help="'all' or the last N pyramid stages")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--augment", default="overhead", choices=sorted(AUGMENTS),
                   help="overhead: every orientation (flips and quarter turns); upright: left-right flips only")
    p.add_argument("--simclr-epochs", type=int, default=0,
                   help="first pre-train the backbone with SimCLR on unlabelled crops of the training images and "
                        "SOAP_031 (no labels read; never OSBS_029) for this many epochs (0: ImageNet weights as they are)")
    p.add_argument("--simclr-crops", type=int, default=2048, help="how many unlabelled crops")
    p.add_argument("--simclr-size", type=int, default=128, help="crop side and SimCLR's input size")
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
    print(f"train: {len(train)} tiles of {', '.join(n for n in names if n != TEST_IMAGE)} "
          f"({sum(len(b) for b in train.boxes)} crowns); val: {len(val)} tiles; "
          f"test: {TEST_IMAGE} ({len(test.boxes[0])} crowns)", flush=True)

    t0 = time.perf_counter()
    backbone = a.backbone
    if a.simclr_epochs:
        from recipes import simclr

        sources = [s for s, n in zip(data.sources, names) if n != TEST_IMAGE] + [str(deepforest_data() / "SOAP_031.png")]
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
    r = det.evaluate(test)
    found = det.detect(test.images, score_threshold=a.score)[0]
    rec, prec, miou = matched_recall_precision(test.boxes[0], found["boxes"])
    detection.sheet(det, test, Path(a.out) / "test.png", columns=1, score_threshold=a.score, scale=2)
    det.save(Path(a.out) / "model")
    summary = {"test_image": TEST_IMAGE, "mAP": round(r["mAP"], 4), "mAP50": round(r["mAP50"], 4),
               "mAP75": round(r["mAP75"], 4), "deepforest_box_recall@0.4": round(float(rec), 3),
               "deepforest_box_precision@0.4": round(float(prec), 3), "matched_mean_iou": round(miou, 3),
               "score_threshold": a.score, "predicted": len(found["boxes"]), "truth": len(test.boxes[0]),
               "train_tiles": len(train), "train_seconds": round(train_s), "kept": det.training_config.get("kept"),
               "config": vars(a)}
    Path(a.out, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"\n{TEST_IMAGE}: mAP {r['mAP']:.3f}, mAP50 {r['mAP50']:.3f}; DeepForest's measure at IoU 0.4 and score "
          f">= {a.score}: recall {rec:.3f}, precision {prec:.3f} (its release model is held to > 0.5 on both); "
          f"training {train_s / 60:.1f} min on {len(train)} tiles")


if __name__ == "__main__":
    main()
