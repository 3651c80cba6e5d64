"""A pretrained face detector with weights in its wheel (MTCNN, package ``mtcnn``), behind the
detector interface: ``zoo.load("mtcnn_faces").detect(images)``."""
from __future__ import annotations

import numpy as np

from zoo import images as zimages
from zoo.errors import ImageError
from zoo.inference import Embedded
from zoo.kinds import register_named
from zoo.tasks.detector.metrics import coco_metrics, detection_arrays


class FaceDetector:
    """MTCNN faces (package ``mtcnn``, weights in its wheel) behind the same ``detect`` interface.

    ``zoo.load("mtcnn_faces")``; ``detect`` returns one class, "face".
    MTCNN runs on each image at its own size (its image pyramid starts at ``min_face_size``).
    """

    kind = "pretrained_detector"
    name = "mtcnn_faces"
    class_names = ["face"]

    def __init__(self, min_face_size: int = 20):
        from zoo.extras import require

        MTCNN = require("mtcnn", "the face detector").MTCNN
        self.min_face_size = int(min_face_size)
        self._mtcnn = MTCNN(stages="face_and_landmarks_detection")

    def __repr__(self):
        return f"<FaceDetector MTCNN, faces from {self.min_face_size} px>"

    def detect(self, images, score_threshold: float = 0.9, iou_threshold: float = 0.5, max_detections: int = 100,
               batch_size: int = 1, return_sources: bool = False, value_range: str = "auto", progress: bool = False):
        """Per image ``{"boxes", "scores", "labels", "names", "keypoints"}`` (see ``Detector.detect``)."""
        stream = zimages.originals(images, value_range)
        results, sources = [], []
        for source, img in stream:
            u8 = np.clip(img, 0, 255).astype(np.uint8)
            faces = self._mtcnn.detect_faces(u8, box_format="xyxy", min_face_size=self.min_face_size,
                                             threshold_onet=max(float(score_threshold), 0.0), nms_onet=iou_threshold)
            faces = sorted(faces, key=lambda f: -float(f["confidence"]))[:max_detections]
            faces = [f for f in faces if float(f["confidence"]) >= score_threshold]
            h, w = u8.shape[:2]
            b = np.array([f["box"] for f in faces], np.float32).reshape(-1, 4)
            b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
            results.append({"boxes": b, "scores": np.array([f["confidence"] for f in faces], np.float32),
                            "labels": np.zeros(len(faces), np.int64), "names": ["face"] * len(faces),
                            "keypoints": [{k: tuple(int(v) for v in p) for k, p in f["keypoints"].items()}
                                          for f in faces]})
            sources.append(source)
        if not results:
            raise ImageError(f"none of the images could be read{': ' + stream.skipped[0][1] if stream.skipped else ''}")
        return Embedded(results, sources, list(stream.skipped)) if return_sources else results

    def evaluate(self, data, score_threshold: float = 0.5, **_) -> dict:
        imgs, boxes, labels = detection_arrays(data, self.class_names)
        r = self.detect(imgs, score_threshold=score_threshold, return_sources=True)
        return coco_metrics(boxes, labels, r.outputs, self.class_names)


@register_named("mtcnn_faces")
def mtcnn_faces(**kwargs) -> FaceDetector:
    """``zoo.load("mtcnn_faces")``: MTCNN behind the detector interface."""
    return FaceDetector(**kwargs)
