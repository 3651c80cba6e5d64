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


def test_item_crops_are_the_scene_items_centred_with_their_labels(three):
    from dataclasses import replace

    tr = three[0].take(range(20))
    crops = sc.item_crops(tr, size=40, context=0.15)
    assert crops.images.shape == (sum(map(len, tr.labels)), 40, 40, 3) and crops.images.dtype == np.uint8
    np.testing.assert_array_equal(crops.labels, np.concatenate(tr.labels))
    assert crops.class_names == tr.class_names
    # the same crops of white-on-black item masks: each item's box is centred, its longer side 1/1.3 of the crop
    k = 0
    for i in range(len(tr)):
        for j in range(len(tr.labels[i])):
            white = np.repeat((tr.instances[i:i + 1] == j + 1)[..., None] * np.uint8(255), 3, -1)
            one = replace(tr.take([i]), images=white, boxes=[tr.boxes[i][j:j + 1]], labels=[tr.labels[i][j:j + 1]])
            ys, xs = np.nonzero(sc.item_crops(one, size=40, context=0.15).images[0, ..., 0] > 0)  # any coverage
            x0, y0, x1, y1 = tr.boxes[i][j]
            tol = 1 + 40 / (1.3 * max(x1 - x0, y1 - y0))  # a scene pixel of rounding, in crop pixels, and one
            assert abs((xs.min() + xs.max() + 1) / 2 - 20) <= tol and abs((ys.min() + ys.max() + 1) / 2 - 20) <= tol
            assert abs(max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) - 40 / 1.3) <= 2 * tol
            k += 1
    assert k == len(crops.labels)
