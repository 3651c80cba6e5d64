"""SimCLR: the NT-Xent loss against hand-computed values, pre-training steps, the saved backbone, the probe."""
import json
import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from recipes import simclr  # noqa: E402


def test_nt_xent_matches_hand_computed_value():
    # views a0=[1,0], a1=[0,1] and b0=[1,0], b1=[0.6,0.8]; temperature 0.5 doubles the cosines
    z1 = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    z2 = np.array([[2.0, 0.0], [0.6, 0.8]], np.float32)  # rows are normalised by the loss
    ce = lambda pos, *others: math.log(sum(math.exp(v) for v in (pos, *others))) - pos  # noqa: E731
    want = (ce(2.0, 0.0, 1.2)            # a0: positive b0 (cos 1), others a1 (0), b1 (0.6)
            + ce(1.6, 0.0, 0.0)          # a1: positive b1 (0.8), others a0, b0
            + ce(2.0, 0.0, 1.2)          # b0: positive a0, others a1, b1
            + ce(1.6, 1.2, 1.2)) / 4     # b1: positive a1 (0.8), others a0 (0.6), b0 (0.6)
    assert float(simclr.nt_xent(z1, z2, temperature=0.5)) == pytest.approx(want, abs=1e-6)
    # swapping the two views changes nothing; matching views give a lower loss than mismatched ones
    assert float(simclr.nt_xent(z2, z1, 0.5)) == pytest.approx(want, abs=1e-6)
    assert float(simclr.nt_xent(z1, z1, 0.5)) < float(simclr.nt_xent(z1, z1[::-1], 0.5))


@pytest.mark.slow
def test_pretrain_lowers_the_loss_and_saves_a_backbone_zoo_serves(lite0_96, fmnist_sample, tmp_path):
    import zoo

    x, y = fmnist_sample("train", 4, seed=7)
    before = lite0_96.weights_digest()
    ssl = simclr.pretrain(x, backbone=lite0_96, epochs=4, batch_size=20, lr=1e-3, seed=0, progress=False,
                          out_dir=tmp_path / "simclr")
    loss = ssl.pretraining["history"]["loss"]
    assert len(loss) == 4 and loss[-1] < loss[0]
    assert lite0_96.weights_digest() == before  # the given backbone is copied, never changed
    assert ssl.weights_digest() != before
    back = zoo.load(tmp_path / "simclr" / "model")
    assert type(back).__name__ == "ZooModel" and back.fingerprint() == ssl.fingerprint()
    cfg = json.loads((tmp_path / "simclr" / "model" / "config.json").read_text())
    assert cfg["kind"] == "backbone" and cfg["pretraining"]["method"] == "simclr"
    np.testing.assert_allclose(back.embed(x[:5], progress=False), ssl.embed(x[:5], progress=False), atol=1e-4)


def test_linear_probe_on_real_embeddings(lite0_96, fmnist_sample):
    xtr, ytr = fmnist_sample("train", 20, seed=8)
    xte, yte = fmnist_sample("test", 10, seed=9)
    etr, ete = lite0_96.embed(xtr, progress=False), lite0_96.embed(xte, progress=False)
    r = simclr.linear_probe(lite0_96, (etr, ytr), (ete, yte))
    assert r["n_train"] == 200 and r["n_test"] == 100 and r["accuracy"] > 0.5  # chance is 0.1
    few = simclr.linear_probe(lite0_96, (etr, ytr), (ete, yte), per_class=2)
    assert few["n_train"] == 20 and few["accuracy"] < r["accuracy"] + 0.05


def test_pretrain_under_mirrored_strategy_on_two_replicas(tmp_path):
    """``strategy=`` as in finetune: two replicas (two logical CPUs, in a child process) each contrast
    half of every batch, gradients are summed, the loss falls and the backbone saves as usual."""
    import subprocess
    import sys
    from pathlib import Path

    import zoo

    script = Path(__file__).with_name("simclr_mirrored.py")
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and len(out["loss"]) == 4 and out["loss"][-1] < out["loss"][0], out
    back = zoo.load(tmp_path / "run" / "model")
    assert back.embed(np.zeros((2, 28, 28), np.uint8), progress=False).shape == (2, back.feature_dim)
