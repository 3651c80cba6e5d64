"""Each Streamlit page under ``streamlit.testing.v1.AppTest``: it runs without an exception and shows
what it should for real input (scikit-image photos, Fashion-MNIST, crafted bad files).

Models are shared across tests through ``st.cache_resource`` (one process); the apps' disk cache
goes to a temporary ``ZOO_HOME`` so the first-visit path (build, save) is what runs.
"""
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

HOME = Path(__file__).resolve().parent.parent / "apps" / "Home.py"
TIMEOUT = 240
CAT_LABELS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


@pytest.fixture(scope="module", autouse=True)
def zoo_home(tmp_path_factory):
    old = os.environ.get("ZOO_HOME")
    home = tmp_path_factory.mktemp("zoo_home")
    os.environ["ZOO_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ZOO_HOME", None)
    else:
        os.environ["ZOO_HOME"] = old


def page(name: str | None = None) -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if name:
        at.switch_page(f"pages_/{name}.py").run()
    return at


def opened(name: str, **state) -> AppTest:
    """A page opened directly with its widgets' values preset (not yet run)."""
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT)
    at.switch_page(f"pages_/{name}.py")
    for key, value in state.items():
        at.session_state[key] = value
    return at


def errors_text(at) -> str:
    return " ".join(e.value for e in at.error)


def ok(at: AppTest):
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def png(a, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="PNG")
    return buf.getvalue()


def sample(key: str) -> np.ndarray:
    from apps import samples

    return np.clip(samples.load(key), 0, 255).astype(np.uint8)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's calling card."""
    data = bytearray(png(np.zeros((1, 1), np.uint8)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def fmnist(split="test"):
    from zoo import data

    return data.fashion_mnist(split)


# ---- overview and model zoo ------------------------------------------------------------------
def test_overview_lists_pages_and_machine_status():
    at = ok(page())
    assert "zoo" in at.title[0].value
    assert {p.proto.label for p in at.get("page_link")} >= {"Model zoo", "Classify", "Similarity search", "Few-shot",
                                                            "Verify", "Fine-tune"}
    m = metrics(at)
    import zoo

    assert m["Registry entries"] == str(len(zoo.list_models())) and int(m["With weights here"]) >= 3


def test_model_zoo_table_has_every_entry_and_filters():
    import zoo

    at = ok(page("model_zoo"))
    df = at.dataframe[0].value
    assert len(df) == len(zoo.list_models()) >= 38
    assert {"name", "input", "params (M)", "GFLOPs", "feature dim", "top-1 (%)", "weights here", "license"} <= set(df)
    assert set(df.loc[df["weights here"], "name"]) >= {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert df.set_index("name").loc["resnet50", "feature dim"] == 2048
    at.text_input[0].set_value("efficientnet_lite*").run()
    assert sorted(ok(at).dataframe[0].value["name"]) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    at.text_input[0].set_value("").run()
    at.checkbox[0].check().run()
    here = ok(at).dataframe[0].value
    assert len(here) >= 3 and here["weights here"].all()
    assert f"of {len(zoo.list_models())} models" in markdown(at)


def test_upload_limit_in_config_matches_the_code():
    import tomllib

    from streamlit import config

    from apps import ui

    cfg = tomllib.loads((HOME.parent / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == ui.MAX_UPLOAD_MB
    old = config._main_script_path
    try:  # what `streamlit run apps/Home.py` reads, from whatever directory it is started in
        config._main_script_path = str(HOME)
        config.get_config_options(force_reparse=True)
        assert config.get_option("server.maxUploadSize") == ui.MAX_UPLOAD_MB
        assert config.get_option("server.address") == "127.0.0.1"  # this machine only, unless asked
        assert config.get_option("client.showErrorDetails") == "none"
    finally:
        config._main_script_path = old
        config.get_config_options(force_reparse=True)


# ---- classify ------------------------------------------------------------------------------------
def test_classify_bundled_cat_shows_cat_and_gradcam():
    at = ok(page("classify"))
    top = at.dataframe[0].value
    assert len(top) == 5 and CAT_LABELS & set(top["label"])
    assert top["probability"].is_monotonic_decreasing and top["probability"].sum() <= 1.0001
    assert "Top-1:" in markdown(at)
    captions = [c for img in at.image for c in img.captions]
    assert any("Grad-CAM" in c for c in captions), captions


@pytest.mark.parametrize("name, data, note", [
    ("coffee16.png", "uint16", "16-bit"),
    ("chelsea_rgba.png", "rgba", "alpha channel dropped"),
    ("camera.png", "gray", "grayscale"),
], ids=["16bit", "rgba", "gray"])
def test_classify_converts_16bit_rgba_and_gray_uploads(name, data, note):
    if data == "uint16":
        gray = (sample("coffee").mean(-1) * 257).astype(np.uint16)  # a real 16-bit grayscale PNG
        content = png(gray)
    elif data == "rgba":
        rgb = sample("chelsea")
        content = png(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    else:
        content = png(sample("camera")[..., 0])
    at = page("classify")
    at.radio(key="classify_source").set_value("Upload").run()
    at.file_uploader(key="classify_upload").upload(name, content, "image/png")
    at.run()
    ok(at)
    assert len(at.dataframe[0].value) == 5
    captions = " ".join(c for img in at.image for c in img.captions)
    assert name in captions and note in captions, captions
    if data == "rgba":
        assert CAT_LABELS & set(at.dataframe[0].value["label"])


@pytest.mark.parametrize("name, content, message", [
    ("empty.png", b"", "empty"),
    ("notes.png", b"these are meeting notes, not pixels\n" * 20, "not an image"),
    ("truncated.png", None, "not a readable image"),
    ("bomb.png", png_claiming(50_000, 50_000), "decompression bomb"),
    ("huge.png", png_claiming(8_000, 8_000), "megapixels"),
    ("big.jpg", b"\xff\xd8\xff" + bytes(21 * 2**20), "limit is 20 MB"),
], ids=["empty", "not-an-image", "truncated", "bomb-2.5GP", "64MP", "over-20MB"])
def test_classify_bad_uploads_show_a_message_not_a_traceback(name, content, message):
    if content is None:
        full = png(sample("chelsea"))
        content = full[: len(full) // 2]
    at = page("classify")
    at.radio(key="classify_source").set_value("Upload").run()
    at.file_uploader(key="classify_upload").upload(name, content, "image/png")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert message in errors and name in errors, errors
    assert "Traceback" not in errors
    assert not at.dataframe  # nothing classified


# ---- similarity search ---------------------------------------------------------------------------
def test_search_bundled_fashion_mnist_by_item_and_by_upload(zoo_home):
    at = ok(page("search"))
    assert list((zoo_home / "apps" / "indexes").glob("fashion_mnist-*.zidx/manifest.json"))  # cached on disk
    text = markdown(at)
    assert "12 nearest" in text
    same = int(text.split("share the query's label")[0].split("**")[-2].split(" of ")[0])
    assert same >= 8  # most neighbours of a Fashion-MNIST item are its own class
    table = at.dataframe[0].value
    assert len(table) == 12 and table["score"].is_monotonic_decreasing and (table["score"] <= 1.0001).all()
    assert "near-duplicates" in text
    # query by upload: a Fashion-MNIST training image (not in the indexed test images)
    train = fmnist("train")
    sneaker = train.images[np.flatnonzero(train.labels == train.class_names.index("Sneaker"))[0]]
    at.radio(key="search_query_source").set_value("Upload an image").run()
    at.file_uploader(key="search_upload").upload("sneaker.png", png(sneaker), "image/png")
    at.run()
    labels = ok(at).dataframe[0].value["label"]
    assert (labels.isin(["Sneaker", "Sandal", "Ankle boot"])).mean() >= 0.75, labels.tolist()


def fmnist_folders(root: Path, classes, per_class: int = 6) -> Path:
    """``root/<class>/<row>.png``: real Fashion-MNIST training images, one subfolder per class."""
    train = fmnist("train")
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for r in np.flatnonzero(train.labels == train.class_names.index(cls))[:per_class]:
            (root / cls / f"{cls.lower()}_{r}.png").write_bytes(png(train.images[r]))
    return root


def test_search_folder_index_reports_unreadable_files(tmp_path, monkeypatch):
    fmnist_folders(tmp_path, ("Trouser", "Bag", "Sneaker"))
    (tmp_path / "Bag" / "broken.png").write_bytes(b"not a png")
    monkeypatch.setenv("ZOO_APPS_ROOT", str(tmp_path))
    at = opened("search", search_collection="A folder on the server", search_size=96).run()
    at.text_input(key="search_folder").set_value(str(tmp_path / "missing")).run()
    assert "is not a folder" in errors_text(at)
    at.text_input(key="search_folder").set_value(str(tmp_path)).run()
    ok(at)
    assert "18 images" in " ".join(c.value for c in at.caption)  # the broken file is left out...
    warning = " ".join(w.value for w in at.warning)
    assert "1 file was left out" in warning and "broken.png" in warning, warning  # ...and named
    at.slider(key="search_k").set_value(4).run()
    text = markdown(ok(at))
    same = int(text.split("share the query's label")[0].split("**")[-2].split(" of ")[0])
    assert same >= 3, text
    at.text_input(key="search_folder").set_value("Bag").run()  # relative: under the root
    assert "7 images" not in " ".join(c.value for c in ok(at).caption)
    assert "6 images" in " ".join(c.value for c in at.caption)


def test_search_folders_only_under_the_configured_root(tmp_path, monkeypatch):
    shared = fmnist_folders(tmp_path / "shared", ("Bag",), per_class=2)
    private = fmnist_folders(tmp_path / "private", ("Trouser",), per_class=2)
    (shared / "escape").symlink_to(private, target_is_directory=True)
    monkeypatch.delenv("ZOO_APPS_ROOT", raising=False)
    at = opened("search", search_collection="A folder on the server").run()
    assert not at.exception and not at.text_input  # no root: nothing to type a path into
    assert "ZOO_APPS_ROOT" in " ".join(i.value for i in at.info)
    monkeypatch.setenv("ZOO_APPS_ROOT", str(shared))
    at.run()
    for typed in (str(private), "../private", str(shared / "escape"), "/etc", "~"):
        at.text_input(key="search_folder").set_value(typed).run()
        assert not at.exception
        assert "outside the folder this server shares" in errors_text(at), (typed, errors_text(at))
        assert not at.image and not at.dataframe


def test_model_folders_typed_by_visitors_only_under_the_root(tmp_path, monkeypatch):
    """Detect and Image-text take a model folder from a text box: the operator's default as it is,
    anything else only under ZOO_APPS_ROOT (symlinks and .. resolved first)."""
    private, shared = tmp_path / "private", tmp_path / "shared"
    private.mkdir(), shared.mkdir()
    (shared / "link").symlink_to(private, target_is_directory=True)
    monkeypatch.delenv("ZOO_APPS_ROOT", raising=False)
    for name, key in (("detect", "det_folder"), ("image_text", "it_model")):
        at = opened(name, **{key: str(private)}).run()
        assert not at.exception and "does not open folders typed by visitors" in errors_text(at), (name, errors_text(at))
    monkeypatch.setenv("ZOO_APPS_ROOT", str(shared))
    for name, key in (("detect", "det_folder"), ("image_text", "it_model")):
        for typed in (str(private), "../private", "link", "/etc"):
            at = opened(name, **{key: typed}).run()
            assert not at.exception
            assert "outside the folder this server shares" in errors_text(at), (name, typed, errors_text(at))


def test_saved_index_may_name_its_model_folder_only_under_the_root(tmp_path, monkeypatch):
    import zoo
    import zoo.index

    private, shared = tmp_path / "private", tmp_path / "shared"
    shared.mkdir()
    zoo.load("efficientnet_lite0", input_size=32).save(private / "model")
    zoo.index.build(fmnist().images[:8], model=zoo.load(private / "model"), out=shared / "items.zidx", progress=False)
    monkeypatch.setenv("ZOO_APPS_ROOT", str(shared))
    at = opened("search", search_collection="A folder on the server", search_folder="items.zidx").run()
    assert not at.exception
    assert "this index's model folder" in errors_text(at) and "outside the folder this server shares" in errors_text(at)


def test_finetune_refuses_class_folders_that_link_out_of_the_root(tmp_path, monkeypatch):
    shared = fmnist_folders(tmp_path / "shared", ("Bag", "Sneaker"), per_class=3)
    private = fmnist_folders(tmp_path / "private", ("Trouser",), per_class=3)
    (shared / "Trouser").symlink_to(private / "Trouser", target_is_directory=True)
    monkeypatch.setenv("ZOO_APPS_ROOT", str(shared))
    at = page("finetune")
    at.radio(key="ft_data").set_value("A folder of class subfolders").run()
    at.text_input(key="ft_folder").set_value(str(shared))
    at.button(key="ft_start").click().run()
    assert not at.exception
    assert "outside the folder this server shares" in errors_text(at) and "trouser_" in errors_text(at)
    assert "ft_result" not in at.session_state


def test_search_among_uploaded_images():
    at = opened("search", search_collection="My images (upload)", search_upload_size=96).run()
    assert "Upload two or more images" in " ".join(i.value for i in ok(at).info)
    at.file_uploader(key="search_collection_upload").set_value(
        [(f"{k.replace(':', '_')}.png", png(sample(k)), "image/png") for k in ("coffee", "chelsea", "rocket", "chelsea:crop")]
        + [("bad.png", b"no pixels here", "image/png")]).run()
    assert not at.exception
    assert "bad.png" in errors_text(at)  # reported, the four readable images indexed
    assert "4 uploaded images" in " ".join(c.value for c in at.caption)
    at.number_input(key="search_item").set_value(1).run()  # chelsea: its nearest is the cropped copy
    table = at.dataframe[0].value
    assert table["name"].iloc[0] == "chelsea_crop.png", table


# ---- many visitors, one cached model ---------------------------------------------------------------
def test_two_sessions_at_once_each_get_their_own_results(tmp_path, monkeypatch):
    """Two visitors index different folders at the same moment with the one shared (cached) model:
    each sees its own files. (AppTest runs each session's script in its own thread.)"""
    fmnist_folders(tmp_path, ("Trouser", "Bag"), per_class=40)
    monkeypatch.setenv("ZOO_APPS_ROOT", str(tmp_path))
    sessions = {cls: opened("search", search_collection="A folder on the server", search_size=128,
                            search_folder=cls, search_k=8) for cls in ("Trouser", "Bag")}
    start, failures = threading.Barrier(len(sessions)), []

    def visit(at):
        try:
            start.wait()
            at.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=visit, args=(at,)) for at in sessions.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not failures, failures
    for cls, at in sessions.items():
        ok(at)
        assert "40 images" in " ".join(c.value for c in at.caption)
        table = at.dataframe[0].value
        assert len(table) == 8 and table["path"].str.contains(f"/{cls}/{cls.lower()}_").all(), (cls, table["path"])
# ---- few-shot ------------------------------------------------------------------------------------
def test_fewshot_bundled_support_beats_pixels_and_shows_neighbours():
    at = ok(page("fewshot"))
    m = metrics(at)
    acc = float(next(v for k, v in m.items() if k.startswith("Accuracy on")).rstrip("%")) / 100
    pixels = float(m["Same k-NN on raw pixels"].rstrip("%")) / 100
    assert acc > 0.6 and acc > pixels, m
    assert "queries right" in markdown(at)
    # each query row shows its nearest support examples with their labels and scores
    captions = [c for img in at.image for c in img.captions]
    assert sum(" · " in c for c in captions) >= 6 * 5
    # an uploaded query against the bundled support set
    train = fmnist("train")
    trousers = train.images[np.flatnonzero(train.labels == train.class_names.index("Trouser"))[-1]]
    at.radio(key="fs_qsrc").set_value("Upload images").run()
    at.file_uploader(key="fs_queries").set_value([("trousers.png", png(trousers), "image/png")]).run()
    assert "**Trouser**" in markdown(ok(at))


def test_fewshot_uploaded_examples_per_class():
    from PIL import ImageOps

    def variant(key, how):
        im = Image.fromarray(sample(key))
        im = {"gray": ImageOps.grayscale, "flip": ImageOps.flip, "small": lambda i: i.resize((150, 100))}[how](im)
        return png(np.asarray(im))

    at = page("fewshot")
    at.radio(key="fs_mode").set_value("My own examples (upload)").run()
    at.text_input(key="fs_name_0").set_value("cat")
    at.text_input(key="fs_name_1").set_value("cup")
    at.run()
    at.file_uploader(key="fs_up_0").set_value([("c1.png", png(sample("chelsea")), "image/png"),
                                               ("c2.png", png(sample("chelsea:crop")), "image/png")])
    at.file_uploader(key="fs_up_1").set_value([("k1.png", png(sample("coffee")), "image/png"),
                                               ("k2.png", png(sample("coffee:crop")), "image/png"),
                                               ("k3.png", b"", "image/png")])
    at.run()
    assert not at.exception
    assert "k3.png is empty" in " ".join(e.value for e in at.error)  # reported, the rest still used
    at.file_uploader(key="fs_queries_own").set_value([("q_cat.png", variant("chelsea", "gray"), "image/png"),
                                                      ("q_cup.png", variant("coffee", "small"), "image/png")])
    at.run()
    text = markdown(at)
    assert "**cat**" in text and "**cup**" in text, text
    probs = at.dataframe[0].value
    assert probs.loc["q_cat.png", "cat"] > 0.5 and probs.loc["q_cup.png", "cup"] > 0.5


# ---- verify --------------------------------------------------------------------------------------
def test_verify_same_and_different_with_calibrated_threshold():
    at = ok(page("verify"))
    m = metrics(at)
    assert m["Decision"] == "same"  # Chelsea and a cropped, mirrored Chelsea
    thr = float(m["Threshold (calibrated)"])
    assert 0 < thr < 1 and float(m["Cosine similarity"]) >= thr
    assert "false-accept rate" in " ".join(c.value for c in at.caption)
    at.selectbox(key="ver_sample_B").set_value("coffee").run()
    m = metrics(ok(at))
    assert m["Decision"] == "different" and float(m["Cosine similarity"]) < thr
    assert not at.success and at.warning


def test_verify_face_option_is_disabled_with_a_reason_without_mtcnn():
    from apps import ui

    at = ok(page("verify"))
    face = at.toggle(key="ver_face")
    if ui.module_available("mtcnn"):
        assert not face.proto.disabled
    else:
        assert face.proto.disabled
        assert "pip install mtcnn" in " ".join(c.value for c in at.caption)


def test_verify_bad_upload_is_a_message():
    at = page("verify")
    at.radio(key="ver_src_B").set_value("Upload").run()
    at.file_uploader(key="ver_up_B").upload("face.jpg", b"\xff\xd8\xff\xe0 corrupt", "image/jpeg")
    at.run()
    assert not at.exception
    assert "face.jpg" in " ".join(e.value for e in at.error)
    assert "Decision" not in metrics(at)


# ---- fine-tune -----------------------------------------------------------------------------------
def test_finetune_short_run_evaluates_and_downloads_a_loadable_model(tmp_path):
    import zoo

    at = ok(page("finetune"))
    at.select_slider(key="ft_ntrain").set_value(200)
    at.select_slider(key="ft_ntest").set_value(200)
    at.select_slider(key="ft_size").set_value(64)
    at.number_input(key="ft_head_epochs").set_value(4)
    at.number_input(key="ft_epochs").set_value(0)
    at.button(key="ft_start").click().run()
    m = metrics(ok(at))
    acc = float(m["Test accuracy (200 images)"].rstrip("%")) / 100
    assert acc > 0.3, m  # 10 classes from 180 training images; chance is 0.1
    assert len(at.get("vega_lite_chart")) == 2  # loss and accuracy curves
    zipped = at.session_state["ft_result"]["zip"]
    zipfile.ZipFile(io.BytesIO(zipped)).extractall(tmp_path)
    (folder,) = tmp_path.iterdir()
    assert {"config.json", "backbone.weights.h5", "task.weights.h5", "curves.png"} <= {p.name for p in folder.iterdir()}
    clf = zoo.load(folder)
    test = fmnist("test")
    assert clf.labels == test.class_names
    assert len(clf.predict(test.images[:8])) == 8
    assert [b.label for b in at.get("download_button")] == ["Download the model folder (.zip)"]


def test_finetune_rejects_zero_epochs_and_folders_outside_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_APPS_ROOT", raising=False)
    at = page("finetune")
    at.number_input(key="ft_head_epochs").set_value(0)
    at.number_input(key="ft_epochs").set_value(0)
    at.button(key="ft_start").click().run()
    assert "at least one epoch" in errors_text(at)
    at.number_input(key="ft_head_epochs").set_value(1)
    at.radio(key="ft_data").set_value("A folder of class subfolders").run()
    assert at.text_input(key="ft_folder").disabled and "ZOO_APPS_ROOT" in " ".join(i.value for i in at.info)
    at.button(key="ft_start").click().run()
    assert "does not open folders" in errors_text(at)
    monkeypatch.setenv("ZOO_APPS_ROOT", str(tmp_path))
    at.run()
    at.text_input(key="ft_folder").set_value("/nonexistent/data")
    at.button(key="ft_start").click().run()
    assert not at.exception
    assert "/nonexistent/data is outside the folder this server shares" in errors_text(at)
    at.text_input(key="ft_folder").set_value("flowers")
    at.button(key="ft_start").click().run()
    assert not at.exception
    assert str(tmp_path / "flowers") in errors_text(at)  # under the root, but not there


def test_live_progress_callback_draws_bar_and_curves():
    def app():
        import keras
        import numpy as np

        from apps.progress import StreamlitProgress

        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        y = keras.utils.to_categorical((x[:, 0] > 0).astype(int), 2)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
        cb = StreamlitProgress([("head", 2), ("full", 1)])
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25, callbacks=[cb])
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
        import streamlit as st

        st.session_state.rows = cb.rows

    at = AppTest.from_function(app, default_timeout=60).run()
    assert not at.exception, at.exception
    rows = at.session_state["rows"]
    assert [r["phase"] for r in rows] == ["head", "head", "full"] and "val_loss" in rows[0]
    assert at.progress[0].value == 100 or at.progress[0].value == 1.0
    assert "full: epoch 1/1" in at.progress[0].proto.text


def test_verify_face_crops_with_mtcnn_when_installed():
    pytest.importorskip("mtcnn")
    at = page("verify")
    at.toggle(key="ver_face").set_value(True)
    at.selectbox(key="ver_sample_A").set_value("astronaut")
    at.selectbox(key="ver_sample_B").set_value("astronaut:crop")
    at.run()
    assert metrics(ok(at))["Decision"] == "same"
    assert all("(face crop)" in c for img in at.image for c in img.captions)
    at.selectbox(key="ver_sample_B").set_value("chelsea").run()  # a cat: no human face
    assert not at.exception
    assert "No face found in image B (Cat (Chelsea))" in " ".join(e.value for e in at.error)
    assert len(at.image) == 2  # both photos still shown


# ---- errors of the core are messages -------------------------------------------------------------
def test_guard_turns_core_errors_into_messages():
    """What a page shows when zoo raises its typed errors (bad shapes, unreadable images)."""
    def app():
        import numpy as np

        import zoo
        from apps import ui

        with ui.guard("embed the images"):
            zoo.load("efficientnet_lite0", input_size=96).embed(np.zeros((2, 8, 8, 5), np.uint8), progress=False)
        with ui.guard("read the image"):
            from zoo.images import read_image

            read_image(__file__)
        with ui.guard("index the folder"):
            raise zoo.ImageError("no image files under /data/empty")

    at = AppTest.from_function(app, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error]
    assert len(shown) == 3, shown
    assert shown[0].startswith("Could not embed the images:") and "got (2, 8, 8, 5)" in shown[0]
    assert shown[1].startswith("Could not read the image:") and "not a readable image" in shown[1]
    assert shown[2] == "Could not index the folder: no image files under /data/empty"
    assert not any("Traceback" in s or "File \"" in s for s in shown)


# ---- the server -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path, env=None, args=()):
    """``streamlit run apps/Home.py`` as ``make apps`` starts it; returns (process, port, listen addresses)."""
    import psutil

    port = free_port()
    log = open(tmp_path / f"server-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(HOME), "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", *args],
        cwd=tmp_path, env={**os.environ, "ZOO_HOME": str(tmp_path), **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port} if proc.poll() is None else set()
        if listening:
            return proc, port, listening
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start: {(tmp_path / f'server-{port}.log').read_text()[-3000:]}")
        time.sleep(0.3)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def get(url) -> tuple[int, str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_server_listens_on_this_machine_only_and_unknown_urls_are_404(tmp_path):
    from apps.Home import PAGES

    proc, port, listening = serve(tmp_path)
    try:
        assert listening == {"127.0.0.1"}, listening
        url = f"http://127.0.0.1:{port}"
        assert get(f"{url}/_stcore/health") == (200, "ok")
        for p in PAGES:
            status, body = get(f"{url}/{p.url}")
            assert status == 200 and "<html" in body.lower(), (p.url, status)
        for unknown in ("/no-such-page", "/classify/extra", "/etc/passwd", "/admin"):
            status, body = get(url + unknown)
            assert status == 404 and "No page at" in body and 'href="/classify"' in body, (unknown, status)
        status, _ = get(f"{url}/static/no-such-asset.js")
        assert status == 404
    finally:
        stop(proc)
    # sharing it on the network is one switch
    proc, port, listening = serve(tmp_path, env={"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"})
    stop(proc)
    assert listening == {"0.0.0.0"}, listening
