"""Segmenter: a class for every pixel (U-Net or DeepLabV3+ on the backbone's P2-P5 pyramid).

```python
from zoo.tasks import segmenter
data = segmenter.read_masks("images/", "masks/")          # VOC-style PNG label maps (255: ignored)
seg = segmenter.train(train, val, backbone="efficientnet_lite0", head="unet", out_dir="runs/segment")
seg.segment(images); seg.evaluate(test); seg.save("runs/segment/model")
```
"""
from zoo.kinds import lazy_exports

TITLE = "Segmenter"
__getattr__ = lazy_exports(__name__, {
    "Segmenter": "model", "HEADS": "model", "miou_report": "model", "train": "model",
    "MaskedImages": "data", "IGNORE": "data", "read_masks": "data", "read_label_map": "data", "read_tfds": "data",
    "as_arrays": "data", "pet_mask": "data",
    "segmentation_loss": "train", "balanced_weights": "train", "augmenter": "train",
    "palette": "draw", "colorize": "draw", "overlay": "draw", "class_areas": "draw", "overlay_sheet": "draw",
})
