"""Every registry entry, random-init at a tiny size: builds with the declared parameter count, and
its embedding and P2..P5 pyramid have the declared feature dim and strides. The smallest entry of
each family also runs them on images, fine-tunes a step, saves and reloads identically (the rest of
a family shares its code path; running the graphs of the 200M-parameter entries cost a third of the
suite's time, tracing them, so they are checked on the built graph's shapes)."""
import keras
import numpy as np
import pytest

import zoo
from zoo.registry import get_entry

ALL = zoo.list_models(tags=True)  # every name.tag: timm weights share names with keras.applications'
BIG = {n for n in ALL if get_entry(n).params_m > 40 or get_entry(n).gmacs > 10}


def _params(name):
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in ALL]


def _smallest_per_family():
    """The smallest entry of each family, when it is not BIG: a family of only 86M-parameter ViT-B
    towers (CLIP, SigLIP, ViT) shares zoo/architectures/vit.py with DINOv2-S, which fine-tunes here;
    their builds and embeddings are checked by test_entry_harness (about 80 s saved)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
            for n in sorted(_smallest()) if not (n in BIG and _is_vit(get_entry(n)))]


def _smallest():
    """The smallest entry (fewest parameters) of each family."""
    best = {}
    for n in ALL:
        e = get_entry(n)
        if e.family not in best or e.params_m < get_entry(best[e.family]).params_m:
            best[e.family] = n
    return set(best.values())


RUN = _smallest()  # entries whose embedding and pyramid run on images (the others: shapes only)


def _is_vit(entry) -> bool:
    """ViTs' position tables (and so their parameter count) follow the input size."""
    return getattr(entry.builder, "is_vit", False)


def _size(entry):
    return 64 if entry.min_input_size <= 32 else 139  # valid-padding nets need more


@pytest.mark.parametrize("name", _params(None))
def test_entry_harness(name, tmp_path, rng):
    entry = get_entry(name)
    size = _size(entry)
    m = zoo.load(name, weights=None, input_size=size)
    if entry.family != "vgg" and not _is_vit(entry):  # VGG's dense head depends on the input size
        assert m.keras_model.count_params() / 1e6 == pytest.approx(entry.params_m, abs=0.01)

    if name in RUN:
        x = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)  # any size: resized by the model
        e = m.embed(x, progress=False)
        assert e.shape == (3, entry.feature_dim) and e.dtype == np.float32 and np.isfinite(e).all()
        feats = m.features(x[:1])
    else:
        assert tuple(m.embedding_model.output.shape) == (None, entry.feature_dim)
        feats = dict(m.pyramid_model.output)  # symbolic: (None, H, W, C) from the built graph
    assert list(feats) == ["P2", "P3", "P4", "P5"]
    for level, stride in (("P2", 4), ("P3", 8), ("P4", 16), ("P5", 32)):
        h = feats[level].shape[1]  # valid padding (Inception, Xception) shrinks a little more
        assert size / stride / 1.35 - 1 <= h <= size / stride + 1, (level, feats[level].shape)
    assert feats["P5"].shape[-1] == entry.feature_dim
    if _is_vit(entry):  # ViTDet's pyramid: exact strides for inputs divisible by 32
        assert {k: v.shape[1] for k, v in feats.items()} == {"P2": 16, "P3": 8, "P4": 4, "P5": 2}
    keras.backend.clear_session()


@pytest.mark.parametrize("name", _smallest_per_family())
def test_family_finetunes_saves_and_reloads(name, tmp_path, rng):
    m = zoo.load(name, weights=None, input_size=_size(get_entry(name)))
    x = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1])
    clf = m.finetune((rng.integers(0, 256, (4, 32, 32), dtype=np.uint8), y), epochs=1, head_epochs=1,
                     batch_size=4, val_fraction=0, augment="none", verbose=0, run_eagerly=True)
    assert len(clf.history["loss"]) == 2 and np.isfinite(clf.history["loss"]).all()
    clf.save(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(x, batch_size=4), clf.predict(x, batch_size=4), atol=1e-5)
    keras.backend.clear_session()


def test_registry_records_match_the_computed_cost():
    from zoo.architectures.efficientnet_lite import EfficientNetLite
    from zoo.flops import count_macs

    for v in ("lite0", "lite1", "lite2"):
        e = get_entry(f"efficientnet_{v}")
        net = EfficientNetLite(v)
        assert net.count_params() / 1e6 == pytest.approx(e.params_m, abs=0.01)
        assert count_macs(net) / 1e9 == pytest.approx(e.gmacs, abs=0.01)
