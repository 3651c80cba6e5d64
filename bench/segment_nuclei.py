"""Real-data segmentation benchmark: nuclei in a fluorescence image (the ``stardist`` wheel's data).

``stardist/data/images/img2d.tif`` is a 512x512 image from the 2018 Data Science Bowl with its
instance masks (``mask2d.tif``, 125 nuclei). Train on crops of the left half, test on the right
half, which no crop touches. The segmenter learns three classes, as the U-Net baseline of the
StarDist paper does: background, nucleus interior, nucleus boundary (each instance's inner
contour); instances are the connected interiors grown back over the predicted nucleus pixels.

Prints, on the held-out half, foreground IoU and instance figures (one-to-one matches at
IoU >= 0.5: precision, recall, F1, TP/(TP+FP+FN) and the mean IoU of matches), beside a classical
baseline measured in the same run: Otsu's threshold, connected components, the same growing.
Writes ``nuclei.png`` (image, truth, prediction, baseline) and ``curves.png`` under --out.

Printed beside them, for scale, StarDist's published figure on this data set (Schmidt et al., "Cell
Detection with Star-convex Polygons", MICCAI 2018, Table 1, DSB2018 at IoU 0.5): TP/(TP+FP+FN) 0.8641
(U-Net 3 class 0.8060, Mask R-CNN 0.8323). The test differs: theirs pools about 50 held-out images
(10% of 497 fluorescence images) after training on about 450; this one trains on half
of one image for minutes and tests on the other half (57 nuclei), so it is a rough yardstick only.

    python bench/segment_nuclei.py                  # 4 min on the 2-core AVX-512 EPYC (3.8 of training), 10 elsewhere
    python bench/segment_nuclei.py --head deeplabv3plus

stardist is installed ``--no-deps`` (it declares TensorFlow 2 plug-ins); only its data files are read.
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

# Schmidt et al. 2018, Table 1, DSB2018, tau = 0.5: TP/(TP+FP+FN) over their test images
STARDIST_PAPER = {"StarDist paper": 0.8641, "paper U-Net 3c": 0.8060, "paper MaskRCNN": 0.8323}

from bench._common import cpu_line  # noqa: E402

NAMES = ["background", "nucleus", "boundary"]


def stardist_image() -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W) float, instance labels (H, W) int) from the stardist wheel, without importing it."""
    import tifffile

    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.origin:
        sys.exit("stardist is not installed: pip install --no-deps stardist (scripts/setup.sh does)")
    d = Path(spec.origin).parent / "data" / "images"
    return tifffile.imread(d / "img2d.tif").astype(np.float32), tifffile.imread(d / "mask2d.tif").astype(np.int32)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """Grey fluorescence -> uint8 RGB, stretched between its 1st and 99.8th percentiles (StarDist's normalisation)."""
    lo, hi = np.percentile(img, [1, 99.8])
    g = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat(np.round(g * 255).astype(np.uint8)[..., None], 3, axis=-1)


def three_class(instances: np.ndarray) -> np.ndarray:
    """Instance labels -> 0 background, 1 interior, 2 boundary (each instance's inner contour)."""
    from skimage.segmentation import find_boundaries

    out = (instances > 0).astype(np.uint8)
    out[find_boundaries(instances, mode="inner") & (instances > 0)] = 2
    return out


def to_instances(classes: np.ndarray) -> np.ndarray:
    """Connected interiors (class 1), grown over the nucleus pixels (classes 1 and 2) by watershed."""
    from scipy import ndimage
    from skimage.measure import label
    from skimage.segmentation import watershed

    seeds = label(classes == 1)
    fg = classes > 0
    return watershed(-ndimage.distance_transform_edt(fg), seeds, mask=fg)


def otsu_instances(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classical baseline: Otsu foreground, seeds where the distance to background >= 2 px, grown back."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.segmentation import watershed

    fg = img > threshold_otsu(img)
    dist = ndimage.distance_transform_edt(fg)
    return fg, watershed(-dist, label(dist >= 2), mask=fg)


def match(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> dict:
    """One-to-one instance matches at IoU >= ``iou`` (above 0.5 a match is unique by construction)."""
    t_ids, p_ids = np.unique(truth[truth > 0]), np.unique(pred[pred > 0])
    pairs = np.stack([truth.ravel(), pred.ravel()], 1)
    both = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)]
    inter = {}
    for (a, b), n in zip(*np.unique(both, axis=0, return_counts=True)):
        inter[(a, b)] = n
    t_area = dict(zip(*np.unique(truth[truth > 0], return_counts=True)))
    p_area = dict(zip(*np.unique(pred[pred > 0], return_counts=True)))
    ious = [n / (t_area[a] + p_area[b] - n) for (a, b), n in inter.items()]
    good = [v for v in ious if v >= iou]
    tp, fp, fn = len(good), len(p_ids) - len(good), len(t_ids) - len(good)
    prec, rec = tp / max(len(p_ids), 1), tp / max(len(t_ids), 1)
    return {"truth": int(len(t_ids)), "predicted": int(len(p_ids)), "precision": round(prec, 3),
            "recall": round(rec, 3), "f1": round(2 * prec * rec / max(prec + rec, 1e-9), 3),
            "accuracy": round(tp / max(tp + fp + fn, 1), 3), "matched_mean_iou": round(float(np.mean(good)) if good else 0.0, 3)}


def fg_iou(truth_fg: np.ndarray, pred_fg: np.ndarray) -> float:
    return float((truth_fg & pred_fg).sum() / max((truth_fg | pred_fg).sum(), 1))


def crops(rgb, classes, n: int, size: int, seed: int):
    """``n`` random ``size`` crops with random flips and quarter turns (image and mask together)."""
    rng = np.random.default_rng(seed)
    h, w = classes.shape
    xs, ys = [], []
    for _ in range(n):
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        a, b = rgb[y:y + size, x:x + size], classes[y:y + size, x:x + size]
        k = rng.integers(4)
        a, b = np.rot90(a, k), np.rot90(b, k)
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        xs.append(np.ascontiguousarray(a))
        ys.append(np.ascontiguousarray(b))
    return np.stack(xs), np.stack(ys)


def segment_tiled(seg, rgb: np.ndarray, size: int) -> np.ndarray:
    """Class map of a large image: overlapping ``size`` windows (stride size/2), probabilities averaged."""
    h, w = rgb.shape[:2]
    starts = lambda n: sorted({*range(0, n - size + 1, size // 2), n - size})  # noqa: E731
    boxes = [(y, x) for y in starts(h) for x in starts(w)]
    probs = seg.segment(np.stack([rgb[y:y + size, x:x + size] for y, x in boxes]), probs=True, progress=False)
    acc = np.zeros((h, w, len(NAMES)), np.float32)
    cnt = np.zeros((h, w, 1), np.float32)
    for (y, x), p in zip(boxes, probs):
        acc[y:y + size, x:x + size] += p
        cnt[y:y + size, x:x + size] += 1
    return (acc / cnt).argmax(-1)


def picture(img, truth, pred, base, path):
    import matplotlib.pyplot as plt
    from skimage.color import label2rgb

    from zoo.plots import save_figure

    fig, ax = plt.subplots(1, 4, figsize=(13, 7))
    ax[0].imshow(img, cmap="gray")
    ax[0].set_title("held-out half")
    for a, lab, title in ((ax[1], truth, "truth"), (ax[2], pred, "zoo U-Net"), (ax[3], base, "Otsu baseline")):
        a.imshow(label2rgb(lab, image=img / img.max(), bg_label=0, alpha=0.35))
        a.set_title(f"{title}: {len(np.unique(lab)) - 1} nuclei")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--head", default="unet")
    p.add_argument("--crop", type=int, default=64, help="crop side in image pixels")
    p.add_argument("--input-size", type=int, default=128, help="network input (crops are enlarged to it)")
    p.add_argument("--crops", type=int, default=1200)
    p.add_argument("--head-epochs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", default="runs/bench_nuclei")
    a = p.parse_args()
    print(cpu_line(), flush=True)

    from recipes import segmentation
    from recipes.segmentation import MaskedImages

    img, inst = stardist_image()
    rgb, classes = as_rgb(img), three_class(inst)
    half = img.shape[1] // 2
    x, y = crops(rgb[:, :half], classes[:, :half], a.crops, a.crop, seed=0)
    vx, vy = crops(rgb[:, :half], classes[:, :half], max(32, a.crops // 10), a.crop, seed=1)
    train, val = MaskedImages(x, y, NAMES), MaskedImages(vx, vy, NAMES)
    print(f"{a.crops} training crops of {a.crop} px from the left half ({len(np.unique(inst[:, :half])) - 1} nuclei); "
          f"test: the right half ({len(np.unique(inst[:, half:])) - 1} nuclei)", flush=True)

    t0 = time.perf_counter()
    seg = segmentation.train(train, val, backbone=a.backbone, head=a.head, input_size=a.input_size,
                             head_epochs=a.head_epochs, epochs=a.epochs, class_weights="balanced",
                             out_dir=a.out, verbose=2)
    train_s = time.perf_counter() - t0
    seg.save(Path(a.out) / "model")

    t_img, t_inst, t_rgb = img[:, half:], inst[:, half:], rgb[:, half:]
    pred_cls = segment_tiled(seg, t_rgb, a.crop)
    pred = to_instances(pred_cls)
    base_fg, base = otsu_instances(t_img)
    ours = {"foreground_iou": round(fg_iou(t_inst > 0, pred_cls > 0), 4), **match(t_inst, pred)}
    baseline = {"foreground_iou": round(fg_iou(t_inst > 0, base_fg), 4), **match(t_inst, base)}
    picture(t_img, t_inst, pred, base, Path(a.out) / "nuclei.png")
    summary = {"zoo": ours, "otsu_baseline": baseline, "train_seconds": round(train_s),
               "kept": seg.training_config.get("kept"), "config": vars(a),
               "published_dsb2018_tau0.5": STARDIST_PAPER}
    Path(a.out, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"\n{'':14} {'fg IoU':>7} {'F1@0.5':>7} {'prec':>6} {'recall':>6} {'TP/(TP+FP+FN)':>13}")
    for name, r in (("zoo " + a.head, ours), ("Otsu baseline", baseline)):
        print(f"{name:14} {r['foreground_iou']:7.3f} {r['f1']:7.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
              f"{r['accuracy']:13.3f}")
    for name, acc in STARDIST_PAPER.items():
        print(f"{name:14} {'':7} {'':7} {'':6} {'':6} {acc:13.3f}  (published: about 50 DSB2018 test images, not this half)")
    print(f"ratios to the baseline: fg IoU {ours['foreground_iou'] / max(baseline['foreground_iou'], 1e-9):.2f}x, "
          f"F1 {ours['f1'] / max(baseline['f1'], 1e-9):.2f}x; training {train_s / 60:.1f} min")


if __name__ == "__main__":
    main()
