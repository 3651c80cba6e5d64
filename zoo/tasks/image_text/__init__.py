"""Image-text: images and sentences in one space (LiT projections on a zoo image tower and a text
tower, or ConSE with no image-text training): zero-shot from class names and text search.

```python
from zoo.tasks import image_text
pairs = image_text.read_pairs("captions.csv", "images/")     # path,caption rows; JSONL; or arrays
clip = image_text.train(pairs, val, image_model="efficientnet_lite0", mode="lit", loss="siglip")
clip.zero_shot(images, ["sandal", "sneaker"]); image_text.conse("efficientnet_lite0")
clip = image_text.load("siglip2_base_patch16_224")             # CLIP / SigLIP: both towers pretrained
```
"""
from zoo.kinds import lazy_exports

TITLE = "Image-text"
__getattr__ = lazy_exports(__name__, {
    "DualEncoder": "model", "ImageTextModel": "model", "ConSE": "model", "Head": "model", "conse": "model",
    "DEFAULT_TEMPLATES": "model", "l2": "model", "retrieval_metrics": "model", "search_text": "model",
    "zero_shot_files": "model",
    "Pairs": "data", "read_pairs": "data", "load": "pretrained", "PretrainedDualEncoder": "pretrained",
    "train": "train", "clip_loss": "train", "siglip_loss": "train",
})
