import numpy as np
import pytest
from PIL import Image

from zoo import data
from zoo.errors import DataError


def test_fashion_mnist_from_debian_files(fmnist_train, fmnist_test):
    assert fmnist_train.images.shape == (60000, 28, 28) and len(fmnist_test) == 10000
    assert np.bincount(fmnist_test.labels).tolist() == [1000] * 10
    assert fmnist_train.class_names[9] == "Ankle boot"


def test_subset_and_split_are_stratified(fmnist_test):
    s = fmnist_test.subset(per_class=7)
    assert np.bincount(s.labels).tolist() == [7] * 10
    rest, held = s.split(0.3)
    assert len(rest) + len(held) == 70 and np.bincount(held.labels).tolist() == [2] * 10


def test_image_folder_with_a_corrupt_file(tmp_path, photos):
    for cls, key in (("cat", "chelsea"), ("cup", "coffee")):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(photos[key]).rotate(i * 10).save(tmp_path / cls / f"{i}.jpg")
    (tmp_path / "cup" / "broken.jpg").write_text("garbage")
    d = data.image_folder(tmp_path)
    assert d.class_names == ["cat", "cup"] and len(d) == 7
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in d.batches(64, batch_size=4)])
    assert sum(len(y) for y in ys) == 6  # the broken file is skipped, the run goes on
    assert np.concatenate(xs).shape[1:] == (64, 64, 3)


def test_bad_data_specs(tmp_path):
    with pytest.raises(DataError, match="class subfolders"):
        data.image_folder(tmp_path)
    with pytest.raises(DataError, match="unknown dataset"):
        data.load("no-such-dataset")
    with pytest.raises(DataError):
        data.LabeledImages(np.zeros((3, 4, 4)), [0, 1], ["a", "b"])


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", [tmp_path])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("test", data_dir=tmp_path)
