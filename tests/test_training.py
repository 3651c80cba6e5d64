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
