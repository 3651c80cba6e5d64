"""Image-text on Fashion-MNIST: the demo captions; the models, training and search live in
:mod:`zoo.tasks.image_text` (re-exported here so that demo scripts read as one module).

```python
from recipes import image_text
pairs = image_text.fashion_pairs("train", per_class=2000)     # Fashion-MNIST images with generated captions
clip = image_text.train(pairs, val, image_model="efficientnet_lite0", mode="lit", loss="clip", epochs=20)
clip.zero_shot(images, ["sandal", "sneaker"]); clip.evaluate(test_pairs)
zs = image_text.conse("efficientnet_lite0")                   # zero-shot with no image-text training
clip = image_text.load("siglip2_base_patch16_224")             # pretrained CLIP / SigLIP towers
image_text.search_text(index, clip, "a white sneaker", k=10)
```

Demo data: Fashion-MNIST with captions generated from class names, synonyms and descriptions
(:func:`fashion_pairs`); some wordings are held out of training to test generalisation.
"""
from __future__ import annotations

import numpy as np

from zoo.errors import DataError, RecipeError  # noqa: F401  (re-exported)
from zoo.tasks.image_text.data import Pairs, read_pairs  # noqa: F401  (re-exported)
from zoo.tasks.image_text.model import (  # noqa: F401
    DEFAULT_TEMPLATES, ConSE, DualEncoder, Head, ImageTextModel, conse, l2, retrieval_metrics, search_text,
    zero_shot_files,
)
from zoo.tasks.image_text.pretrained import PretrainedDualEncoder, load  # noqa: F401
from zoo.tasks.image_text.train import LOSSES, MODES, clip_loss, siglip_loss, train  # noqa: F401


# Fashion-MNIST captions: class -> (phrases used in training captions, phrases held out for testing)
FASHION_PHRASES = {
    "T-shirt/top": (["a t-shirt", "a tee", "a top", "a short-sleeved t-shirt", "a plain cotton tee", "a casual top"],
                    ["a tee shirt", "a crew-neck top"]),
    "Trouser": (["trousers", "a pair of trousers", "pants", "a pair of pants", "long trousers", "slacks"],
                ["jeans", "a pair of chinos"]),
    "Pullover": (["a pullover", "a sweater", "a jumper", "a knitted pullover", "a long-sleeved sweater", "a warm jumper"],
                 ["a knit sweatshirt", "a woollen jersey"]),
    "Dress": (["a dress", "a summer dress", "a sleeveless dress", "a long dress", "a frock", "a one-piece dress"],
              ["a gown", "a sundress"]),
    "Coat": (["a coat", "a jacket", "an overcoat", "a winter coat", "a buttoned coat", "a long jacket"],
             ["a parka", "an anorak"]),
    "Sandal": (["a sandal", "sandals", "an open-toed sandal", "a strappy sandal", "a summer sandal", "a flat sandal"],
               ["flip-flops", "a beach slipper"]),
    "Shirt": (["a shirt", "a button-up shirt", "a collared shirt", "a long-sleeved shirt", "a blouse", "a dress shirt"],
              ["a button-down", "a flannel shirt"]),
    "Sneaker": (["a sneaker", "sneakers", "a trainer", "a running shoe", "a sports shoe", "a canvas sneaker"],
                ["athletic shoes", "a tennis shoe"]),
    "Bag": (["a bag", "a handbag", "a purse", "a tote bag", "a shoulder bag", "a leather bag"],
            ["a satchel", "a clutch"]),
    "Ankle boot": (["an ankle boot", "a boot", "boots", "a short boot", "a leather boot", "a heeled boot"],
                   ["a chelsea boot", "a bootie"]),
}
CAPTION_TEMPLATES = ["{}", "a photo of {}.", "a picture of {}.", "a black and white photo of {}.",
                     "a small photo of {}.", "a product photo of {}.", "this is {}."]
HELD_OUT_TEMPLATES = ["an image of {}.", "a grayscale picture showing {}."]
# the class names a user would type for zero-shot, in the plural where MiniLM's vocabulary has only
# that form ("sandal", "sneaker", "trouser" split into word pieces: "sand ##al", "sneak ##er")
FASHION_NAMES = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandals", "shirt", "sneakers", "bag", "ankle boots"]


def fashion_captions(labels, held_out: bool = False, seed: int = 0) -> list[str]:
    """A caption per Fashion-MNIST label: a random phrase of its class in a random template; with
    ``held_out`` only the wordings (phrases and templates) that training captions never use."""
    from zoo.data import FASHION_MNIST_CLASSES

    rng = np.random.default_rng(seed)
    out = []
    for y in np.asarray(labels, int):
        train_p, test_p = FASHION_PHRASES[FASHION_MNIST_CLASSES[y]]
        phrases, templates = (test_p, HELD_OUT_TEMPLATES) if held_out else (train_p, CAPTION_TEMPLATES)
        out.append(templates[rng.integers(len(templates))].format(phrases[rng.integers(len(phrases))]))
    return out


def fashion_pairs(split: str = "train", classes=None, per_class: int | None = None, held_out: bool = False,
                  seed: int = 0) -> Pairs:
    """Fashion-MNIST images with generated captions; ``classes``: class indices to keep (default all);
    labels are the dataset's class indices."""
    from zoo import data

    d = data.fashion_mnist(split)
    if per_class:
        d = d.subset(per_class=per_class, seed=seed)
    keep = np.flatnonzero(np.isin(d.labels, list(range(10)) if classes is None else list(classes)))
    return Pairs(d.images[keep], fashion_captions(d.labels[keep], held_out, seed), d.labels[keep])
