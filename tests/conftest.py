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
