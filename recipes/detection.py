"""Object detection on the offline demo scenes: the recipes' side of ``zoo.tasks.detector``.

```python
from recipes import detection
train, val, test = detection.scenes()                     # Fashion-MNIST items on real photos (recipes.scenes)
det = detection.train(train, val, backbone="efficientnet_lite0", head_epochs=12, out_dir="runs/detect")
det.detect(images); det.evaluate(test); det.save("runs/detect/model")
```
The model, its data types and readers (COCO / Pascal VOC / YOLO / tensorflow-datasets), writers,
tiling, training spec and drawing live in :mod:`zoo.tasks.detector`; they are re-exported here so
that demo scripts read as one module.
"""
from __future__ import annotations

from zoo.tasks.detector.data import (  # noqa: F401  (re-exported)
    DetectionData, DetectionDataError, as_detection_data, read_coco, read_tfds, read_voc, read_yolo, tiles,
    write_coco, write_voc, write_yolo,
)
from zoo.tasks.detector.draw import draw, sheet  # noqa: F401
from zoo.tasks.detector import second_stage  # noqa: F401  (crop classifier: R-CNN's second stage)
from zoo.tasks.detector.model import Detector, train  # noqa: F401
from zoo.tasks.detector.train import AUGMENT, augment_example, letterbox_set, training_dataset  # noqa: F401


def scenes(split="all", n=None, size: int = 128, seed: int = 0, style: str = "default"):
    """The offline demo scenes (:mod:`recipes.scenes`): Fashion-MNIST items on real photos,
    labels 0-9 with their names. ``split``: "train", "val", "test" or "all" (a tuple of three)."""
    from recipes.scenes import scenes as make

    return make(split, n=n, size=size, seed=seed, style=style)
