"""The one trainer's options that every kind shares: a wall-clock budget with a learning rate that
decays over it (``max_minutes``) and a moving average of the weights (``ema``)."""
import math
import time

import numpy as np
import pytest

import zoo
from zoo.errors import RecipeError
from zoo.training import BudgetCosine, TimeBudget


@pytest.fixture(scope="module")
def lite0_64():
    return zoo.load("efficientnet_lite0", input_size=64)


@pytest.fixture(scope="module")
def small(fmnist_train):
    return fmnist_train.subset(per_class=20, seed=11), fmnist_train.subset(per_class=10, seed=12)


def test_budget_cosine_follows_steps_or_time_whichever_is_further():
    import keras

    spent = keras.Variable(0.0, trainable=False)
    s = BudgetCosine(1e-3, total_steps=100, warmup_fraction=0.1, alpha=0.01, spent=spent)
    lr = lambda step: float(s(step))  # noqa: E731
    assert lr(0) == 0.0 and lr(5) == pytest.approx(5e-4) and lr(10) == pytest.approx(1e-3)
    assert lr(55) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert lr(100) == pytest.approx(1e-5) and lr(500) == pytest.approx(1e-5)
    spent.assign(0.55)  # the clock is further on than the steps: the time decides
    assert lr(10) == pytest.approx(lr(55)) and lr(80) < lr(10)
    spent.assign(1.0)
    assert lr(0) == pytest.approx(1e-5)


def test_time_budget_stops_fit_mid_run():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.zeros((64, 1))
    budget = TimeBudget(1.0)
    t = time.monotonic()
    h = model.fit(x, y, epochs=100_000, batch_size=8, verbose=0, callbacks=[budget])
    assert budget.stopped and 1.0 <= time.monotonic() - t < 20 and len(h.history["loss"]) < 100_000
    steps = budget.steps
    assert steps >= 1
    model.fit(x, y, epochs=100, batch_size=8, verbose=0, callbacks=[budget])  # a second fit: the budget is spent
    assert budget.steps == steps + 1
    with pytest.raises(RecipeError, match="either seconds or deadline"):
        TimeBudget()


def _expected_val(clf, key="val_accuracy"):
    """The validation score of the weights returned: the kept phase's last epoch (no early stopping)."""
    starts, vals = clf.history["phase_starts"], clf.history[key]
    return vals[-1] if clf.training_config["kept"] == "finetuned" else vals[(starts + [len(vals)])[1] - 1]


def test_ema_weights_are_the_ones_validated_and_returned(lite0_64, small):
    """With ``ema`` the epochs are scored on the averaged weights and training ends with them."""
    tr, val = small
    kw = dict(epochs=1, head_epochs=1, batch_size=32, patience=None, verbose=0)
    clf = lite0_64.finetune(tr, val, ema=0.9, **kw)
    assert clf.evaluate(val)["accuracy"] == pytest.approx(_expected_val(clf), abs=1e-6)
    assert clf.training_config["ema"] == 0.9
    plain = lite0_64.finetune(tr, val, **kw)
    w_ema, w_plain = clf.network.get_layer("stem_conv").get_weights(), plain.network.get_layer("stem_conv").get_weights()
    assert not np.allclose(w_ema[0], w_plain[0])  # the average, not the last step's weights


def test_max_minutes_caps_both_phases_and_keeps_the_validated_weights(lite0_64, small):
    tr, val = small
    clf = lite0_64.finetune(tr, val, head_epochs=3, epochs=10_000, batch_size=32, max_minutes=0.5, ema=0.9,
                            patience=None, verbose=0)
    h = clf.history
    assert len(h["phase_starts"]) == 2 and len(h["loss"]) < 3 + 10_000  # the clock ended the unfrozen phase
    assert clf.training_config["seconds"] < 0.5 * 60 + 60  # the budget, one epoch over it and the setup at most
    assert clf.evaluate(val)["accuracy"] == pytest.approx(_expected_val(clf), abs=1e-6)
    assert clf.evaluate(val)["accuracy"] > 0.35  # ten classes, 200 images: it learned within the minutes
    with pytest.raises(RecipeError, match="max_minutes must be positive"):
        lite0_64.finetune(tr, val, max_minutes=0, verbose=0)
    with pytest.raises(RecipeError, match="between 0 and 1"):
        lite0_64.finetune(tr, val, epochs=1, head_epochs=0, ema=1.5, verbose=0)


def _pairs(y, mixed_y):
    """For each mixed label row: its partner j and weight w, with the row w*y_i + (1-w)*y_j (the ten
    items are of ten classes; j is i itself when the row is y_i's)."""
    c, out = np.argmax(y, 1), []
    for i, row in enumerate(mixed_y):
        other = np.where(np.arange(len(row)) == c[i], -1.0, row)
        j = i if other.max() <= 1e-6 else int(np.flatnonzero(c == np.argmax(other))[0])
        w = float(row[c[i]]) if j != i else 1.0
        np.testing.assert_allclose(row, w * y[i] + (1 - w) * y[j], atol=1e-5)
        out.append((j, w))
    return out


def test_mixup_and_cutmix_mix_each_image_with_its_partner_by_the_labels_weights(fmnist_train):
    """MixUp blends two items and weights their labels the same; CutMix pastes a box of the partner,
    and the partner's label weight is the box's share of the pixels."""
    import tensorflow as tf

    from zoo.augment import batch_mixing

    sub = fmnist_train.subset(per_class=1, seed=3)              # ten items, ten different classes
    x = np.repeat(sub.images[..., None], 3, -1).astype("float32")
    y = np.eye(10, dtype="float32")[sub.labels]
    mx, my = (t.numpy() for t in batch_mixing(mixup=0.4, seed=1)(tf.constant(x), tf.constant(y)))
    blended = 0
    for i, (j, w) in enumerate(_pairs(y, my)):
        np.testing.assert_allclose(mx[i], w * x[i] + (1 - w) * x[j], atol=1e-3)
        blended += 0.02 < w < 0.98
    assert blended >= 3, "Beta(0.4, 0.4) weights: most pairs are mixed visibly"
    x += 1000.0 * np.arange(10)[:, None, None, None]   # no pixel of one item equals one of another
    cx, cy = (t.numpy() for t in batch_mixing(cutmix=1.0, seed=1)(tf.constant(x), tf.constant(y)))
    boxed = 0
    for i, (j, w) in enumerate(_pairs(y, cy)):
        own, pasted = np.all(cx[i] == x[i], -1), np.all(cx[i] == x[j], -1) & (j != i)
        assert np.all(own | pasted)                                  # pixels of the two items only
        rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
        if len(rows):
            assert pasted[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()   # one box
            boxed += 1
        assert 1 - w == pytest.approx(pasted.mean(), abs=0.08), (i, j, w)    # the label weight: the box's share
    assert boxed >= 3
    assert batch_mixing() is None


def test_colour_parts_turn_hue_and_saturation_and_leave_grey_alone():
    """The "saturation" and "hue" augmentation parts (for classes that do not depend on colour): a
    grey item stays grey, a tinted one changes colour from draw to draw, shapes stay where they were."""
    from recipes.scenes import scenes
    from zoo.augment import build_augmentation

    img = scenes("test", n=1, size=64).images[0].astype("float32")
    grey = np.repeat(img.mean(-1, keepdims=True), 3, -1)
    red = np.zeros_like(img)
    red[16:48, 16:48] = [200.0, 30.0, 30.0]
    aug = build_augmentation(["saturation", "hue"], seed=0)
    out = np.stack([aug(np.stack([grey, red]), training=True).numpy() for _ in range(6)])
    assert out.shape == (6, 2, 64, 64, 3) and out.min() >= -1e-3 and out.max() <= 255.0 + 1e-3
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(grey, out[:, 0].shape), atol=1.0)   # grey: no colour to turn
    assert np.abs(out[:, 1, :16]).max() < 1e-3                         # black stays black
    centres = out[:, 1, 32, 32]                                        # the red square's centre, per draw
    assert len({tuple(np.round(c / 20)) for c in centres}) >= 3, centres   # other colours
    with pytest.raises(ValueError, match="saturation"):
        build_augmentation(["tint"])


def test_classifier_mixes_its_unfrozen_phase_batches_and_checks_the_settings(lite0_64, small):
    from zoo.tasks.classifier.model import FineTunedClassifier as Classifier
    from zoo.training import configure

    spec = Classifier.training
    cfg, opts = configure(spec, dict(mixup=0.2, cutmix=1.0, batch_size=32))
    task = Classifier(lite0_64, small[0].class_names)
    _, labels = next(iter(spec.dataset(task, small[0], cfg, opts, training=True)))
    assert np.allclose(labels.numpy().sum(1), 1) and (labels.numpy().max(1) < 0.999).any()   # soft labels
    _, labels = next(iter(spec.dataset(task, small[1], cfg, opts, training=False)))
    assert set(np.unique(labels.numpy())) == {0.0, 1.0}                                     # validation: as given
    with pytest.raises(RecipeError, match="mixup must be between 0"):
        lite0_64.finetune(*small, mixup=1.5, verbose=0)   # refused before the head phase trains
