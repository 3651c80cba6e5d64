"""COCO box (and mask) metrics through pycocotools, and the checks on labelled detection data."""
from __future__ import annotations

import contextlib
import io

import numpy as np

from zoo.errors import DataError, MissingDependencyError


def detection_arrays(data, class_names=None):
    """``(images, boxes, labels)`` from a labelled detection set or tuple, checked."""
    if isinstance(data, tuple) and len(data) == 3:
        imgs, boxes, labels = data
    elif all(hasattr(data, a) for a in ("images", "boxes", "labels")):
        imgs, boxes, labels = data.images, data.boxes, data.labels
        theirs = getattr(data, "class_names", None)
        if class_names is not None and theirs and list(theirs) != list(class_names):
            raise DataError(f"the data's classes {list(theirs)[:4]}... differ from the model's "
                            f"{list(class_names)[:4]}...")
    else:
        raise DataError(f"cannot evaluate on {type(data).__name__}: pass an object with .images, .boxes and "
                        ".labels (demo scenes, zoo.tasks.detector.read_coco / read_voc / read_yolo) or an "
                        "(images, boxes, labels) tuple")
    boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
    labels = [np.asarray(lab, np.int64).reshape(-1) for lab in labels]
    if not (len(imgs) == len(boxes) == len(labels)):
        raise DataError(f"{len(imgs)} images, {len(boxes)} box lists and {len(labels)} label lists: one of each "
                        "per image")
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        if len(b) != len(lab):
            raise DataError(f"image {i}: {len(b)} boxes but {len(lab)} labels")
        if class_names is not None and len(lab) and (lab.min() < 0 or lab.max() >= len(class_names)):
            raise DataError(f"image {i}: class id {int(lab.max() if lab.max() >= len(class_names) else lab.min())} "
                            f"is outside the model's {len(class_names)} classes")
    return imgs, boxes, labels


def coco_metrics(gt_boxes, gt_labels, detections, class_names, gt_masks=None) -> dict:
    """COCO mAP@[.5:.95], mAP50, mAP75, by size, AR@100 and per-class AP, computed by pycocotools.

    ``detections``: per image a dict with "boxes" (xyxy), "scores", "labels" (as ``detect``).
    A class without ground truth gets AP None (COCO leaves it out of the mean). With ``gt_masks``
    (per image (k, H, W) bool, one per box) the overlaps are of masks (COCO's "segm"), and each
    detection dict needs "masks" (n, H, W) as well.
    """
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingDependencyError("COCO evaluation needs pycocotools: pip install pycocotools") from exc
    if len(detections) != len(gt_boxes):
        raise DataError(f"{len(detections)} detection results for {len(gt_boxes)} images")
    segm = gt_masks is not None
    rle = lambda m: mask_utils.encode(np.asfortranarray(np.asarray(m, np.uint8)))  # noqa: E731
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    anns, dets = [], []
    for i, (b, lab) in enumerate(zip(gt_boxes, gt_labels)):
        for j, (box, c) in enumerate(zip(np.asarray(b, np.float64).reshape(-1, 4), np.asarray(lab).reshape(-1))):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [box[0], box[1], w, h], "area": w * h})
            if segm:
                anns[-1]["segmentation"] = rle(gt_masks[i][j])
                anns[-1]["area"] = float(mask_utils.area(anns[-1]["segmentation"]))
        d = detections[i]
        for j, (box, s, c) in enumerate(zip(np.asarray(d["boxes"], np.float64).reshape(-1, 4), d["scores"], d["labels"])):
            dets.append({"image_id": i, "category_id": int(c) + 1, "score": float(s)})
            if segm:  # loadRes takes "bbox" before "segmentation": give masks only
                dets[-1]["segmentation"] = rle(d["masks"][j])
            else:
                dets[-1]["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
    n_boxes = len(anns)
    out = {"n_images": len(gt_boxes), "n_boxes": n_boxes, "n_detections": len(dets)}
    present = {a["category_id"] - 1 for a in anns}
    if not n_boxes or not dets:
        zero = {k: 0.0 for k in ("mAP", "mAP50", "mAP75", "AR100")} | dict.fromkeys(("mAP_small", "mAP_medium", "mAP_large"))
        return {**zero, "per_class": {n: (0.0 if k in present else None) for k, n in enumerate(class_names)}, **out}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        images = [{"id": i} for i in range(len(gt_boxes))]
        if segm:  # COCO reads each image's size before it reads a mask
            for im, m in zip(images, gt_masks):
                im["height"], im["width"] = (int(v) for v in np.shape(m)[-2:])
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "segm" if segm else "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    per_class = {}
    for k, name in enumerate(class_names):
        p = ev.eval["precision"][:, :, k, 0, -1]  # IoU thresholds x recall points, all areas, 100 dets
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() and k in present else None
    main = {n: max(float(v), 0.0) for n, v in zip(("mAP", "mAP50", "mAP75"), s[:3])}
    by_size = {n: (float(v) if v > -1 else None) for n, v in zip(("mAP_small", "mAP_medium", "mAP_large"), s[3:6])}
    return {**main, **by_size, "AR100": max(float(s[8]), 0.0), "per_class": per_class, **out}
