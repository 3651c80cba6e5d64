"""Semantic segmentation on the offline demo scenes: the recipes' side of ``zoo.tasks.segmenter``.

```python
from recipes import segmentation
train, val, test = segmentation.scenes()                      # offline demo scenes with masks
seg = segmentation.train(train, val, backbone="efficientnet_lite0", head="unet", out_dir="runs/segment")
seg.segment(images); seg.evaluate(test); seg.save("runs/segment/model")
```
The model, its data types and readers (PNG label maps, tensorflow-datasets), training spec and
pictures live in :mod:`zoo.tasks.segmenter`; they are re-exported here so that demo scripts read
as one module.
"""
from __future__ import annotations

from recipes.scenes import Scenes, scenes  # noqa: F401  (re-exported)
from zoo.tasks.segmenter.data import (  # noqa: F401
    IGNORE, MaskedImages, as_arrays, read_label_map, read_masks, read_tfds,
)
from zoo.tasks.segmenter.draw import class_areas, colorize, overlay, overlay_sheet, palette  # noqa: F401
from zoo.tasks.segmenter.model import Segmenter, miou_report, train  # noqa: F401
from zoo.tasks.segmenter.train import augmenter, balanced_weights, segmentation_loss  # noqa: F401
