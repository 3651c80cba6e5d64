"""The demo detector: RetinaNet on EfficientNet-Lite0 (real ImageNet weights, offline), trained on
scenes of Fashion-MNIST items pasted on photos (:mod:`recipes.scenes`).

    python -m recipes.detect_scenes            # 18 min on 2 AVX-512 cores (estimated 2.3x that on AVX2-only)
    python -m recipes.detect_scenes --no-items # skip step 1 (ImageNet body straight to scenes)

Two transfer steps from the ImageNet weights, as the demo segmenter has: the backbone is first
fine-tuned as a classifier of scene items (48 px crops of training-split scenes; never the
validation or test scenes' items), then the detector learns boxes on the 128 px scenes, fed to
the network at 192 px, keeping a moving average of the weights (``--ema``, 0.999; ``--ema 0``:
without; measured: mAP50 0.715 with it, 0.701 without). The item step's classifier then serves as
a second stage in the R-CNN manner: it re-judges the class of every box the detector keeps
(``zoo.tasks.detector.second_stage``; ``--no-second-stage``: the detector alone, also printed).
Measured (AVX-512 AMD EPYC, 2 cores): mAP50 0.827 with the second stage, 0.739 for the detector alone.

Prints COCO mAP on held-out test scenes (and on scenes composed differently: other photos,
scales and tints) and writes the model folder, training curves and a sheet of drawn test
predictions to --out (default runs/detect).
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

# measured here: 15 frozen epochs reach val mAP 0.39; the last two stages unfrozen train about as
# fast as the frozen network (the full backbone: 2.3x slower on 2 cores)
RECIPE = dict(n_train=2000, n_val=200, size=128, head_epochs=3, epochs=11, unfreeze=2, head_lr=3e-3,
              lr=1e-3, batch_size=16, augment={"hue": 0.5, "saturation": (0.4, 1.6)},
              input_size=192, ema=0.999, second_stage=True,
              items=dict(n=48000, input_size=48, head_epochs=3, epochs=6, source="boxes"))


def run(out="runs/detect", backbone="efficientnet_lite0", n_train=2000, n_val=200, n_test=500, size=128, head_epochs=3,
        epochs=11, unfreeze=2, head_lr=3e-3, lr=1e-3, batch_size=16, augment="default", head=None,
        seed=0, verbose=None, eval_every=2, items=None, input_size=None, ema=None, second_stage=False) -> dict:
    """Train on demo scenes, save, evaluate on held-out test scenes (default and shifted style).
    ``items``: arguments of :func:`recipes.scenes.item_backbone` to fine-tune the backbone on the
    training scenes' Fashion-MNIST items first (None: straight from ImageNet). ``size``: the scenes'
    side in pixels; ``input_size``: the network's (default ``size``; larger gives small items more
    feature cells, at the cost of time). ``ema``: the momentum of a moving average of the weights
    (the trainer's ``ema``; None: the weights as trained). ``second_stage``: the item step's classifier
    re-judges each detected box's class (:meth:`Detector.attach_second_stage`; needs ``items``)."""
    from recipes import detection
    from recipes.scenes import item_backbone
    from zoo.errors import RecipeError

    t0 = time.perf_counter()
    train, val = detection.scenes(("train", "val"), n={"train": n_train, "val": n_val}, size=size, seed=seed)
    test = detection.scenes("test", n=n_test, size=size, seed=seed)
    shifted = detection.scenes("test", n=n_test, size=size, seed=seed, style="shifted")
    t1, cpu1 = time.perf_counter(), _cpu_seconds()   # training time includes the item step
    item_s = None
    if second_stage and not items:
        raise RecipeError("second_stage uses the item step's classifier: give items too")
    if items:
        canvas = (input_size or size) if items.get("source") == "boxes" else None
        backbone = item_backbone(backbone, seed=seed, verbose=verbose, canvas=canvas, **items)
        item_s = round(time.perf_counter() - t1)
    det = detection.train(train, val, backbone=backbone, head_epochs=head_epochs, epochs=epochs,
                          unfreeze=unfreeze, head_lr=head_lr, lr=lr, batch_size=batch_size, augment=augment, head=head,
                          out_dir=out,
                          seed=seed, verbose=verbose, eval_every=eval_every, input_size=input_size or size, ema=ema)
    if second_stage:
        det.attach_second_stage(backbone)
    train_s, train_cpu = time.perf_counter() - t1, _cpu_seconds() - cpu1
    out = Path(out)
    det.save(out / "model")
    detection.sheet(det, test.take(range(12)), out / "predictions_test.png")
    detection.sheet(det, shifted.take(range(12)), out / "predictions_shifted.png")
    r, rs = det.evaluate(test), det.evaluate(shifted)
    one = {"test": det.evaluate(test, second_stage=False), "shifted": det.evaluate(shifted, second_stage=False)} \
        if second_stage else None
    summary = {
        "backbone": getattr(backbone, "name", backbone), "item_step": items or None, "item_step_seconds": item_s,
        "scene_size": size, "input_size": input_size or size, "train_scenes": n_train, "epochs_frozen": head_epochs,
        "epochs_unfrozen": epochs, "unfrozen_stages": unfreeze, "kept": det.training_config.get("kept"),
        "augment": str(augment), "ema": ema,
        "second_stage": {**det.second_stage_settings, "input_size": det.second_stage.input_size} if second_stage else None,
        "test": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "per_class"},
        "test_per_class": {k: (None if v is None else round(v, 4)) for k, v in r["per_class"].items()},
        "shifted": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rs.items() if k != "per_class"},
        "detector_alone": {k: {m: round(v[m], 4) for m in ("mAP", "mAP50", "mAP75")} for k, v in one.items()}
        if one else None,
        "scene_seconds": round(t1 - t0), "train_seconds": round(train_s), "train_cpu_seconds": round(train_cpu),
        "total_seconds": round(time.perf_counter() - t0), "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): on a shared machine, wall time overstates the work."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/detect")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--n-train", type=int, default=RECIPE["n_train"])
    p.add_argument("--head-epochs", type=int, default=RECIPE["head_epochs"], help="epochs with the backbone frozen")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="then epochs with it unfrozen")
    p.add_argument("--size", type=int, default=RECIPE["size"], help="scene side in pixels")
    p.add_argument("--input-size", type=int, default=RECIPE.get("input_size"), help="network input side (default: --size)")
    p.add_argument("--no-items", action="store_true", help="skip the item step (ImageNet body straight to scenes)")
    p.add_argument("--item-crops", type=int, default=RECIPE["items"]["n"], help="item step: training crops")
    p.add_argument("--item-epochs", type=int, default=RECIPE["items"]["epochs"], help="item step: unfrozen epochs")
    p.add_argument("--no-second-stage", action="store_true",
                   help="the detector alone (by default the item step's classifier re-judges each box's class)")
    p.add_argument("--ema", type=float, default=RECIPE["ema"],
                   help=f"momentum of a moving average of the weights (default {RECIPE['ema']}; 0: none)")
    a = p.parse_args(argv)
    cfg = {**RECIPE, "n_train": a.n_train, "head_epochs": a.head_epochs, "epochs": a.epochs, "size": a.size,
           "input_size": a.input_size, "ema": a.ema or None, "second_stage": not (a.no_second_stage or a.no_items)}
    cfg["items"] = None if a.no_items else {**RECIPE["items"], "n": a.item_crops, "epochs": a.item_epochs}
    s = run(a.out, a.backbone, **cfg)
    print(json.dumps(s, indent=2))
    t = s["test"]
    print(f"\nTest mAP@[.5:.95] {t['mAP']:.3f}, mAP50 {t['mAP50']:.3f}, mAP75 {t['mAP75']:.3f} on {t['n_images']} "
          f"held-out scenes ({t['n_boxes']} boxes); shifted scenes mAP {s['shifted']['mAP']:.3f}, "
          f"mAP50 {s['shifted']['mAP50']:.3f}. Trained in {s['train_seconds']}s ({s['train_cpu_seconds']} CPU-s). "
          f"Model in {s['out']}/model, curves and predictions in {s['out']}/")
    if s["detector_alone"]:
        one = s["detector_alone"]
        print(f"The detector alone, without the second stage: mAP {one['test']['mAP']:.3f}, mAP50 "
              f"{one['test']['mAP50']:.3f}; shifted mAP50 {one['shifted']['mAP50']:.3f}.")


if __name__ == "__main__":
    main()
