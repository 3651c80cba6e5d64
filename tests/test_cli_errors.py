"""The command line: fast start-up, quiet TensorFlow, one-line errors, plugins, honest test figures."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TF_NOISE = re.compile(r"absl::InitializeLog|cudart_stub|cuInit|cuda_platform|Attempting to register factory")


def _user_env():
    """The environment of a user who set nothing (conftest sets TF_CPP_MIN_LOG_LEVEL for pytest)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["info", "efficientnet_lite0"], ["list", "--help"]])
def test_light_commands_import_neither_tensorflow_nor_faiss(argv):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", *argv], capture_output=True,
                       text=True, env=_user_env(), cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert imported and not imported & {"tensorflow", "keras", "faiss", "numpy"}, sorted(imported)
    others = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert others == [] and r.stdout.strip()


def test_import_zoo_is_light_and_keeps_its_names():
    code = ("import sys, zoo, zoo.registry, zoo.catalog, zoo.weights.resolve\n"
            "assert zoo.list_models('efficientnet_lite*') == ['efficientnet_lite0', 'efficientnet_lite1', "
            "'efficientnet_lite2']\n"
            "assert zoo.info('resnet50')['input_size'] == 224 and zoo.get_entry('resnet50').name == 'resnet50'\n"
            "assert issubclass(zoo.UnknownModelError, zoo.ZooError) and zoo.__version__\n"
            "assert callable(zoo.register) and 'load' in dir(zoo)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "assert not heavy, heavy[:5]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_user_env(), cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import zoo  # the lazy names resolve on use (here TensorFlow is loaded already)
    from zoo import load

    assert zoo.load is load and zoo.ZooModel.__name__ == "ZooModel" and zoo.data.LabeledImages
    with pytest.raises(AttributeError):
        zoo.no_such_name  # noqa: B018


def test_startup_filter_drops_only_tensorflow_noise():
    import zoo

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1.0 42 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n"
            "E0000 00:00:1.0 42 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
            "E0000 00:00:1.0 42 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to register "
            "factory for plugin cuDNN when one has already been registered\n"
            "/x/y.py:3: UserWarning: something a user should see\n"
            "E0000 00:00:1.0 42 some_kernel.cc:1] a real error\n")
    kept = zoo._filter_startup(text)
    assert "UserWarning: something a user should see" in kept and "a real error" in kept
    assert not TF_NOISE.search(kept.replace("a real error", "")) or zoo._has_nvidia_device()


def test_tensorflow_startup_prints_nothing_for_a_user_script_and_the_cli(tmp_path, photos):
    """A user's script (`import zoo`, then the CLI's `zoo.load` and embedding) prints only zoo's own
    lines, with TF_CPP_MIN_LOG_LEVEL unset; the --out folders are created."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(photos["coffee"][::4, ::4]).save(imgs / "coffee.png")
    out = tmp_path / "new" / "deeper" / "e.npz"
    code = ("import sys, zoo\n"
            "from zoo.cli import main\n"
            f"sys.exit(main(['embed', {str(imgs)!r}, '--out', {str(out)!r}, '--input-size', '32']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_user_env(), cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"wrote 1 x 1280 embeddings to {out}" in r.stdout
    noise = [line for line in r.stderr.splitlines() if TF_NOISE.search(line)]
    assert noise == [] or _has_gpu(), noise
    assert np.load(out)["embeddings"].shape == (1, 1280)


def _has_gpu():
    return any(re.fullmatch(r"nvidia\d+", n) for n in os.listdir("/dev"))


@pytest.mark.parametrize("argv, message", [
    (["embed", ".", "--out", "x.npz", "--batch-size", "0"], "--batch-size: must be 1 or more, got 0"),
    (["classify", "a.jpg", "--top-k", "-3"], "-k/--top-k: must be 1 or more, got -3"),
    (["classify", "a.jpg", "-k", "two"], "expected a positive integer, got 'two'"),
    (["finetune", "d", "--out", "o", "--test-fraction", "1.5"], "must be at least 0 and below 1"),
    (["index", "build", "d", "--out", "o", "--batch-size", "0"], "must be 1 or more"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_exit_2_without_a_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["embed", str(imgs), "--out", str(blocker / "sub" / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create the folder") and str(blocker / "sub") in err
    assert "embed:" not in err and "Traceback" not in err  # refused before loading the model
    assert main(["embed", str(imgs), "--out", str(imgs)]) == 1
    assert f"error: --out {imgs} is a folder" in capsys.readouterr().err
    assert main(["finetune", "fashion_mnist", "--out", str(blocker)]) == 1
    assert f"error: --out {blocker} is a file" in capsys.readouterr().err


def test_missing_empty_and_corrupt_inputs_are_named(tmp_path, photos, capsys, monkeypatch, lite0):
    import zoo

    real_load = zoo.load  # the suite's loaded EfficientNet-Lite0 stands in for a second identical load
    monkeypatch.setattr(zoo, "load", lambda name, *a, **kw: lite0 if name == "efficientnet_lite0" and not a
                        and not kw else real_load(name, *a, **kw))
    (tmp_path / "empty").mkdir()
    assert main(["classify", str(tmp_path / "nope.jpg")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.jpg'}: no such file or folder"
    assert main(["embed", str(tmp_path / "empty"), "--out", str(tmp_path / "e.npz")]) == 1
    assert "no image files" in capsys.readouterr().err

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photos["chelsea"]).save(folder / "cat.jpg")
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)
    assert main(["classify", str(bad)]) == 1  # one corrupt file: its name, not "none of the 0 images"
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "Traceback" not in err
    assert main(["classify", str(folder), "-k", "2"]) == 1  # a folder: its images, the bad one reported
    captured = capsys.readouterr()
    assert str(folder / "cat.jpg") in captured.out and ("cat" in captured.out)
    assert f"skipped {bad}" in captured.err and "Is a directory" not in captured.err


def test_plugins_add_commands_with_the_same_error_handling(capsys):
    from zoo.errors import DataError

    def fail(message_type):
        def func(a):
            raise message_type(f"bad input {a.value!r}: try another")
        return func

    def plugin(subparsers):
        for name, exc in (("boom", RuntimeError), ("usererr", DataError)):
            s = subparsers.add_parser(name, help=f"raises {exc.__name__}")
            s.add_argument("value")
            s.set_defaults(func=fail(exc))
        s = subparsers.add_parser("hello")
        s.add_argument("--times", type=int, default=1)
        s.set_defaults(func=lambda a: print("hello " * a.times) and 0)

    parser, sub = build_parser([plugin])
    assert {"boom", "usererr", "hello", "list", "index", "dedup"} <= set(sub.choices)
    assert main(["hello", "--times", "2"], plugins=[plugin]) == 0
    assert capsys.readouterr().out.strip() == "hello hello"
    assert main(["usererr", "x"], plugins=[plugin]) == 1
    assert capsys.readouterr().err == "error: bad input 'x': try another\n"
    assert main(["boom", "x"], plugins=[plugin]) == 1
    err = capsys.readouterr().err
    assert err == "internal error: RuntimeError: bad input 'x': try another (run with --debug for the traceback)\n"
    assert main(["boom", "x", "--debug"], plugins=[plugin]) == 1  # the global flag after the subcommand too
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "internal error: RuntimeError" in err
    assert main(["--debug", "usererr", "y"], plugins=[plugin]) == 1
    assert "Traceback" in capsys.readouterr().err


def _fmnist_folder(root: Path, per_class: int, classes=(0, 1, 2)) -> Path:
    from zoo import data

    d = data.fashion_mnist("test").subset(per_class=per_class, seed=1)
    for i, (img, y) in enumerate(zip(d.images, d.labels)):
        if y in classes:
            folder = root / f"class{y}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


def test_finetune_without_a_test_split_holds_out_test_images(tmp_path, capsys):
    src = _fmnist_folder(tmp_path / "fm", per_class=6)   # 3 classes x 6 real Fashion-MNIST images
    out = tmp_path / "run"
    assert main(["finetune", str(src), "--out", str(out), "--input-size", "32", "--epochs", "0",
                 "--head-epochs", "2", "--batch-size", "8"]) == 0
    text = capsys.readouterr().out
    assert "held out 3 of its 18 images as the test set (0.2 of each class, seed 0)" in text
    assert re.search(r"test accuracy [01]\.\d{4} on 3 images \(held out before training\)", text), text
    assert "on 18 images" not in text and "on 15 images" not in text
    split = json.loads((out / "split.json").read_text())
    assert len(split["test"]) == 3 and len(split["train"]) == 15 and not set(split["test"]) & set(split["train"])
    assert sorted(Path(p).parent.name for p in split["test"]) == ["class0", "class1", "class2"]  # stratified
    assert (out / "model" / "config.json").is_file() and (out / "confusion_test.png").is_file()


def test_finetune_reports_no_test_figure_when_too_small_to_hold_out(tmp_path):
    from argparse import Namespace

    from zoo import data
    from zoo.cli import _held_out_test
    from zoo.errors import NoSplitError

    d = data.load(_fmnist_folder(tmp_path / "fm", per_class=2, classes=(0, 1)))
    train, test, note = _held_out_test(d, Namespace(test_fraction=0.2, seed=0))
    assert test is None and len(train) == 4 and "too few to hold out a test set" in note
    with pytest.raises(NoSplitError, match="no test/ subfolder"):
        data.load(tmp_path / "fm", "test")
