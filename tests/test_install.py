"""The package as a user installs it: an sdist, a wheel built from it, installed into a fresh
virtual environment beside the project's dependencies, and used from another folder.

The fresh environment sees the dependencies through a ``.pth`` line naming this environment's
site-packages (a ``.pth`` line adds the folder without running the editable install's hooks in
it), and nothing of the checkout: no PYTHONPATH, another working directory, and every import is
checked to come from the new environment.
"""
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, cwd, env, timeout=300):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin folder, a clean environment, a working folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("install")
    dist, src = tmp / "dist", tmp / "src"  # built from a copy: the build's egg-info stays out of the checkout
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("zoo", "recipes", "apps"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    code, out, err = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], tmp,
                         {**os.environ, "PYTHONWARNINGS": "ignore"})
    assert code == 0, err[-3000:]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("*.whl"))
    code, out, err = run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", wheel],
                         tmp, dict(os.environ))
    assert code == 0, err[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(ZOO_OFFLINE="1", ZOO_HOME=str(tmp / "zoo_home"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    work = tmp / "elsewhere"
    work.mkdir()
    return {"py": py, "bin": venv / "bin", "env": env, "work": work, "dist": dist, "site": site}


def test_sdist_and_wheel_carry_every_module_and_data_file(installed):
    """Every .py file of zoo, recipes and apps, and the apps' config, is in the wheel (built from the sdist)."""
    wheel = next(installed["dist"].glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for pkg in ("zoo", "recipes", "apps") for p in (ROOT / pkg).rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected and expected <= names, sorted(expected - names)
    assert "apps/.streamlit/config.toml" in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Name: keras-vision-zoo" in text and 'Provides-Extra: apps' in text
    eps = zipfile.ZipFile(wheel).read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert "zoo = zoo.cli:main" in eps and "[zoo.datasets]" in eps
    sdist = next(installed["dist"].glob("*.tar.gz"))
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    assert {"pyproject.toml", "README.md", "zoo/architectures/efficientnet_lite.py", "apps/Home.py"} <= members


def test_installed_package_runs_from_another_folder(installed, photos):
    from PIL import Image

    py, env, work = installed["py"], installed["env"], installed["work"]
    code, out, err = run([py, "-c", "import zoo, recipes, apps; print(zoo.__file__, recipes.__file__, apps.__file__)"],
                         work, env)
    assert code == 0, err
    assert all(p.startswith(str(installed["site"])) for p in out.split()), out  # not the checkout's files

    Image.fromarray(photos["chelsea"]).save(work / "cat.jpg")
    code, out, err = run([installed["bin"] / "zoo", "classify", "cat.jpg", "-k", "3"], work, env)
    assert code == 0, err[-2000:]
    top = [int(line.rsplit("(", 1)[1].rstrip(")")) for line in out.splitlines()[1:4]]
    assert top[0] in range(281, 286), out  # a cat (ImageNet 281-285)

    code, out, err = run([py, "-m", "zoo", "detect", "--help"], work, env)
    assert code == 0 and "--model" in out and "mtcnn_faces" in out, (out, err)
    code, out, err = run([py, "-m", "zoo", "--help"], work, env)
    assert code == 0 and all(c in out for c in ("detect", "segment", "export", "zero-shot", "index", "apps")), out

    code, out, err = run([py, "-c", "import zoo; m = zoo.load('efficientnet_lite0'); print(m.feature_dim, "
                                    "m.weights_source)"], work, env)
    assert code == 0 and out.split()[0] == "1280", err[-2000:]
    assert err.strip() == "", err  # a quiet start: no TensorFlow, absl or oneDNN lines


def test_installed_apps_start_with_zoo_apps(installed):
    psutil = pytest.importorskip("psutil")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(installed["work"] / "apps.log", "wb")
    proc = subprocess.Popen([installed["bin"] / "zoo", "apps", "--server.headless", "true", "--server.port", str(port),
                             "--server.fileWatcherType", "none"], cwd=installed["work"], env=installed["env"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, listening = time.monotonic() + 60, set()
        while not listening and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            listening = {c.laddr.ip for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
                         for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}, (installed["work"] / "apps.log").read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/classify", timeout=30) as r:
            assert r.status == 200 and "<html" in r.read().decode().lower()
    finally:
        for p in psutil.Process(proc.pid).children(True):
            p.terminate()
        proc.terminate()
        proc.wait(15)
