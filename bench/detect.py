"""Detection benchmark: the facts the detector's design rests on (read from the installed libraries'
source), the demo detector's COCO mAP on held-out scenes with its training time, and inference
speed of ``det.detect`` against the bare Keras model call.

    python bench/detect.py                          # trains the demo recipe (about 20 min on 2 cores)
    python bench/detect.py --model runs/detect/model --train-seconds 1234   # an already trained one

Targets: held-out scenes mAP@[.5:.95] >= 0.60 and mAP50 >= 0.90 from <= 25 min of training on a
2-core CPU; ``det.detect`` at >= 0.8x the images/s of the bare model call on the same batch.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line  # noqa: E402


def library_facts() -> dict:
    """What the keras-cv / keras-hub / pycocotools installed here do, read from their source."""
    facts = {}
    try:
        from keras_cv.src.callbacks import pycoco_callback
        from keras_cv.src.models.object_detection.yolo_v8 import yolo_v8_detector as y

        loss_src = inspect.getsource(y.YOLOV8Detector.compute_loss) + inspect.getsource(y.YOLOV8Detector.compile)
        head_src = inspect.getsource(y.apply_yolo_v8_head)
        facts["keras_cv_yolov8_loss_terms"] = sorted({k for k in ("box", "class", "dfl") if f'"{k}"' in loss_src})
        facts["keras_cv_yolov8_has_dfl"] = "dfl" in loss_src.lower() or "distribution" in loss_src.lower()
        facts["keras_cv_yolov8_class_bias_init"] = "bias_initializer" in head_src
        facts["keras_cv_pycoco_callback_drops_class_0"] = "gt_classes > 0" in inspect.getsource(pycoco_callback)
    except ImportError as exc:
        facts["keras_cv"] = f"not installed ({exc})"
    import keras_hub
    from keras_hub.src.models.retinanet import retinanet_object_detector as r

    src = inspect.getsource(r.RetinaNetObjectDetector.__init__)
    box_block = src[src.index("box_head = PredictionHead"):src.index("classification_head = PredictionHead")]
    facts["keras_hub_version"] = keras_hub.__version__
    facts["keras_hub_detectors"] = sorted(n for n in dir(keras_hub.models) if n.endswith("ObjectDetector"))
    facts["keras_hub_has_yolov8"] = any("yolo" in n.lower() for n in dir(keras_hub.models))
    facts["keras_hub_retinanet_head_filters_hardcoded_256"] = src.count("num_filters=256") == 2
    facts["keras_hub_retinanet_prior_bias_on_box_head"] = "use_prior_probability=True" in box_block
    facts["keras_hub_retinanet_decodes_without_variance"] = \
        "variance" not in inspect.getsource(r.RetinaNetObjectDetector.decode_predictions)
    import importlib.metadata

    facts["pycocotools_version"] = importlib.metadata.version("pycocotools")
    return facts


def inference_speed(det, images: np.ndarray, batch_size: int = 32, repeats: int = 5) -> dict:
    """img/s of ``det.detect`` (letterbox + network + decoding + NMS + mapping back) and of the bare
    Keras model call (a traced call on the same, already sized batches)."""
    import tensorflow as tf

    n = len(images) - len(images) % batch_size
    images = images[:n]
    x = tf.constant(images.astype(np.float32))
    bare = tf.function(lambda b: det.keras_model(b, training=False))
    bare(x[:batch_size])
    det.detect(images[:batch_size], batch_size=batch_size)
    best_bare = best_det = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(0, n, batch_size):
            tf.nest.map_structure(lambda t: t.numpy(), bare(x[i:i + batch_size]))
        best_bare = min(best_bare, time.perf_counter() - t)
        t = time.perf_counter()
        det.detect(images, batch_size=batch_size)
        best_det = min(best_det, time.perf_counter() - t)
    return {"images": n, "batch_size": batch_size, "bare_img_s": round(n / best_bare, 1),
            "detect_img_s": round(n / best_det, 1), "ratio": round(best_bare / best_det, 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a trained detector folder (default: train the demo recipe)")
    p.add_argument("--train-seconds", type=float, help="with --model: how long its training took")
    p.add_argument("--out", default="runs/detect")
    p.add_argument("--n-test", type=int, default=500)
    a = p.parse_args(argv)
    print(cpu_line(), flush=True)
    print(json.dumps({"library_facts": library_facts()}, indent=2), flush=True)

    import zoo
    from recipes import detect_scenes, detection

    if a.model:
        det, train_s = zoo.load(a.model), a.train_seconds
        if train_s is None:
            train_s = det.training_config.get("train_seconds")
    else:
        s = detect_scenes.run(a.out, **{k: v for k, v in detect_scenes.RECIPE.items()})
        det, train_s = zoo.load(Path(a.out) / "model"), s["train_seconds"]
    test = detection.scenes("test", n=a.n_test, size=det.input_size)
    shifted = detection.scenes("test", n=a.n_test, size=det.input_size, style="shifted")
    t = time.perf_counter()
    r = det.evaluate(test)
    eval_s = time.perf_counter() - t
    rs = det.evaluate(shifted)
    speed = inference_speed(det, test.images[:256])
    result = {
        "held_out_scenes": {k: v for k, v in r.items() if k != "per_class"},
        "per_class_AP": r["per_class"],
        "shifted_scenes": {k: v for k, v in rs.items() if k != "per_class"},
        "train_seconds": train_s, "evaluate_seconds": round(eval_s, 1),
        "inference": speed,
        "targets": {"mAP>=0.60": r["mAP"] >= 0.60, "mAP50>=0.90": r["mAP50"] >= 0.90,
                    "train<=25min": train_s is not None and train_s <= 1500, "detect/bare>=0.8": speed["ratio"] >= 0.8},
    }
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
