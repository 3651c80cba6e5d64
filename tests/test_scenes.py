"""The shared demo scenes (recipes.scenes): exact boxes and masks, determinism, disjoint splits."""
import numpy as np
import pytest

from recipes import scenes as sc
from zoo.errors import DataError


@pytest.fixture(scope="module")
def three():
    return sc.scenes(n={"train": 60, "val": 30, "test": 30}, size=(96, 128))


def test_boxes_labels_and_masks_agree(three):
    for s in three:
        assert s.images.shape == (len(s), 96, 128, 3) and s.images.dtype == np.uint8
        assert s.masks.shape == s.instances.shape == (len(s), 96, 128)
        for i in range(len(s)):
            k = len(s.labels[i])
            assert 1 <= k <= 5 and s.boxes[i].shape == (k, 4)
            assert set(np.unique(s.instances[i])) == set(range(k + 1))  # every item keeps visible pixels
            lut = np.concatenate([[0], s.labels[i] + 1])
            np.testing.assert_array_equal(s.masks[i], lut[s.instances[i]])
            for j in range(k):
                ys, xs = np.nonzero(s.instances[i] == j + 1)
                np.testing.assert_array_equal(s.boxes[i][j], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_labels_are_the_source_items_classes(three, fmnist_train, fmnist_test):
    tr, va, te = three
    for s, src in ((tr, fmnist_train), (va, fmnist_train), (te, fmnist_test)):
        np.testing.assert_array_equal(np.concatenate(s.labels), src.labels[np.concatenate(s.items)])
    assert tr.mask_class_names[0] == "background" and tr.class_names[9] == "Ankle boot"


def test_objects_cover_a_fair_share_of_each_scene(three):
    fg = (three[0].masks > 0).mean(axis=(1, 2))
    assert fg.min() > 0.005 and 0.05 < fg.mean() < 0.4


def test_deterministic_by_seed_and_prefix_stable():
    a = sc.scenes("val", n=12, size=64, seed=3)
    b = sc.scenes("val", n=5, size=64, seed=3)
    np.testing.assert_array_equal(a.images[:5], b.images)
    np.testing.assert_array_equal(a.masks[:5], b.masks)
    c = sc.scenes("val", n=5, size=64, seed=4)
    assert not np.array_equal(b.images, c.images)


def test_splits_and_styles_never_share_items_or_photos(three):
    tr, va, te = three
    assert tr.source_split == va.source_split == "train" and te.source_split == "test"
    assert np.concatenate(tr.items).max() < sc.VAL_START <= np.concatenate(va.items).min()
    photos = [set(names) for style in sc.BACKGROUNDS.values() for names in style.values()]
    assert sum(map(len, photos)) == len(set().union(*photos))
    for s in three:
        assert set(s.backgrounds) <= set(sc.BACKGROUNDS["default"][s.split])
    sh = sc.scenes("test", n=20, size=96, style="shifted")
    assert set(sh.backgrounds) <= set(sc.BACKGROUNDS["shifted"]["test"])
    assert max(len(v) for v in sh.labels) <= 6


def test_take_and_bad_arguments(three):
    t = three[0].take([2, 0])
    np.testing.assert_array_equal(t.masks[1], three[0].masks[0])
    assert len(t) == 2 and t.labels[0] is three[0].labels[2]
    with pytest.raises(DataError, match="split"):
        sc.scenes("dev", n=1)
    with pytest.raises(DataError, match="style"):
        sc.scenes("train", n=1, style="odd")
    with pytest.raises(DataError, match="size"):
        sc.scenes("train", n=1, size=8)
    with pytest.raises(DataError, match="count"):
        sc.scenes("train", n=1, count=(0, 2))


def test_denser_scenes_on_request():
    dense = sc.scenes("train", n=20, size=128, count=(6, 6))
    assert np.mean([len(v) for v in dense.labels]) > 5 and max(len(v) for v in dense.labels) == 6
