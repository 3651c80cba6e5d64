"""The harness every kind's test calls (keras-hub's ``run_task_test`` / ``run_model_saving_test`` /
``run_litert_export_test`` in spirit): a new kind gets these checks from a :class:`KindCase`.

- :func:`run_task_test`: predictions on a numpy array, on image files and on a ``tf.data.Dataset``
  agree; ``return_sources`` says which input each row is; save -> ``zoo.load`` gives identical
  outputs and the same kind; the export's outputs (TFLite, or a SavedModel where TFLite cannot hold
  the graph) match the Keras model's; bad input gets typed errors (NaN pixels, batch size 0, a
  folder of unreadable files).
- :func:`run_training_test`: one frozen-head epoch and one unfrozen epoch through the one trainer,
  the same record for every kind, and the trained folder loads back with the same outputs.

Backbones are random-init MobileNetV3-Small at 64 px: the checks are about the contract, not accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

SIZE = 64
RECORD = {"kept", "seconds", "train_images", "input_size", "epochs", "head_epochs", "batch_size", "lr", "head_lr",
          "seed", "patience"}  # what every kind's training_config holds


def tiny_backbone(size: int = SIZE):
    from zoo.model import ZooModel
    from zoo.registry import get_entry

    return ZooModel(get_entry("mobilenet_v3_small"), size, weights=None)


def images(n: int = 4, hw=(40, 56), seed: int = 0) -> np.ndarray:
    """Smooth random images (blurred noise): real-looking gradients, distinct per image."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, hw[0] // 8 + 1, hw[1] // 8 + 1, 3)).astype(np.float32)
    big = np.repeat(np.repeat(small, 8, 1), 8, 2)[:, :hw[0], :hw[1]]
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


@dataclass
class KindCase:
    """How the harness drives one kind."""

    name: str
    make: Callable                  # () -> a ready task (untrained heads are fine)
    outputs: Callable               # (task, images, **kw) -> Embedded (return_sources=True) of comparable outputs
    export: str | None = "tflite"   # format for the parity check (None: the kind does not export)
    export_output: str | None = None  # the exported output compared with ``outputs`` (default: the first)
    export_options: dict | None = None
    atol: float = 1e-4


def _flat(outputs):
    if isinstance(outputs, np.ndarray):
        return outputs.astype(np.float64).ravel()
    if isinstance(outputs, dict):
        return np.concatenate([_flat(v) for k, v in sorted(outputs.items()) if k != "names"] or [np.zeros(0)])
    return np.concatenate([_flat(np.asarray(o)) if not isinstance(o, dict) else _flat(o) for o in outputs]
                          or [np.zeros(0)])


def assert_same(a, b, atol):
    fa, fb = _flat(a), _flat(b)
    assert fa.shape == fb.shape, (fa.shape, fb.shape)
    np.testing.assert_allclose(fa, fb, atol=atol)


def run_task_test(case: KindCase, tmp_path):
    import tensorflow as tf
    from PIL import Image

    import zoo
    from zoo.errors import ImageError, InputShapeError

    task = case.make()
    x = images()
    r = case.outputs(task, x)
    assert r.sources == list(range(len(x))) and r.skipped == []

    folder = tmp_path / "imgs"  # PNG is lossless: the same pixels as the array
    folder.mkdir()
    paths = [folder / f"{i}.png" for i in range(len(x))]
    for p, img in zip(paths, x):
        Image.fromarray(img).save(p)
    (folder / "broken.png").write_bytes(b"not an image")
    rf = case.outputs(task, [str(p) for p in paths] + [str(folder / "broken.png")])
    assert [str(s) for s in rf.sources] == [str(p) for p in paths]
    assert [str(s) for s, _ in rf.skipped] == [str(folder / "broken.png")]
    assert_same(rf.outputs, r.outputs, case.atol)
    rd = case.outputs(task, tf.data.Dataset.from_tensor_slices(x).batch(3))
    assert_same(rd.outputs, r.outputs, case.atol)

    out = task.save(tmp_path / "model")
    again = zoo.load(out)
    assert type(again) is type(task) and again.kind == task.kind == case.name
    assert_same(case.outputs(again, x).outputs, r.outputs, 1e-5)

    if case.export:
        check_export(task, case, tmp_path)

    with pytest.raises(InputShapeError, match="NaN"):
        case.outputs(task, np.full((2, 8, 8, 3), np.nan, np.float32))
    with pytest.raises(InputShapeError, match="batch_size"):
        case.outputs(task, x, batch_size=0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"no pixels")
    with pytest.raises(ImageError):
        case.outputs(task, [str(bad / "a.png")])
    return task


def check_export(task, case: KindCase, tmp_path):
    """The exported graph's output on uint8 images at the input size matches the Keras task's."""
    import tensorflow as tf

    from zoo.runtimes import open_export

    x = np.stack([tf.image.resize(i, (task.input_size, task.input_size)).numpy().round().clip(0, 255)
                  for i in images()]).astype(np.uint8)
    want = case.outputs(task, x).outputs
    path = task.export(tmp_path / f"export.{case.export}" if case.export != "saved_model" else tmp_path / "sm",
                       format=case.export, **(case.export_options or {}))
    if case.export == "saved_model":
        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        got = {k: v.numpy() for k, v in fn(tf.constant(x)).items()}
    else:
        got = open_export(path).run(x)
    key = case.export_output or next(iter(got))
    assert_same(got[key], want if not isinstance(want, list) or not isinstance(want[0], dict) else
                [w[key] for w in want], case.atol * 10)


def run_training_test(kind, train, val, tmp_path, outputs: Callable, **settings):
    """One head epoch and one unfrozen epoch through zoo.training; the record every kind shares."""
    import zoo

    task = kind.train(train, val, backbone=tiny_backbone(), head_epochs=1, epochs=1, batch_size=4, verbose=0,
                      run_eagerly=True,
                      out_dir=tmp_path / "run", **settings)
    assert task.history["phase_starts"] == [0, 1] and len(task.history["loss"]) == 2
    assert np.isfinite(task.history["loss"]).all()
    assert RECORD <= set(task.training_config), RECORD - set(task.training_config)
    assert task.training_config["kept"] in ("head", "finetuned")
    assert (tmp_path / "run" / "curves.png").is_file()
    x = images(3, seed=5)
    again = zoo.load(task.save(tmp_path / "trained"))
    assert again.training_config["kept"] == task.training_config["kept"]
    assert_same(outputs(again, x).outputs, outputs(task, x).outputs, 1e-5)
    return task
