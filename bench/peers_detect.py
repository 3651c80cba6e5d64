"""Detection against its peers: the zoo's detector, keras-hub's ``RetinaNetObjectDetector`` and keras-cv's
``YOLOV8Detector``, trained in one run on the same offline demo scenes, at the same input size, on the same
backbone pyramid (the zoo's ``efficientnet_lite0`` P3..P5, ImageNet weights) and for the same wall-clock
budget, then scored by the same COCO code (``zoo.tasks.detector.metrics.coco_metrics``, what
``Detector.evaluate`` calls) on the same held-out and "shifted" test scenes.

    python bench/peers_detect.py                                   # 8 min per model, the recipe's scenes
    python bench/peers_detect.py --minutes 0.5 --n-train 64 --n-test 32 --n-val 16   # smoke run
    python bench/peers_detect.py --models zoo yolov8

The zoo trains with ``recipes.detect_scenes``'s settings through the recipe's own trainer
(``recipes.detection.train``) but without its item-classifier step: all three start from the plain
ImageNet ``efficientnet_lite0``. One deadline (``zoo.training.TimeBudget``) covers each model's whole training,
both of the zoo's phases together (the zoo's own ``max_minutes`` too, whose learning rate decays over
the budget; the peers keep their shipped constant rates). The zoo's
training time includes its own validation (COCO mAP every 2 epochs, the monitor that keeps the better
phase); the peers validate nothing.

The same for every model: scenes letterboxed to ``--input-size`` (``letterbox_set``), the recipe's
augmentation (``augment_example``: flip, scale jitter, colour; the peers ship none in the model),
batch size, seed. Each peer otherwise runs as it ships (head initialisation, anchors, matcher, losses
and their weights, decoder class, the whole network trainable with its BatchNorm in training mode).
What each needed to run at all is in ``GLUE`` (printed, and written to the summary). The glue never
changes a peer's own code. Scoring keeps COCO's protocol for all (scores down to 0.05, at most 100 boxes
per scene); the zoo's ``evaluate`` suppresses per class, the peers keep their class-agnostic decoders.

Prints per model mAP@[.5:.95], mAP50, per-class AP, shifted-scenes mAP and mAP50, the training minutes
actually used, steps and epochs done, first and last epoch loss, and zoo/peer ratios; writes them to
``--out`` (JSON, replaced atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402

MODELS = ("zoo", "retinanet", "yolov8")
LEVELS = ("P3", "P4", "P5")
EVAL_SCORE_THRESHOLD = 0.05   # COCO protocol, as Detector.evaluate
GLUE = {
    "zoo": ["recipes.detection.train with recipes.detect_scenes.RECIPE minus its item-classifier step (items=None), "
            "backbone 'efficientnet_lite0' (ImageNet); max_minutes = the budget, epochs 1000 (the clock ends it)"],
    "retinanet": [
        "pyramid adapter: a keras_hub FeaturePyramidBackbone whose graph is the zoo's efficientnet_lite0 pyramid_model "
        "(raw RGB [0, 255] in, the zoo's mean/std Normalize inside: no keras-hub ImageConverter or preprocessor), "
        "pyramid_outputs = {P3, P4, P5}",
        "wrapped as the presets do: RetinaNetBackbone(image_encoder=adapter, min_level=3, max_level=7, use_p5=False) "
        "(its FPN adds P6, P7 from the adapter's P5)",
        "boxes: bounding_box_format='xyxy' passed to the detector (default 'yxyx'); targets {'boxes': (B, M, 4) "
        "letterboxed pixels, 'labels': (B, M)}, padding rows -1; class ids 0..9 unchanged (no offset)",
        "training: compile() defaults (Adam 5e-5, Huber + BinaryFocalCrossentropy, sum reduction)",
        "evaluation: its own NonMaxSuppression decoder re-set with confidence_threshold 0.05 (shipped 0.5), its "
        "iou_threshold 0.5 and class-agnostic NMS kept; boxes mapped from the canvas back to scene pixels; "
        "predict on whole batches only (the last one padded): its NMS needs a static batch size and fails on "
        "Keras's retrace for a smaller last batch ('Expected int32, but got None')",
    ],
    "yolov8": [
        "pyramid adapter: a keras_cv Backbone with the same graph, each level behind an Identity layer named "
        "P3/P4/P5, pyramid_level_inputs = {'P3': 'P3', ...} (it takes layer names, not tensors)",
        "boxes: bounding_box_format='xyxy'; targets {'boxes', 'classes'} padded with -1 (its mask_gt reads "
        "boxes > -1); class ids 0..9 unchanged (no offset)",
        "training: compile() has no default optimizer and requires the losses: box_loss='ciou', "
        "classification_loss='binary_crossentropy' (default weights 7.5 / 0.5), Adam(1e-3, global_clipnorm=10) "
        "as the keras.io YOLOV8 example; fpn_depth 2 (default)",
        "evaluation: its own NonMaxSuppression decoder re-set with confidence_threshold 0.05 (shipped 0.2), its "
        "iou_threshold 0.7 and class-agnostic NMS kept; boxes mapped from the canvas back to scene pixels",
    ],
}


# ---- the zoo ------------------------------------------------------------------------------------------
def train_zoo(train, val, a, stop):
    """The recipe's detector (no item step), its own settings but trained for ``a.minutes`` (the trainer's
``max_minutes``: the learning rate decays over the budget); ``stop`` counts its steps."""
    from recipes import detection
    from recipes.detect_scenes import RECIPE

    cfg = {k: v for k, v in RECIPE.items() if k not in ("n_train", "n_val", "size", "items", "second_stage")}
    cfg.update(input_size=a.input_size, batch_size=a.batch_size, epochs=1000, max_minutes=a.minutes)  # the clock ends it
    det = detection.train(train, val, backbone="efficientnet_lite0", eval_every=2, seed=0, verbose=2,
                          callbacks=[stop], **cfg)
    return det, det.history.get("loss", [])


# ---- the peers: adapters and glue ---------------------------------------------------------------------
def _zoo_pyramid(size: int):
    """A fresh ImageNet efficientnet_lite0 as a graph: raw RGB [0, 255] pixels -> {P3, P4, P5}, each level
    behind an Identity layer named after it."""
    import keras

    import zoo

    body = zoo.load("efficientnet_lite0", input_size=size)
    pixels = keras.Input((size, size, 3), name="pixels")
    feats = body.pyramid_model(pixels)
    return pixels, {k: keras.layers.Identity(name=k)(feats[k]) for k in LEVELS}


def build_retinanet(size: int, num_classes: int):
    """keras-hub's RetinaNet as it ships on the zoo's pyramid, compiled with its defaults."""
    from keras_hub.layers import NonMaxSuppression
    from keras_hub.models import FeaturePyramidBackbone, RetinaNetBackbone, RetinaNetObjectDetector

    class ZooPyramid(FeaturePyramidBackbone):
        def __init__(self, **kwargs):
            pixels, levels = _zoo_pyramid(size)
            super().__init__(inputs=pixels, outputs=levels, **kwargs)
            self.pyramid_outputs = levels

    backbone = RetinaNetBackbone(image_encoder=ZooPyramid(), min_level=3, max_level=7, use_p5=False)
    model = RetinaNetObjectDetector(backbone=backbone, num_classes=num_classes, bounding_box_format="xyxy")
    model.compile()

    def for_eval():
        model.prediction_decoder = NonMaxSuppression(bounding_box_format="xyxy", from_logits=True,
                                                     confidence_threshold=EVAL_SCORE_THRESHOLD)
    return model, "labels", for_eval


def build_yolov8(size: int, num_classes: int):
    """keras-cv's YOLOv8 detector as it ships on the zoo's pyramid, compiled as the keras.io example."""
    import keras
    from keras_cv.layers import NonMaxSuppression
    from keras_cv.models import Backbone, YOLOV8Detector

    class ZooPyramid(Backbone):
        def __init__(self, **kwargs):
            pixels, levels = _zoo_pyramid(size)
            super().__init__(inputs=pixels, outputs=levels, **kwargs)
            self.pyramid_level_inputs = {k: k for k in LEVELS}

    model = YOLOV8Detector(backbone=ZooPyramid(), num_classes=num_classes, bounding_box_format="xyxy")
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), box_loss="ciou",
                  classification_loss="binary_crossentropy")

    def for_eval():
        model.prediction_decoder = NonMaxSuppression(bounding_box_format="xyxy", from_logits=False,
                                                     confidence_threshold=EVAL_SCORE_THRESHOLD, iou_threshold=0.7)
    return model, "classes", for_eval


def peer_dataset(canvases, boxes, labels, label_key: str, batch_size: int, augment: dict, seed: int = 0):
    """Repeating, shuffled, augmented ``(pixels, {"boxes", label_key})`` batches: the zoo's pipeline up to
    its target encoding (the peers encode their own targets in ``compute_loss``)."""
    import tensorflow as tf

    from zoo.tasks.detector.train import augment_example

    size = canvases.shape[1]

    def prep(i, el):
        img, b, lab = el
        img, b, lab = augment_example(tf.cast(img, tf.float32), b, lab, tf.stack([tf.cast(seed, tf.int64), i]),
                                      augment, size)
        return img, {"boxes": b, label_key: lab}

    ds = tf.data.Dataset.from_tensor_slices((canvases, boxes, labels))
    ds = ds.shuffle(len(canvases), seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def train_peer(build, train, a, stop):
    """Build, then fit a peer until ``stop`` ends it; (model, label key, eval setup, loss curve)."""
    import keras

    from recipes.detect_scenes import RECIPE
    from zoo.tasks.detector.train import augment_config, letterbox_set

    keras.utils.set_random_seed(0)
    model, label_key, for_eval = build(a.input_size, len(train.class_names))
    c, b, lab = letterbox_set(train, a.input_size)
    ds = peer_dataset(c, b, lab, label_key, a.batch_size, augment_config(RECIPE["augment"]))
    h = model.fit(ds, epochs=100_000, steps_per_epoch=max(1, len(c) // a.batch_size), callbacks=[stop], verbose=2)
    return model, label_key, for_eval, h.history.get("loss", [])


def peer_detections(model, data, size: int, batch_size: int, label_key: str) -> list:
    """Per scene ``{"boxes", "scores", "labels"}`` in the scene's own pixels, from the peer's own decoder."""
    from zoo import images as zimages
    from zoo.tasks.detector.train import letterbox_set

    canvases, _, _ = letterbox_set(data, size)
    _, scale, pad = zimages.letterbox(data.images[0], size)   # the scenes share one shape
    # whole batches only: keras-hub's NonMaxSuppression needs a static batch size (ops.zeros([batch_size])), and
    # Keras retraces predict with an unknown one for a last, smaller batch
    n = len(canvases)
    padded = np.concatenate([canvases, np.zeros((-n % batch_size, *canvases.shape[1:]), canvases.dtype)])
    out = model.predict(padded.astype(np.float32), batch_size=batch_size, verbose=0)
    dets = []
    for i in range(len(canvases)):
        k = int(out["num_detections"][i])
        b = zimages.unletterbox_boxes(out["boxes"][i, :k], scale, pad, data.images[i].shape)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        dets.append({"boxes": b[keep], "scores": np.asarray(out["confidence"][i, :k])[keep],
                     "labels": np.asarray(out[label_key][i, :k]).astype(np.int64)[keep]})
    return dets


# ---- the run -----------------------------------------------------------------------------------------
def run_model(name, train, val, test, shifted, a) -> dict:
    """Train ``name`` under the budget, score it on test and shifted scenes."""
    from zoo.tasks.detector.metrics import coco_metrics

    from zoo.training import TimeBudget

    stop = TimeBudget(a.minutes * 60)  # one deadline across the zoo's two fits; counts the steps
    t0 = time.perf_counter()
    if name == "zoo":
        det, losses = train_zoo(train, val, a, stop)
        train_s = time.perf_counter() - t0
        r, rs = det.evaluate(test), det.evaluate(shifted)
    else:
        model, label_key, for_eval, losses = train_peer({"retinanet": build_retinanet, "yolov8": build_yolov8}[name],
                                                        train, a, stop)
        train_s = time.perf_counter() - t0
        for_eval()
        r, rs = (coco_metrics(d.boxes, d.labels, peer_detections(model, d, a.input_size, a.batch_size, label_key),
                              d.class_names) for d in (test, shifted))
    per_epoch = max(1, len(train) // a.batch_size)
    rd = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    return {"mAP": rd(r["mAP"]), "mAP50": rd(r["mAP50"]), "mAP75": rd(r["mAP75"]), "AR100": rd(r["AR100"]),
            "per_class_AP": {k: rd(v) for k, v in r["per_class"].items()},
            "n_detections": r["n_detections"], "shifted_mAP": rd(rs["mAP"]), "shifted_mAP50": rd(rs["mAP50"]),
            "train_minutes": round(train_s / 60, 2), "steps": stop.steps,
            "epochs": round(stop.steps / per_epoch, 2), "loss_first_epoch": rd(losses[0]) if losses else None,
            "loss_last_epoch": rd(losses[-1]) if losses else None,
            "wall_minutes": round((time.perf_counter() - t0) / 60, 2)}


def ratios(results: dict) -> dict:
    """zoo/peer for mAP50 and mAP, for each peer that ran beside the zoo (None where the peer scored 0)."""
    z = results.get("zoo", {})
    if "mAP" not in z:
        return {}
    return {m: {k: (round(z[k] / r[k], 2) if r[k] else None) for k in ("mAP50", "mAP")}
            for m, r in results.items() if m != "zoo" and "mAP" in r}


def main(argv=None):
    from recipes.detect_scenes import RECIPE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=8.0, help="training budget per model (wall clock)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--n-train", type=int, default=RECIPE["n_train"])
    p.add_argument("--n-val", type=int, default=RECIPE["n_val"], help="the zoo's validation scenes (its monitor)")
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--input-size", type=int, default=RECIPE["input_size"], help="network input (scenes stay 128 px)")
    p.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    p.add_argument("--out", default="runs/bench_peers_detect/summary.json")
    a = p.parse_args(argv)
    cpu = cpu_line()
    print(cpu, flush=True)
    for m in a.models:
        print(f"{m} glue:\n  - " + "\n  - ".join(GLUE[m]), flush=True)

    from recipes import detection
    from zoo.io import atomic_write

    size = RECIPE["size"]
    train, val = detection.scenes(("train", "val"), n={"train": a.n_train, "val": a.n_val}, size=size)
    test = detection.scenes("test", n=a.n_test, size=size)
    shifted = detection.scenes("test", n=a.n_test, size=size, style="shifted")
    settings = {"scene_size": size, "input_size": a.input_size, "n_train": a.n_train, "n_val": a.n_val,
                "n_test": a.n_test, "batch_size": a.batch_size, "minutes": a.minutes,
                "augment": RECIPE["augment"], "eval_score_threshold": EVAL_SCORE_THRESHOLD}
    results, summary = {}, {"cpu": cpu, "settings": settings, "glue": {m: GLUE[m] for m in a.models}}
    for m in a.models:
        print(f"\n== {m}: training for at most {a.minutes:g} min", flush=True)
        try:
            results[m] = run_model(m, train, val, test, shifted, a)
        except Exception as exc:  # a peer that cannot run is a result too
            traceback.print_exc()
            results[m] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({m: results[m]}, default=float), flush=True)
        atomic_write(a.out, json.dumps({**summary, "models": results, "zoo_over_peer": ratios(results)}, indent=2,
                                       default=float))
    print(f"\nload average now: {os.getloadavg()[0]:.1f} (shared machines make times pessimistic)")
    print(f"{'model':10} {'mAP':>6} {'mAP50':>6} {'shift mAP50':>11} {'train min':>9} {'steps':>6} {'epochs':>7} "
          f"{'loss first->last':>17}")
    for m, r in results.items():
        if "error" in r:
            print(f"{m:10} failed: {r['error']}")
            continue
        print(f"{m:10} {r['mAP']:6.3f} {r['mAP50']:6.3f} {r['shifted_mAP50']:11.3f} {r['train_minutes']:9.2f} "
              f"{r['steps']:6d} {r['epochs']:7.2f} {r['loss_first_epoch']!s:>8}->{r['loss_last_epoch']!s:<8}")
    for peer, q in ratios(results).items():
        print(f"zoo/{peer}: mAP50 x{q['mAP50']}, mAP x{q['mAP']}")
    print(f"summary in {a.out}")


if __name__ == "__main__":
    main()
