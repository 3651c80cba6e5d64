import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ZOO_OFFLINE", "1")  # tests never try the network

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: large models or long training (run by default; -m 'not slow' skips)")


@pytest.fixture(scope="session")
def lite0():
    import zoo

    return zoo.load("efficientnet_lite0")


@pytest.fixture(scope="session")
def fmnist_test():
    from zoo import data

    return data.fashion_mnist("test")


@pytest.fixture(scope="session")
def fmnist_train():
    from zoo import data

    return data.fashion_mnist("train")


@pytest.fixture(scope="session")
def lite0_96():
    """EfficientNet-Lite0 (real weights) at 96 px: the small-input model the search recipes test with."""
    import zoo

    return zoo.load("efficientnet_lite0", input_size=96)


def _fmnist_sample(split: str, per_class: int, seed: int = 0, classes=None, grouped: bool = False):
    """(images uint8 (N,28,28), labels int): ``per_class`` real Fashion-MNIST images of each of ``classes``
    (all ten by default); ``grouped`` orders them by class."""
    from zoo import data

    d = data.fashion_mnist(split).subset(per_class=per_class, seed=seed)
    keep = np.isin(d.labels, list(range(10) if classes is None else classes))
    x, y = d.images[keep], d.labels[keep].astype(int)
    order = np.argsort(y, kind="stable") if grouped else np.arange(len(y))
    return x[order], y[order]


@pytest.fixture(scope="session")
def fmnist_sample():
    """The Fashion-MNIST sampler: ``fmnist_sample(split, per_class, seed=0, classes=None, grouped=False)``."""
    return _fmnist_sample


@pytest.fixture(scope="session")
def photos():
    from skimage import data

    return {"chelsea": data.chelsea(), "coffee": data.coffee(), "astronaut": data.astronaut(),
            "rocket": data.rocket(), "camera": data.camera()}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---- trained task models shared across test files (each trained once per session) ------------
DETECTOR_TRAIN = {"n": 384, "size": 96, "epochs": 5}   # about a minute on 2 busy CPU cores


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """(RetinaNet on Lite0 trained briefly on 96 px demo scenes, its run folder)."""
    from recipes import detection

    out = tmp_path_factory.mktemp("detect")
    t = DETECTOR_TRAIN
    tr, va = detection.scenes(("train", "val"), n={"train": t["n"], "val": 48}, size=t["size"])
    det = detection.train(tr, va, head_epochs=t["epochs"], epochs=0, out_dir=out, verbose=0, eval_every=0)
    return det, out


@pytest.fixture(scope="session")
def trained_segmenter(tmp_path_factory):
    """(U-Net trained briefly on the frozen backbone, 64 px scenes, about 40 s here; its run folder)."""
    from recipes import segmentation

    out = tmp_path_factory.mktemp("seg_run")
    train, val = segmentation.scenes("train", n=240, size=64), segmentation.scenes("val", n=40, size=64)
    seg = segmentation.train(train, val, input_size=64, head_epochs=8, epochs=0, batch_size=16, head_lr=5e-3,
                             augment=False, out_dir=out, verbose=0)
    return seg, out
