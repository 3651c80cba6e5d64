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
def photos():
    from skimage import data

    return {"chelsea": data.chelsea(), "coffee": data.coffee(), "astronaut": data.astronaut(),
            "rocket": data.rocket(), "camera": data.camera()}


@pytest.fixture
def rng():
    return np.random.default_rng(0)
