"""tensorflow-datasets by name for the detector and segmenter kinds (``zoo.tasks.<kind>.data.read_tfds``
on ``zoo.tfds``), tested offline.

tfds's ``mock_data`` (policy USE_CODE) builds random examples from each dataset's feature spec
without any files and makes ``download_and_prepare`` a no-op (examples made self-consistent by
``_Consistent``); the expected values are computed here from the same raw examples.
"""
import functools

import numpy as np
import pytest

from zoo.errors import DataError
from zoo.tasks.detector import data as detector_data
from zoo.tasks.detector.data import DetectionData
from zoo.tasks.segmenter import data as segmenter_data
from zoo.tasks.segmenter.data import MaskedImages

tfds = pytest.importorskip("tensorflow_datasets")
from tensorflow_datasets.testing import mocking  # noqa: E402

N = 4


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)  # conftest sets it; mock_data never downloads


def _raw(name, split="train"):
    return list(tfds.as_numpy(tfds.builder(name).as_dataset(split=split)))


def _expected_boxes(ex, style):
    """xyxy pixel edges and labels, from the raw example, written out independently."""
    h, w = ex["image"].shape[:2]
    out_b, out_l = [], []
    crowd = ex["objects"].get("is_crowd", np.zeros(len(ex["objects"]["label"]), bool))
    bbox = ex["objects"]["bbox"].astype(np.float64)
    for (ymin, xmin, ymax, xmax), lab, c in zip(bbox, ex["objects"]["label"], crowd):
        if c:
            continue
        x1, y1, x2, y2 = xmin * w, ymin * h, xmax * w, ymax * h
        if style == "voc":
            x1, y1 = x1 - 1, y1 - 1
        x1, x2 = min(max(x1, 0), w), min(max(x2, 0), w)
        y1, y2 = min(max(y1, 0), h), min(max(y2, 0), h)
        if x2 > x1 and y2 > y1:
            out_b.append([x1, y1, x2, y2])
            out_l.append(lab)
    return np.asarray(out_b, np.float32).reshape(-1, 4), np.asarray(out_l, np.int64)


def test_tfds_boxes_maths():
    bbox = [[0.2, 0.1, 0.6, 0.5], [0.5, 0.5, 0.4, 0.9], [0.0, 0.0, 1.2, 1.0]]  # (ymin, xmin, ymax, xmax)
    b, kept = detector_data.tfds_boxes(bbox, width=100, height=50, style="coco")
    assert kept.tolist() == [True, False, True]                # inverted box dropped
    np.testing.assert_allclose(b, [[10, 10, 50, 30], [0, 0, 100, 50]])  # second one clipped to 50
    b, _ = detector_data.tfds_boxes(bbox, width=100, height=50, style="voc")
    np.testing.assert_allclose(b[0], [9, 9, 50, 30])           # 1-based inclusive -> edges
    assert b.dtype == np.float32


@pytest.mark.parametrize("name,style", [("voc/2007", "voc"), ("voc/2012", "voc"), ("coco/2017", "coco")])
def test_detection_from_mock_tfds(online, name, style):
    with _mock():
        raw = _raw(name)
        data = detector_data.read_tfds(name, split="train", limit=3)
        names = list(tfds.builder(name).info.features["objects"]["label"].names)
    assert isinstance(data, DetectionData) and len(data) == 3 and len(raw) == N
    assert data.class_names == names and len(names) == (20 if style == "voc" else 80)
    assert len(data.sources) == 3 and all(s.startswith(f"{name}:train:") for s in data.sources)
    n_boxes = 0
    for img, b, lab, ex in zip(data.images, data.boxes, data.labels, raw):
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape == ex["image"].shape and img.shape[2] == 3
        assert b.dtype == np.float32 and b.shape == (len(lab), 4) and lab.dtype == np.int64
        exp_b, exp_l = _expected_boxes(ex, style)
        np.testing.assert_allclose(b, exp_b, rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(lab, exp_l)
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        assert (b >= 0).all() and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all()
        assert ((lab >= 0) & (lab < len(names))).all()
        n_boxes += len(b)
    assert n_boxes > 0  # random mock boxes: about a quarter are well-ordered, dozens per image


def test_detection_drops_coco_crowd(online):
    with _mock(num_examples=2):
        raw = _raw("coco/2017")
        data = detector_data.read_tfds("coco", limit=2)  # alias of coco/2017
    assert any(ex["objects"]["is_crowd"].any() for ex in raw)
    for b, ex in zip(data.boxes, raw):
        assert len(b) <= int((~ex["objects"]["is_crowd"]).sum())


class _Consistent(mocking.RandomFakeGenerator):
    """mock_data's random examples, made self-consistent as real ones are: mock_data draws every
    unknown dimension on its own, so the ``objects`` sub-features get different lengths and the
    image and mask different sizes; here objects are cut to their shortest length and image and
    mask to their common size (still random, H != W in general)."""

    def __iter__(self):
        for ex in super().__iter__():
            if "objects" in ex:
                k = min(len(v) for v in ex["objects"].values())
                ex["objects"] = {key: v[:k] for key, v in ex["objects"].items()}
            if "segmentation_mask" in ex:
                h = min(ex["image"].shape[0], ex["segmentation_mask"].shape[0])
                w = min(ex["image"].shape[1], ex["segmentation_mask"].shape[1])
                ex["image"], ex["segmentation_mask"] = ex["image"][:h, :w], ex["segmentation_mask"][:h, :w]
            yield ex


def _mock(num_examples=N, max_value=None):
    """mocking.mock_data (policy USE_CODE, nothing read or downloaded) yielding _Consistent examples."""
    import tensorflow as tf

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        specs = self.info.features.get_tensor_info()
        gen = functools.partial(_Consistent, features=self.info.features, num_examples=num_examples,
                                max_value=max_value)
        return tf.data.Dataset.from_generator(gen, output_types=tf.nest.map_structure(lambda t: t.tf_dtype, specs),
                                              output_shapes=tf.nest.map_structure(lambda t: t.shape, specs))

    return mocking.mock_data(num_examples=num_examples, policy=mocking.MockPolicy.USE_CODE, as_dataset_fn=as_dataset)


def test_masks_from_mock_tfds(online):
    with _mock(max_value=4):  # mask values 0-3: the trimap's 1, 2, 3 and an unexpected 0
        raw = _raw("oxford_iiit_pet")
        data = segmenter_data.read_tfds("oxford_iiit_pet", split="train", limit=3)
    assert isinstance(data, MaskedImages) and len(data) == 3 and len(data.images) == 3
    assert data.class_names == ["background", "pet"]
    seen = set()
    for img, m, ex in zip(data.images, data.masks, raw):
        assert img.dtype == np.uint8 and img.shape == ex["image"].shape and img.shape[2] == 3
        assert m.dtype == np.uint8 and m.shape == img.shape[:2]
        t = ex["segmentation_mask"][..., 0]
        np.testing.assert_array_equal(m, np.where(t == 1, 1, np.where(t == 2, 0, 255)).astype(np.uint8))
        seen |= set(np.unique(m).tolist())
    assert seen == {0, 1, 255}


def test_inconsistent_examples_are_data_errors(online):
    # plain mock_data: image and mask sizes, and box and label counts, drawn independently.
    # The readers must refuse such examples, not misalign them.
    with mocking.mock_data(num_examples=1, policy=mocking.MockPolicy.USE_CODE):
        with pytest.raises(DataError, match="differ in size"):
            segmenter_data.read_tfds("oxford_iiit_pet")
        with pytest.raises(DataError, match="boxes but"):
            detector_data.read_tfds("voc/2007")


@pytest.mark.parametrize("name", ["voc/2007", "coco/2017", "oxford_iiit_pet"])
def test_offline_not_prepared(monkeypatch, tmp_path, name):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    fn = segmenter_data.read_tfds if name == "oxford_iiit_pet" else detector_data.read_tfds
    with pytest.raises(DataError) as err:
        fn(name, data_dir=str(tmp_path))
    msg = str(err.value)
    assert name in msg and "ZOO_OFFLINE" in msg and "data_dir" in msg


def test_download_false_not_prepared(online, tmp_path):
    with pytest.raises(DataError, match="download=False"):
        detector_data.read_tfds("voc/2012", data_dir=str(tmp_path), download=False)


def test_unknown_names():
    with pytest.raises(DataError, match="voc/2007.*coco/2017"):
        detector_data.read_tfds("mnist")
    with pytest.raises(DataError, match="oxford_iiit_pet.*boxes only"):
        segmenter_data.read_tfds("voc/2012")
    with pytest.raises(DataError, match="oxford_iiit_pet"):
        segmenter_data.read_tfds("cityscapes")
