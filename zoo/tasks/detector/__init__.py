"""Detector: boxes, classes and scores (RetinaNet on the backbone's P3-P5 pyramid), or MTCNN faces.

```python
from zoo.tasks import detector
data = detector.read_coco("ann.json", "images/")     # or read_voc(dir) / read_yolo(dir, names) / read_tfds("voc")
det = detector.train(train, val, backbone="efficientnet_lite0", head_epochs=12, out_dir="runs/detect")
det.detect(images); det.evaluate(test); det.save("runs/detect/model")
det.attach_second_stage(second_stage.train(train, canvas=det.input_size))   # crops re-judged (R-CNN)
```
"""
from zoo.kinds import lazy_exports

TITLE = "Detector"
__getattr__ = lazy_exports(__name__, {
    "Detector": "model", "HEAD_DEFAULTS": "model", "postprocess": "model", "train": "model",
    "DetectionData": "data", "DetectionDataError": "data", "as_detection_data": "data", "read_coco": "data",
    "read_voc": "data", "read_yolo": "data", "read_tfds": "data", "tiles": "data", "write_coco": "data",
    "write_voc": "data", "write_yolo": "data", "tfds_boxes": "data",
    "AUGMENT": "train", "augment_example": "train", "letterbox_set": "train", "training_dataset": "train",
    "coco_metrics": "metrics", "detection_arrays": "metrics", "FaceDetector": "faces",
    "draw": "draw", "sheet": "draw",
})
