"""A second stage in the R-CNN manner: a classifier of box crops re-judges the detector's classes.

```python
from zoo.tasks.detector import second_stage
clf = second_stage.train(train_data, backbone="efficientnet_lite0", input_size=48)   # a Classifier of crops
det.attach_second_stage(clf)          # detect / evaluate / save / export now use both stages
```
The detector keeps one box per place (class-agnostic NMS); each kept box is cut from the network's
input as a square with ``context`` around it (:func:`crop_boxes`), classified, and its class
probabilities become the geometric mean of the detector's (normalised over the classes) and the
classifier's, weighted ``weight`` towards the classifier. A box's score is the geometric mean of
the detector's confidence in it and the mixed probability of the class (their product ranks boxes
best, measured on the demo scenes; its square root keeps scores on the detector's scale, so the
same thresholds serve). Only boxes the detector alone keeps at the score threshold are re-judged,
and those whose new score falls below it are dropped. With per-class
output (``class_agnostic=False``, as COCO evaluation asks) each box comes back once for each of
its ``top_k`` likeliest classes. ``flip``: each crop's probabilities are averaged with its mirror
image's (measured on the demo scenes: mAP50 0.827 -> 0.831, shifted scenes 0.722 -> 0.731, for
twice the classifier's work on small crops; folders saved before the setting existed keep it off).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from zoo.errors import DataError, RecipeError
from zoo.kinds import get_kind

DEFAULTS = {"weight": 0.5, "context": 0.15, "top_k": 3, "flip": True}


def check_settings(weight: float, context: float, top_k: int, flip: bool = DEFAULTS["flip"]) -> dict:
    """The second stage's settings, checked: a clear error for values it cannot use."""
    if not 0.0 <= float(weight) <= 1.0:
        raise RecipeError(f"weight (the classifier's share of the class probabilities) must be in [0, 1]; got {weight!r}")
    if not 0.0 <= float(context) <= 2.0:
        raise RecipeError(f"context (the margin around a box, as a fraction of its longer side) must be in [0, 2]; "
                          f"got {context!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise RecipeError(f"top_k (classes kept per box) must be a positive integer; got {top_k!r}")
    if not isinstance(flip, (bool, np.bool_)):
        raise RecipeError(f"flip (average each crop with its mirror image) must be True or False; got {flip!r}")
    return {"weight": float(weight), "context": float(context), "top_k": int(top_k), "flip": bool(flip)}


def check_classifier(classifier, class_names) -> None:
    if not isinstance(classifier, get_kind("classifier")):
        raise RecipeError(f"a second stage is a Classifier of box crops (zoo.tasks.detector.second_stage.train), "
                          f"not {type(classifier).__name__}")
    if list(classifier.class_names) != list(class_names):
        raise DataError(f"the classifier's classes {list(classifier.class_names)[:4]}... differ from the detector's "
                        f"{list(class_names)[:4]}...: train it on the detector's data (same class names, same order)")


def square_boxes(boxes, context: float):
    """Each xyxy box as the square around its centre whose side is the box's longer side plus
    ``context`` of it on each side (the crop a second stage sees)."""
    x0, y0, x1, y1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    half = tf.maximum(x1 - x0, y1 - y0) * (0.5 + context)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return tf.stack([cx - half, cy - half, cx + half, cy + half], axis=-1)


def crop_boxes(pixels, boxes, box_indices, size: int, context: float):
    """Square crops (K, size, size, 3) float32 of ``pixels`` (B, H, W, 3) around ``boxes`` (K, 4)
    xyxy in pixels of image ``box_indices`` (K,); black beyond the image. Sampled at twice the
    size, then averaged over 2x2 blocks, so large boxes are not aliased."""
    pixels = tf.cast(pixels, tf.float32)
    sq = square_boxes(boxes, context)
    h, w = tf.cast(tf.shape(pixels)[1], tf.float32), tf.cast(tf.shape(pixels)[2], tf.float32)
    # one black row and column more: ONNX Runtime's Resize ignores the crop when the sampled size
    # equals the image's (a 96 px canvas, 48 px crops sampled at 96); an odd side never does
    pixels = tf.pad(pixels, [[0, 0], [0, 1], [0, 1], [0, 0]])
    normalized = tf.stack([sq[:, 1] / h, sq[:, 0] / w, sq[:, 3] / h, sq[:, 2] / w], axis=-1)
    crops = tf.image.crop_and_resize(pixels, normalized, tf.cast(box_indices, tf.int32), (2 * size, 2 * size),
                                     extrapolation_value=0.0)
    return tf.nn.avg_pool2d(crops, 2, 2, "VALID")     # area-averaged to size (an op every runtime has)


def item_crops(data, size: int = 48, context: float = DEFAULTS["context"], jitter: float = 0.0, copies: int = 1,
               canvas: int | None = None, seed: int = 0):
    """Every labelled box of detection data as a crop a second stage learns from (``LabeledImages``).

    ``canvas``: cut the crops from each image letterboxed to this side, as a detector of that
    ``input_size`` sees it (None: from the image as it is). ``jitter``: each box edge moved by up to
    this fraction of the box's side, as a detector's boxes stray from the truth; ``copies``: crops
    per box (each jittered anew)."""
    from zoo import images as zimages
    from zoo.data import LabeledImages
    from zoo.tasks.detector.data import as_detection_data

    if not 0.0 <= jitter < 0.5:
        raise RecipeError(f"jitter must be in [0, 0.5); got {jitter!r}")
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise RecipeError(f"copies must be a positive integer; got {copies!r}")
    data = as_detection_data(data)
    rng = np.random.default_rng(seed)
    crops, out_labels = [], []
    for pixels, boxes, labels in _image_groups(data, canvas):
        where, cut = [], []
        for i, (b, lab) in enumerate(zip(boxes, labels)):
            b = np.repeat(np.asarray(b, np.float32).reshape(-1, 4), copies, axis=0)
            if jitter:
                side = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, axis=1)
                b = b + rng.uniform(-jitter, jitter, b.shape).astype(np.float32) * side
            cut.append(b)
            where.append(np.full(len(b), i, np.int32))
            out_labels.append(np.repeat(np.asarray(lab, np.int64), copies))
        crops.append(crop_boxes(pixels, np.concatenate(cut), np.concatenate(where), size, context).numpy())
    if not crops:
        raise DataError("the data has no labelled boxes to crop")
    return LabeledImages(zimages.as_uint8(np.concatenate(crops)), np.concatenate(out_labels), list(data.class_names))


def _image_groups(data, canvas: int | None):
    """``(pixels (n, H, W, 3) float32, boxes, labels)`` groups of the images that have boxes: 256
    canvases letterboxed to ``canvas`` at a time (all of them would not fit in memory), or, with
    no canvas, one image at a time as it is (their sizes differ)."""
    from zoo import images as zimages
    from zoo.tasks.detector.train import letterbox_set

    if canvas is None:
        for img, b, lab in zip(data.images, data.boxes, data.labels):
            if len(b):
                yield zimages.rgb(img)[None], [b], [lab]
        return
    for start in range(0, len(data), 256):
        images, boxes, labels = letterbox_set(data.take(range(start, min(start + 256, len(data)))), int(canvas))
        has = [i for i in range(len(images)) if (labels[i] >= 0).any()]
        if has:
            yield (images[has].astype(np.float32), [boxes[i][labels[i] >= 0] for i in has],
                   [labels[i][labels[i] >= 0] for i in has])


def train(data, val=None, backbone="efficientnet_lite0", input_size: int = 48, context: float = DEFAULTS["context"],
          jitter: float = 0.05, copies: int = 1, canvas: int | None = None, seed: int = 0, **kwargs):
    """A classifier of ``data``'s box crops (:func:`item_crops`) for :meth:`Detector.attach_second_stage`:
    ``backbone`` fine-tuned at ``input_size`` by the classifier recipe (keyword arguments are its
    settings: ``epochs``, ``head_epochs``, ``max_minutes``...). ``canvas``: the detector's
    ``input_size``, so that the crops are cut as the second stage will see them. ``val``: detection
    data whose boxes validate it (default: the recipe's own split of the crops)."""
    crops = item_crops(data, input_size, context, jitter, copies, canvas, seed)
    val_crops = item_crops(val, input_size, context, canvas=canvas) if val is not None else None
    return get_kind("classifier").train(crops, val_crops, backbone=backbone, input_size=input_size, seed=seed,
                                        **kwargs)


def rescore(pixels, boxes, scores, det_probs, count, classifier_model, size: int, settings: dict,
            max_detections: int, score_threshold: float, class_agnostic: bool):
    """The second stage in the graph: the first stage's padded class-agnostic output (``boxes``
    (B, D, 4) in ``pixels``' coordinates, ``scores`` (B, D), ``det_probs`` (B, D, C), ``count``
    (B,)) -> padded ``(boxes, scores, labels, count)`` as :func:`postprocess` gives them."""
    b_shape = tf.shape(boxes)
    n_img, n_det = b_shape[0], b_shape[1]
    valid = tf.sequence_mask(count, n_det)
    where = tf.cast(tf.where(valid), tf.int32)
    side = tf.cast(tf.shape(pixels)[1:3], tf.float32)          # boxes cut as detect() returns them: clipped
    limit = tf.stack([side[1], side[0], side[1], side[0]])
    crops = crop_boxes(pixels, tf.clip_by_value(tf.gather_nd(boxes, where), 0.0, limit), where[:, 0], size,
                       settings["context"])
    # one blank crop more, dropped after: a batch of images with no box left would be an empty batch
    crops = tf.concat([crops, tf.zeros([1, size, size, 3])], axis=0)
    clf_probs = tf.cast(classifier_model(crops, training=False), tf.float32)
    if settings.get("flip"):
        clf_probs = 0.5 * (clf_probs + tf.cast(classifier_model(tf.reverse(crops, [2]), training=False), tf.float32))
    clf_probs = clf_probs[:-1]
    num_classes = tf.shape(det_probs)[-1]
    clf = tf.scatter_nd(where, clf_probs, tf.stack([n_img, n_det, num_classes]))
    det = det_probs / tf.maximum(tf.reduce_sum(det_probs, -1, keepdims=True), 1e-9)
    w = settings["weight"]
    mixed = tf.exp(w * tf.math.log(tf.maximum(clf, 1e-6)) + (1 - w) * tf.math.log(tf.maximum(det, 1e-6)))
    mixed = mixed / tf.reduce_sum(mixed, -1, keepdims=True)
    k = 1 if class_agnostic else min(settings["top_k"], int(det_probs.shape[-1]))
    probs, labels = tf.math.top_k(mixed, k)                                    # (B, D, k)
    final = tf.sqrt(scores[..., None] * probs)     # the geometric mean: the detector's scale, the product's order
    keep = valid[..., None] & (final >= score_threshold)
    final = tf.reshape(tf.where(keep, final, -1.0), [n_img, -1])
    top = tf.math.top_k(final, tf.minimum(max_detections, tf.shape(final)[1]))
    order = top.indices
    out_boxes = tf.gather(tf.reshape(tf.repeat(boxes, k, axis=1), [n_img, -1, 4]), order, batch_dims=1)
    out_labels = tf.gather(tf.reshape(labels, [n_img, -1]), order, batch_dims=1)
    n = tf.reduce_sum(tf.cast(top.values >= 0, tf.int32), -1)
    pad = max_detections - tf.shape(order)[1]
    filled = tf.sequence_mask(n, tf.shape(order)[1])
    out_scores = tf.where(filled, top.values, 0.0)
    out_boxes = tf.where(filled[..., None], out_boxes, 0.0)
    out_labels = tf.where(filled, out_labels, 0)
    return (tf.pad(out_boxes, [[0, 0], [0, pad], [0, 0]]), tf.pad(out_scores, [[0, 0], [0, pad]]),
            tf.pad(out_labels, [[0, 0], [0, pad]]), n)
