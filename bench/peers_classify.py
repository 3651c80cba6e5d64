"""Classification side by side with what a user would otherwise run, in one run: Fashion-MNIST, the
same EfficientNet-Lite0 ImageNet weights, the same 64 px input and the same wall-clock training
budget for every model; every model is scored on the 10,000 test images, plain and with flip TTA.

    python bench/peers_classify.py                        # 20 min each: the issue's budget (the README's run)
    python bench/peers_classify.py --minutes 5 --models zoo zoo-ema zoo-bn zoo-erase   # one change each
    python bench/peers_classify.py --models zoo --input-size 80 --out-dir runs/bench_peers_classify_80

Models (``--models``):
- ``zoo``: the main job's recipe (``recipes.finetune_fashion_mnist``, its ``FULL`` settings) through
  the one trainer: the head on cached frozen features, then the whole network with BatchNorm frozen,
  AdamW with cosine decay over the budget (``max_minutes``), light augmentation, label smoothing,
  5% of the training images held out to pick the better phase.
- ``zoo-ema``, ``zoo-bn``, ``zoo-erase``, ``zoo-bf16``, ``zoo-mixup``, ``zoo-cutmix``, ``zoo-mix``: the
  same with one setting changed: ``ema=0.999`` (the trainer's moving average of the weights),
  BatchNorm trained (``freeze_bn=False``), random erasing added to the light augmentation, mixed
  bfloat16 (``precision``), MixUp (``mixup=0.2``), CutMix (``cutmix=1.0``), either per batch (both).
- ``plain``: the plain Keras transfer-learning recipe (bench/finetune.py's ``--baseline``: one
  head-only epoch, then the whole network at 1e-4, flips only), in the same minutes. It runs
  through the same trainer, so it shares the zoo's AdamW, budget cosine, label smoothing and
  frozen BatchNorm: it isolates the recipe's settings, not the trainer.
- ``timm``: timm's ``tf_efficientnet_lite0`` (the architecture of these weights: TensorFlow "same"
  padding) with the same Lite0 checkpoint, trained as timm's ``train.py`` does by default: SGD with
  Nesterov momentum 0.9, lr 0.1 x batch/256, weight decay 2e-5, cosine decay with a warm-up of 5/300
  of the run, label smoothing 0.1, RandomResizedCrop (scale 0.08-1) + flip + colour jitter 0.4,
  BatchNorm in training mode, timm's normalisation and its evaluation crop (``crop_pct`` 0.875).
  It trains on all 60,000 images (it holds none out).

What the peers needed to run at all (nothing in them changed): for timm, the checkpoint's tensors
copied in order into timm's model (same shapes, checked; the pooled features of the two networks are
compared on test images and printed), the grey images as RGB PIL images, and a training loop in
place of ``train.py`` (a script, not part of the package), with timm's optimizer, scheduler, loss
and transforms, and the scheduler stepped by the fraction of the budget spent, as the zoo's is.
torchvision's compiled ops do not load beside the CPU build of torch (tests/torch_reference.py). timm
trains in a process of its own: beside TensorFlow in one process, PyTorch ran 1.7x slower here.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/x.py

from bench._common import cpu_line, fashion_mnist  # noqa: E402

# the zoo's recipe with one setting changed (the steps tried towards the target)
VARIANTS = {"zoo": {}, "zoo-ema": {"ema": 0.999}, "zoo-bn": {"freeze_bn": False},
            "zoo-erase": {"augment": ["flip", "shift", "erase"]}, "zoo-bf16": {"precision": "mixed_bfloat16"},
            "zoo-mixup": {"mixup": 0.2}, "zoo-cutmix": {"cutmix": 1.0}, "zoo-mix": {"mixup": 0.2, "cutmix": 1.0}}
MODELS = (*VARIANTS, "plain", "timm")


def keras_recipe(name: str, a) -> dict:
    """The zoo's recipe (or the plain one) for ``a.minutes``; epochs only cap it."""
    from recipes.finetune_fashion_mnist import FULL, run

    out = f"{a.out_dir}/{name}"
    if name == "plain":
        s = run(out=out, input_size=a.input_size, epochs=1000, head_epochs=1, lr=1e-4, augment=["flip"],
                val_fraction=FULL["val_fraction"], max_minutes=a.minutes, patience=None, verbose=2)
    else:
        cfg = dict(FULL, input_size=a.input_size, epochs=1000, verbose=2)
        s = run(out=out, **{**cfg, **VARIANTS[name]}, max_minutes=a.minutes)
    return {"accuracy": s["test_accuracy"], "accuracy_flip_tta": s["test_accuracy_flip_tta"],
            "train_minutes": round(s["train_seconds"] / 60, 2), "kept": s["kept"]}


def timm_lite0(weights_path):
    """timm's tf_efficientnet_lite0 holding the zoo's Lite0 checkpoint (10-class head to be set)."""
    from tests.torch_reference import require

    torch, timm = require("timm")
    import timm.data  # noqa: F401  (the submodules are not imported by ``import timm``)
    import timm.loss  # noqa: F401
    import timm.optim  # noqa: F401
    import timm.scheduler  # noqa: F401

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    ckpt = torch.load(weights_path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    if len(ckpt) != len(own) or any(v.shape != own[k].shape for v, k in zip(ckpt.values(), own)):
        raise RuntimeError("the Lite0 checkpoint does not match timm's tf_efficientnet_lite0 tensor for tensor")
    model.load_state_dict(dict(zip(own, ckpt.values())))
    return torch, timm, model


def same_weights_check(weights_path, x: np.ndarray) -> float:
    """Mean cosine between timm's pooled features and the zoo's embedding of the same images."""
    import zoo
    from PIL import Image

    torch, timm, model = timm_lite0(weights_path)
    cfg = timm.data.resolve_data_config({}, model=model)
    tf = timm.data.create_transform(input_size=224, interpolation="bilinear", mean=cfg["mean"], std=cfg["std"],
                                    crop_pct=1.0)
    model.eval()
    with torch.no_grad():
        t = model.forward_head(model.forward_features(torch.stack([tf(Image.fromarray(i).convert("RGB")) for i in x])),
                               pre_logits=True).numpy()
    z = zoo.load("efficientnet_lite0").embed(x, batch_size=len(x))
    cos = (t * z).sum(1) / np.linalg.norm(t, axis=1) / np.linalg.norm(z, axis=1)
    return float(cos.mean())


def timm_recipe(a) -> dict:
    """timm's defaults for ``a.minutes``, trained in a process that never imports TensorFlow: beside
    it, PyTorch trained this network 1.7x slower here (TensorFlow's threads stay alive)."""
    import multiprocessing

    from zoo.registry import get_entry
    from zoo.weights.resolve import resolve

    path = str(resolve(get_entry("efficientnet_lite0")))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        r = pool.apply(train_timm, (path, a.minutes, a.input_size, a.batch_size))
    cosine = same_weights_check(path, fashion_mnist("test")[0][:16])
    print(f"timm vs zoo pooled features on 16 test images at 224 px: mean cosine {cosine:.4f}", flush=True)
    return {**r, "same_weights_cosine": round(cosine, 4)}


def train_timm(weights_path: str, minutes: float, input_size: int, batch_size: int) -> dict:
    """timm's ``train.py`` defaults (see the module docstring); returns test accuracy and facts."""
    import os

    from PIL import Image

    torch, timm, model = timm_lite0(weights_path)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    (x, y), (xt, yt) = fashion_mnist("train"), fashion_mnist("test")
    model.reset_classifier(10)
    cfg = timm.data.resolve_data_config({}, model=model)
    size = (3, input_size, input_size)
    train_tf = timm.data.create_transform(size, is_training=True, scale=(0.08, 1.0), hflip=0.5, color_jitter=0.4,
                                          interpolation="random", mean=cfg["mean"], std=cfg["std"])
    test_tf = timm.data.create_transform(size, is_training=False, interpolation=cfg["interpolation"],
                                         mean=cfg["mean"], std=cfg["std"], crop_pct=cfg["crop_pct"])
    opt = timm.optim.create_optimizer_v2(model, opt="sgd", lr=0.1 * batch_size / 256, weight_decay=2e-5, momentum=0.9)
    total = 10_000  # the scheduler counts ten-thousandths of the budget
    sched = timm.scheduler.CosineLRScheduler(opt, t_initial=total, warmup_t=total * 5 // 300, warmup_lr_init=1e-5,
                                             lr_min=0.0, t_in_epochs=False)
    loss_fn = timm.loss.LabelSmoothingCrossEntropy(0.1)
    rgb = [Image.fromarray(i).convert("RGB") for i in x]
    budget, t0, steps, epochs = 60.0 * minutes, time.monotonic(), 0, 0
    model.train()
    while time.monotonic() - t0 < budget:
        order = np.random.default_rng(epochs).permutation(len(x))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            done = (time.monotonic() - t0) / budget
            if done >= 1:
                break
            sched.step_update(int(done * total))
            idx = order[i:i + batch_size]
            xb = torch.stack([train_tf(rgb[j]) for j in idx])
            loss = loss_fn(model(xb), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps % 100 == 0:
                print(f"timm step {steps} epoch {epochs} loss {loss.item():.3f} "
                      f"{steps * batch_size / (time.monotonic() - t0):.0f} images/s", flush=True)
        epochs += 1
    train_s = time.monotonic() - t0
    model.eval()
    correct = {False: 0, True: 0}
    with torch.no_grad():
        for i in range(0, len(xt), 250):
            xb = torch.stack([test_tf(Image.fromarray(im).convert("RGB")) for im in xt[i:i + 250]])
            p = torch.softmax(model(xb), 1)
            correct[False] += int((p.argmax(1).numpy() == yt[i:i + 250]).sum())
            p = p + torch.softmax(model(torch.flip(xb, dims=[3])), 1)
            correct[True] += int((p.argmax(1).numpy() == yt[i:i + 250]).sum())
    return {"accuracy": round(correct[False] / len(xt), 4), "accuracy_flip_tta": round(correct[True] / len(xt), 4),
            "train_minutes": round(train_s / 60, 2), "steps": steps, "epochs_started": epochs,
            "images_per_second": round(steps * batch_size / train_s, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget of each model")
    p.add_argument("--models", nargs="+", choices=MODELS, default=["zoo", "plain", "timm"])
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out-dir", default="runs/bench_peers_classify")
    a = p.parse_args(argv)
    print(cpu_line(), flush=True)
    from zoo.io import atomic_write

    rows = {}
    for name in a.models:
        print(f"\n== {name}: {a.minutes:g} min", flush=True)
        rows[name] = timm_recipe(a) if name == "timm" else keras_recipe(name, a)
        print(json.dumps({name: rows[name]}), flush=True)
        atomic_write(f"{a.out_dir}/summary.json",
                     json.dumps({"cpu": cpu_line(), "settings": vars(a), "models": rows}, indent=2))
    peers = [n for n in rows if n in ("plain", "timm")]
    print(f"\n{cpu_line()}\n{'model':8} {'test acc':>8} {'flip TTA':>8} {'train min':>9}"
          + "".join(f"  err/{n}" for n in peers))
    for name, r in rows.items():
        ratios = "".join(f"  {(1 - r['accuracy']) / (1 - rows[n]['accuracy']):>{len(n) + 4}.2f}" for n in peers)
        print(f"{name:8} {r['accuracy']:8.2%} {r['accuracy_flip_tta']:8.2%} {r['train_minutes']:9.1f}{ratios}")
    print("target: >= 95.0% in <= 20 min of training (on the 2-core AVX-512 CPU), ahead of every peer")


if __name__ == "__main__":
    main()
