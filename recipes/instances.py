"""Instance masks from a detector and a semantic segmenter: one mask per detected box.

    from recipes.instances import InstanceSegmenter
    inst = InstanceSegmenter(zoo.load("runs/detect/model"), zoo.load("runs/segment/model"))
    out = inst.predict(images)    # per image: the detector's dict plus "masks" (n, H, W) bool
    inst.evaluate(test_scenes)    # COCO mask mAP (pycocotools "segm") beside the box mAP

A box's mask is the segmenter's pixels of the box's class inside the box (Mask R-CNN predicts a
mask per box from the box's features; here the per-pixel classes come from the segmenter's map,
which runs once per image). Where boxes of one class overlap, a pixel goes to the higher-scoring
box, so the masks never overlap. The two models are matched by class name: each detector class
must be one of the segmenter's.
"""
from __future__ import annotations

import numpy as np

from zoo.errors import DataError


def masks_for_boxes(detections: dict, class_map: np.ndarray, seg_class_of: list[int]) -> np.ndarray:
    """(n, H, W) bool: for box j, the pixels of ``class_map`` inside it whose class is
    ``seg_class_of[label_j]``; overlapping boxes of a class give shared pixels to the higher score."""
    boxes = np.asarray(detections["boxes"], np.float64).reshape(-1, 4)
    labels = np.asarray(detections["labels"]).reshape(-1)
    scores = np.asarray(detections.get("scores", np.ones(len(boxes))), np.float64).reshape(-1)
    h, w = class_map.shape
    out = np.zeros((len(boxes), h, w), bool)
    taken = np.zeros((h, w), bool)
    for j in np.argsort(-scores, kind="stable"):
        x1, y1 = int(np.floor(max(boxes[j, 0], 0))), int(np.floor(max(boxes[j, 1], 0)))
        x2, y2 = int(np.ceil(min(boxes[j, 2], w))), int(np.ceil(min(boxes[j, 3], h)))
        if x2 <= x1 or y2 <= y1:
            continue
        m = (class_map[y1:y2, x1:x2] == seg_class_of[int(labels[j])]) & ~taken[y1:y2, x1:x2]
        out[j, y1:y2, x1:x2] = m
        taken[y1:y2, x1:x2] |= m
    return out


class InstanceSegmenter:
    """A detector (boxes, classes) and a segmenter (per-pixel classes) as one instance segmenter."""

    def __init__(self, detector, segmenter):
        names = list(segmenter.class_names)
        missing = [n for n in detector.class_names if n not in names]
        if missing:
            raise DataError(f"the segmenter has no class {missing[0]!r} (of the detector's {len(detector.class_names)}); "
                            f"its classes are {names[:12]}: train both on the same class names")
        self.detector, self.segmenter = detector, segmenter
        self.seg_class_of = [names.index(n) for n in detector.class_names]
        self.class_names = list(detector.class_names)

    def predict(self, images, score_threshold: float = 0.3, batch_size: int = 16, progress: bool = False,
                class_agnostic: bool = True) -> list[dict]:
        """Per image the detector's dict ("boxes", "scores", "labels", "names") plus "masks" (n, H, W) bool
        in that image's own pixels. ``class_agnostic=False``: NMS per class, as COCO scoring expects."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        dets = self.detector.detect(images, score_threshold=score_threshold, batch_size=batch_size, progress=progress,
                                    class_agnostic=class_agnostic)
        maps = self.segmenter.segment(images, batch_size=batch_size, progress=progress)
        if len(dets) != len(maps):
            raise DataError(f"{len(dets)} images detected but {len(maps)} segmented: some could not be read")
        return [{**d, "masks": masks_for_boxes(d, m, self.seg_class_of)} for d, m in zip(dets, maps)]

    def evaluate(self, data, score_threshold: float = 0.05) -> dict:
        """COCO mask AP ("mask": mAP, mAP50, ...) and box AP ("box", as ``detector.evaluate`` gives it)
        on data with instance maps (demo scenes: ``instances[i]`` (H, W), 0 background, j + 1 for box j)."""
        from zoo.tasks.detector import coco_metrics

        if not hasattr(data, "instances"):
            raise DataError("instance evaluation needs per-object masks: pass demo scenes (recipes.scenes) or an "
                            "object with images, boxes, labels and instances")
        gt_masks = [np.stack([inst == j + 1 for j in range(len(b))]) if len(b) else np.zeros((0, *inst.shape), bool)
                    for inst, b in zip(data.instances, data.boxes)]
        out = self.predict(data.images, score_threshold=score_threshold, class_agnostic=False)
        return {"mask": coco_metrics(data.boxes, data.labels, out, self.class_names, gt_masks=gt_masks),
                "box": coco_metrics(data.boxes, data.labels, out, self.class_names)}
