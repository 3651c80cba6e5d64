"""Segmentation side by side with what a user would otherwise run, in one run: the same demo scenes,
the same network input size, the same EfficientNet-Lite0 pyramid (ImageNet weights) and the same
wall-clock training budget for every model.

    python bench/peers_segment.py                         # 20 min each: the issue's budget
    python bench/peers_segment.py --minutes 8 --models unet deeplabv3plus hub   # what the README reports

Models (``--models``):
- ``unet``, ``deeplabv3plus``: the zoo's segmenter (``zoo.tasks.segmenter``) through the one trainer:
  head on the frozen body, then unfrozen, AdamW with cosine decay over the budget (``max_minutes``),
  cross-entropy + Dice with balanced class weights, flip/scale/colour augmentation.
- ``hub``: keras-hub's ``DeepLabV3ImageSegmenter`` as it ships: its backbone configured as keras-hub's
  own docstring example (ASPP on P5 with rates 6/12/18, upsampling 8, low-level P2, 48 projection
  filters), its ``compile()`` defaults (Adam 5e-5, categorical cross-entropy from logits, accuracy), and
  the plain tf.data pipeline a user writes (shuffle, batch; no augmentation).
- ``hub-zoo-lr``: the same keras-hub model and data, compiled with the zoo's peak learning rate
  (Adam 1e-3): what of the gap is the shipped learning rate alone.

What the peers needed to run at all (nothing in them changed): a ``keras.Model`` from raw pixels to
the zoo's P2..P5 features with a ``pyramid_outputs`` attribute (keras-hub's DeepLabV3Backbone reads
it); ``preprocessor=None`` because that model normalises the pixels itself; one-hot masks, because
``compile()`` ships ``CategoricalCrossentropy`` (its docstring promises the sparse one); images resized to the
network size as the zoo does (bilinear; masks nearest). The same budget stops every ``fit``
(``zoo.training.TimeBudget``); every model is scored by the same code: its class map resized to
each mask's size, the zoo's MeanIoU report (background included).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402

MODELS = ("unet", "deeplabv3plus", "hub", "hub-zoo-lr")


def zoo_model(head, train, val, a):
    """The zoo's segmenter trained for ``a.minutes`` (epochs only cap it); returns (predict fn, facts)."""
    from zoo.tasks.segmenter.model import Segmenter

    seg = Segmenter.train(train, val, backbone="efficientnet_lite0", head=head, input_size=a.input_size,
                          head_epochs=1, epochs=1000, max_minutes=a.minutes, class_weights="balanced",
                          batch_size=a.batch_size, verbose=2, patience=None)
    h = seg.history
    facts = {"epochs": len(h["loss"]), "kept": seg.training_config["kept"], "seconds": seg.training_config["seconds"]}
    return (lambda x: seg.segmentation_model.predict(x, batch_size=32, verbose=0)), facts


def pyramid_encoder(size: int):
    """Raw pixels (0-255) -> the zoo's EfficientNet-Lite0 P2..P5, exposing ``pyramid_outputs``."""
    import zoo

    m = zoo.load("efficientnet_lite0", input_size=size)
    enc = m.pyramid_model
    enc.pyramid_outputs = dict(enc.output)
    return enc


def hub_model(train, val, a, lr=None):
    """keras-hub's DeepLabV3ImageSegmenter as shipped (``lr``: Adam at this rate instead of its default)."""
    import keras
    import tensorflow as tf
    from keras_hub.models import DeepLabV3Backbone, DeepLabV3ImageSegmenter

    from zoo.training import TimeBudget

    keras.utils.set_random_seed(0)
    n = len(train.class_names)
    backbone = DeepLabV3Backbone(image_encoder=pyramid_encoder(a.input_size), spatial_pyramid_pooling_key="P5",
                                 upsampling_size=8, dilation_rates=[6, 12, 18], low_level_feature_key="P2",
                                 projection_filters=48, image_shape=(a.input_size, a.input_size, 3))
    model = DeepLabV3ImageSegmenter(backbone=backbone, num_classes=n, preprocessor=None)
    model.compile() if lr is None else model.compile(optimizer=keras.optimizers.Adam(lr))

    def ds(d, shuffle):  # one-hot masks: compile() ships CategoricalCrossentropy (its docstring says sparse)
        out = tf.data.Dataset.from_tensor_slices((d.x, d.y))
        if shuffle:
            out = out.shuffle(len(d.x), seed=0, reshuffle_each_iteration=True)
        return out.batch(a.batch_size).map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(tf.cast(y, tf.int32), n)))\
            .prefetch(tf.data.AUTOTUNE)

    t = time.perf_counter()
    h = model.fit(ds(train, True), validation_data=ds(val, False), epochs=1000, verbose=2,
                  callbacks=[TimeBudget(60.0 * a.minutes)])
    facts = {"epochs": len(h.history["loss"]), "seconds": round(time.perf_counter() - t, 1),
             "optimizer": f"Adam({model.optimizer.learning_rate.numpy():.0e})"}
    return (lambda x: keras.activations.softmax(model.predict(x, batch_size=32, verbose=0)).numpy()), facts


def score(predict, scenes, class_names, size: int) -> dict:
    """The zoo's MeanIoU report of ``predict`` (network-size probabilities) on scenes at their own size."""
    import keras

    from zoo.tasks.segmenter.data import IGNORE, as_arrays
    from zoo.tasks.segmenter.model import _to_size, miou_report

    x, _, _ = as_arrays(scenes, size)
    metric = keras.metrics.MeanIoU(len(class_names), ignore_class=IGNORE)
    probs = predict(x.astype(np.float32))
    for p, y in zip(probs, scenes.masks):
        metric.update_state(y.ravel(), _to_size(p, y.shape, probs=False).ravel())
    r = miou_report(metric, class_names)
    return {"mIoU": round(r["mIoU"], 4), "pixel_accuracy": round(r["pixel_accuracy"], 4),
            "per_class_iou": {k: None if v is None else round(v, 3) for k, v in r["per_class_iou"].items()}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per model")
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--input-size", type=int, default=192, help="network input (scenes stay 128 px)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default="runs/bench_peers_segment/summary.json")
    a = p.parse_args(argv)
    print(cpu_line(), flush=True)
    from recipes.scenes import scenes
    from zoo.io import atomic_write
    from zoo.tasks.segmenter.data import as_arrays
    from zoo.tasks.segmenter.train import _Arrays

    train_s, val_s = scenes("train", n=a.n_train, count=(3, 7)), scenes("val", n=200)
    tests = {style: scenes("test", n=a.n_test, style=style) for style in ("default", "shifted")}
    arrays = [_Arrays(*as_arrays(d, a.input_size)) for d in (train_s, val_s)]
    names = arrays[0].class_names
    rows = {}
    for name in a.models:
        print(f"\n== {name}: {a.minutes:g} min", flush=True)
        if name in ("unet", "deeplabv3plus"):
            predict, facts = zoo_model(name, train_s, val_s, a)
        else:
            predict, facts = hub_model(*arrays, a, lr=1e-3 if name == "hub-zoo-lr" else None)
        rows[name] = {**facts, **{style: score(predict, t, names, a.input_size) for style, t in tests.items()}}
        print(json.dumps({name: rows[name]}), flush=True)
        atomic_write(a.out, json.dumps({"cpu": cpu_line(), "settings": vars(a), "models": rows}, indent=2))
    best_peer = max((r["default"]["mIoU"], n) for n, r in rows.items() if n.startswith("hub")) \
        if any(n.startswith("hub") for n in rows) else None
    print(f"\n{cpu_line()}\n{'model':14} {'test mIoU':>9} {'pix acc':>8} {'shifted':>8} {'epochs':>6} {'train min':>9}"
          + ("  vs keras-hub as shipped" if "hub" in rows else ""))
    for name, r in rows.items():
        ratio = f"  {r['default']['mIoU'] / rows['hub']['default']['mIoU']:.2f}x" if "hub" in rows else ""
        print(f"{name:14} {r['default']['mIoU']:9.4f} {r['default']['pixel_accuracy']:8.4f} {r['shifted']['mIoU']:8.4f} "
              f"{r['epochs']:6d} {r['seconds'] / 60:9.1f}{ratio}")
    if best_peer:
        print(f"best peer: {best_peer[1]} ({best_peer[0]:.4f}); targets: mIoU >= 0.70 and >= 1.2x keras-hub's "
              f"DeepLabV3 as shipped, in <= 20 min")


if __name__ == "__main__":
    main()
