"""``zoo detect IMAGE... --model DIR [--draw OUT/]`` and ``zoo train-detector DATA --out DIR``.

The detector kind's commands (``zoo.cli`` adds every kind's ``add_commands``). ``--model`` is a
folder written by ``Detector.save`` or the name ``mtcnn_faces``. ``DATA`` for training is a COCO
JSON file (images beside it or in ``--images``), a Pascal VOC folder, a YOLO folder (with
``--names``), or a named demo dataset (``scenes``: :func:`zoo.data.named_dataset`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.cli import fraction, image_inputs, non_negative_int, output_dir, positive_int, report_skipped

DEFAULT_SCORE = 0.3


def _score(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a score in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def open_detector(spec: str):
    """A saved detector folder, or a pretrained detector by name (``mtcnn_faces``)."""
    import zoo
    from zoo.errors import SavedModelError
    from zoo.kinds import named_model

    if named_model(spec) is not None:
        return zoo.load(spec)
    p = Path(spec).expanduser()
    if not p.is_dir():
        raise SavedModelError(f"--model {spec}: no such folder (give a folder written by Detector.save, "
                              "or 'mtcnn_faces')")
    m = zoo.load(p)
    if not hasattr(m, "detect"):
        raise SavedModelError(f"--model {p} holds a {getattr(m, 'kind', type(m).__name__)} model, not a detector")
    return m


def _cmd_detect(a) -> int:
    files = image_inputs(a.images)
    out = output_dir(a.draw, "--draw") if a.draw else None
    det = open_detector(a.model)
    r = det.detect(files, score_threshold=a.score, batch_size=a.batch_size, return_sources=True)
    if a.json:
        print(json.dumps([{"image": str(s), "detections": [
            {"name": n, "label": int(c), "score": round(float(sc), 4), "box": [round(float(v), 1) for v in b]}
            for b, sc, c, n in zip(d["boxes"], d["scores"], d["labels"], d["names"])]}
            for s, d in zip(r.sources, r.outputs)], indent=2))
    else:
        for s, d in zip(r.sources, r.outputs):
            print(f"{s}: {len(d['boxes'])} detections")
            for b, sc, n in zip(d["boxes"], d["scores"], d["names"]):
                print(f"  {sc:6.3f}  {n:16s} {b[0]:7.1f} {b[1]:7.1f} {b[2]:7.1f} {b[3]:7.1f}")
    if out is not None:
        from PIL import Image

        from zoo.images import read_image
        from zoo.tasks.detector.draw import draw

        for s, d in zip(r.sources, r.outputs):
            target = out / f"{Path(s).stem}.png"
            Image.fromarray(draw(read_image(s), d)).save(target)
        print(f"drew {len(r.sources)} images into {out}", file=sys.stderr)
    report_skipped(r.skipped)
    return 1 if r.skipped else 0


def _cmd_train(a) -> int:
    import numpy as np

    from zoo.data import named_dataset
    from zoo.tasks.detector.model import Detector

    out = output_dir(a.out)
    from zoo.tasks.detector.data import read_data

    data = read_data(a.data, a.images, a.names)
    if data is None:
        train, val = named_dataset(a.data, "detector", n_train=a.n_train, size=a.input_size or 128)
    else:
        rng = np.random.default_rng(a.seed)
        order = rng.permutation(len(data))
        n_val = max(1, int(round(a.val_fraction * len(data)))) if a.val_fraction > 0 else 0
        val = data.take(order[:n_val]) if n_val else None
        train = data.take(order[n_val:])
    det = Detector.train(train, val, backbone=a.backbone, head_epochs=a.head_epochs, epochs=a.epochs,
                         input_size=a.input_size, batch_size=a.batch_size, out_dir=out, seed=a.seed,
                         augment=a.augment, val_fraction=0)
    if a.second_stage_epochs is not None:
        from zoo.tasks.detector import second_stage

        clf = second_stage.train(train, val, backbone=a.backbone, input_size=a.second_stage_size,
                                 canvas=det.input_size, epochs=a.second_stage_epochs, seed=a.seed)
        det.attach_second_stage(clf)
    det.save(out / "model")
    msg = f"saved the detector to {out / 'model'} (curves.png, predictions.png in {out})"
    if val is not None:
        r = det.evaluate(val)
        msg = f"validation mAP {r['mAP']:.3f}, mAP50 {r['mAP50']:.3f} on {r['n_images']} images; " + msg
        if det.second_stage is not None:
            alone = det.evaluate(val, second_stage=False)
            msg = f"{msg}\nthe detector alone, without the second stage: mAP {alone['mAP']:.3f}, " \
                  f"mAP50 {alone['mAP50']:.3f}"
    print(msg)
    return 0


def add_commands(subparsers):
    """Register ``detect`` and ``train-detector`` on the ``zoo`` CLI's subparsers."""
    p = subparsers.add_parser("detect", help="boxes, classes and scores with a trained detector (or MTCNN faces)",
                              description="Detect objects; prints one line per box (x1 y1 x2 y2 in each image's pixels).")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--model", required=True, help="a folder written by Detector.save, or 'mtcnn_faces'")
    p.add_argument("--draw", metavar="OUT", help="write each image with its boxes drawn into this folder")
    p.add_argument("--score", type=_score, default=DEFAULT_SCORE, help=f"score threshold (default {DEFAULT_SCORE})")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_detect)

    t = subparsers.add_parser("train-detector", help="train a detector on a zoo backbone",
                              description="Train a RetinaNet detector (frozen backbone, then optional unfreezing); "
                                          "writes DIR/model, DIR/curves.png and DIR/predictions.png.")
    t.add_argument("data", help="a COCO .json, a Pascal VOC folder, a YOLO folder or a named demo set ('scenes')")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--images", help="COCO: the images folder (default: beside the JSON)")
    t.add_argument("--names", help="YOLO: class names, comma-separated or a file with one per line")
    t.add_argument("--backbone", default="efficientnet_lite0")
    t.add_argument("--head-epochs", type=non_negative_int, default=12, help="epochs with the backbone frozen")
    t.add_argument("--epochs", type=non_negative_int, default=0, help="then epochs of the whole network")
    t.add_argument("--input-size", type=positive_int, help="square input side, a multiple of 32 "
                                                           "(default: the images' size if all equal, else 320)")
    t.add_argument("--batch-size", type=positive_int, default=16)
    t.add_argument("--augment", default="default", choices=["none", "light", "default", "strong", "overhead"])
    t.add_argument("--val-fraction", type=fraction, default=0.1, help="held out for validation (not 'scenes')")
    t.add_argument("--n-train", type=positive_int, default=2000, help="'scenes': training scenes")
    t.add_argument("--second-stage-epochs", type=non_negative_int, metavar="N",
                   help="also train a classifier of the boxes' crops that re-judges each detected box's class "
                        "(R-CNN's second stage): its head, then N epochs of the whole classifier (default: none)")
    t.add_argument("--second-stage-size", type=positive_int, default=48, help="the crop classifier's input side")
    t.add_argument("--seed", type=non_negative_int, default=0)
    t.set_defaults(func=_cmd_train)
