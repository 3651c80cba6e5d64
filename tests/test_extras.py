"""A feature whose optional package is missing says, in one line, which extra installs it.

Each case runs the real command in a child process in which the optional module cannot be
imported (``sys.modules[name] = None`` makes every import of it fail, as when it is not installed).
"""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

CHILD = ("import sys\n"
         "for m in {blocked!r}: sys.modules[m] = None\n"
         "from zoo.cli import main\n"
         "sys.exit(main({argv!r}))\n")


def run_without(blocked, argv, cwd):
    code = CHILD.format(blocked=list(blocked), argv=[str(a) for a in argv])
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


@pytest.mark.parametrize("blocked, argv, extra", [
    (["streamlit"], ["apps"], "apps"),
    (["faiss"], ["index", "build", "{images}", "--out", "{tmp}/x.zidx"], "cpu"),
    (["apache_beam"], ["index", "build", "{images}", "--out", "{tmp}/x.zidx", "--engine", "beam",
                       "--input-size", "32"], "beam"),
    (["mtcnn"], ["detect", "{images}/0.png", "--model", "mtcnn_faces"], "faces"),
    (["tf2onnx", "onnx"], ["export", "efficientnet_lite0", "--input-size", "32", "--format", "onnx",
                           "--out", "{tmp}/m.onnx"], "onnx"),
], ids=["apps", "faiss", "beam", "mtcnn", "onnx"])
def test_missing_extra_is_one_line_naming_it(blocked, argv, extra, images, tmp_path):
    argv = [a.format(images=images, tmp=tmp_path) for a in argv]
    r = run_without(blocked, argv, tmp_path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert f'pip install "keras-vision-zoo[{extra}]"' in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def test_python_api_names_the_extra_too(tmp_path):
    code = "import sys; sys.modules['faiss'] = None\nimport zoo.index"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo.errors.MissingDependencyError: similarity search needs the package faiss-cpu"), last
    assert 'pip install "keras-vision-zoo[cpu]"' in last
