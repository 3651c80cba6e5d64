"""Instance masks from the demo detector and the demo segmenter (recipes.instances) on held-out scenes.

    python bench/instances.py --detector runs/detect/model --segmenter runs/segment/model

Prints COCO mask AP (pycocotools "segm") beside the detector's box AP on the same detections, and
the mask AP with the true boxes in place of the detector's (what the segmenter's maps alone allow),
and the class maps' mIoU with the boxes' classes mixed in (``InstanceSegmenter.segment``, weight
--weight) beside the segmenter's alone, on the default scenes and on those composed differently.
``--tta flip`` or ``--tta multiscale``: the segmenter's test-time augmentation for every map
(``Segmenter.segment(tta=...)``: mirrored, or mirrored at four scales).
Writes ``instances.png`` (each instance in its own colour) beside the detector folder unless --out.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402
from zoo.tasks.segmenter.tta import BY_NAME  # noqa: E402


def picture(images, outputs, path, columns: int = 4):
    import matplotlib.pyplot as plt

    from zoo.plots import save_figure

    rng = np.random.default_rng(0)
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows))
    for ax, img, o in zip(np.ravel(axes), images, outputs):
        shown = img.astype(np.float32).copy()
        for m, name, score in zip(o["masks"], o["names"], o["scores"]):
            shown[m] = 0.45 * shown[m] + 0.55 * rng.integers(60, 255, 3)
            ys, xs = np.nonzero(m)
            if len(xs):
                ax.text(xs.min(), ys.min(), f"{name} {score:.2f}", fontsize=6, color="white",
                        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1})
        ax.imshow(shown.astype(np.uint8))
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", default="runs/detect/model")
    p.add_argument("--segmenter", default="runs/segment/model")
    p.add_argument("--scenes", type=int, default=500)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--weight", type=float, default=0.3, help="the boxes' share in the fused class maps")
    p.add_argument("--tta", choices=tuple(BY_NAME), default="none",
                   help="the segmenter's test-time augmentation (multiscale: flip at 4 scales, 8x the work)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    print(cpu_line(), flush=True)

    import zoo
    from recipes.instances import InstanceSegmenter, masks_for_boxes
    from recipes.scenes import scenes
    from zoo.tasks.detector import coco_metrics

    tta = BY_NAME[a.tta]
    inst = InstanceSegmenter(zoo.load(a.detector), zoo.load(a.segmenter), tta=tta)
    test = scenes("test", n=a.scenes, size=a.size)
    t = time.perf_counter()
    r = inst.evaluate(test)
    secs = time.perf_counter() - t
    truth = [np.stack([m == j + 1 for j in range(len(b))]) for m, b in zip(test.instances, test.boxes)]
    maps = inst.segmenter.segment(test.images, progress=False, tta=tta)
    oracle = [{"boxes": b, "labels": lab, "scores": np.ones(len(b)),
               "masks": masks_for_boxes({"boxes": b, "labels": lab}, m, inst.seg_class_of)}
              for b, lab, m in zip(test.boxes, test.labels, maps)]
    o = coco_metrics(test.boxes, test.labels, oracle, inst.class_names, gt_masks=truth)
    out = Path(a.out or Path(a.detector).parent)
    picture(test.images[:8], inst.predict(test.images[:8]), out / "instances.png")
    print(f"{len(test)} held-out scenes ({r['mask']['n_boxes']} objects), {secs:.0f}s for detection + segmentation + scoring")
    print(f"  box  AP: mAP {r['box']['mAP']:.3f}, mAP50 {r['box']['mAP50']:.3f}")
    print(f"  mask AP: mAP {r['mask']['mAP']:.3f}, mAP50 {r['mask']['mAP50']:.3f}")
    print(f"  mask AP with the true boxes: mAP {o['mAP']:.3f}, mAP50 {o['mAP50']:.3f}")
    for style in ("default", "shifted"):
        t = time.perf_counter()
        m = inst.evaluate_maps(scenes("test", n=a.scenes, size=a.size, style=style), weight=a.weight)
        print(f"  class maps, {style} scenes: mIoU {m['segmenter']['mIoU']:.4f} (segmenter alone), "
              f"{m['fused']['mIoU']:.4f} with the boxes' classes at weight {a.weight} ({time.perf_counter() - t:.0f}s)")
    print(f"picture: {out / 'instances.png'}")


if __name__ == "__main__":
    main()
