"""Image-text: zero-shot from typed class names (ConSE baseline and a trained LiT model side by side),
text search over the bundled Fashion-MNIST images, and the SimCLR linear-probe curve."""
PAGE = dict(kind="image_text", section="Pretrained models", title="Image-text", icon=":material/translate:", url="image_text",
            about="zero-shot probabilities over class names you type; text-to-image search")  # read by apps/Home.py (not executed there)
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from apps import resources as res
from apps import samples, serving, ui

ROOT = Path.cwd()  # where the recipes wrote runs/ (the folder the app was started from)
MODEL_ENV = "ZOO_IMAGE_TEXT_MODEL"
DEMO_MODEL = ROOT / "runs" / "image_text" / "model"
SIMCLR_PROBE = Path(os.environ.get("ZOO_SIMCLR_PROBE", ROOT / "runs" / "simclr" / "probe.json"))  # bench/simclr.py
SEARCH_PER_CLASS = 100
DEFAULT_NAMES = {"chelsea": "cat, cup of coffee, rocket, astronaut, camera",
                 "coffee": "cat, cup of coffee, rocket, astronaut, camera"}


@st.cache_resource(show_spinner=False)
def conse_model():
    from recipes.image_text import conse

    return conse("efficientnet_lite0")


@st.cache_resource(show_spinner=False)
def trained_model(path: str, mtime: float):
    import zoo

    m = zoo.load(path)
    if not hasattr(m, "encode_text"):
        raise ValueError(f"{path} is a {m.kind} folder, not an image-text model")
    return m


@st.cache_resource(show_spinner=False)
def text_index(path: str, mtime: float, per_class: int = SEARCH_PER_CLASS):
    """The bundled Fashion-MNIST test images indexed with the trained model (cached on disk)."""
    import zoo.index

    m = trained_model(path, mtime)
    sub = res.fmnist_subset("test", per_class)
    fp = m.fingerprint()
    out = ui.cache_dir("indexes") / f"fashion_mnist-test-{per_class}pc-image_text-{fp['heads']}-{fp['weights']}.zidx"
    if (out / "manifest.json").is_file():
        try:
            idx = zoo.index.load(out, model=m)
            if len(idx) == len(sub):
                return idx, sub
        except zoo.index.ZooIndexError:
            pass
    meta = [{"label": sub.class_names[y], "item": i} for i, y in enumerate(sub.labels)]
    return zoo.index.build(sub.images, model=m, metadata=meta, progress=False, out=out, overwrite=True), sub


def model_folder() -> str | None:
    default = os.environ.get(MODEL_ENV) or (str(DEMO_MODEL) if (DEMO_MODEL / "config.json").is_file() else "")
    path = st.sidebar.text_input("Trained image-text model folder", default, key="it_model",
                                 help="written by `python -m recipes.image_text_demo` (runs/image_text/model) "
                                      "or recipes.image_text.train(..., out_dir=...); other folders only under "
                                      f"{serving.ROOT_ENV}")
    return path.strip() or None


def probabilities_table(names, columns: dict):
    df = pd.DataFrame({"class": names, **{k: v for k, v in columns.items()}})
    cfg = {k: st.column_config.ProgressColumn(k, format="percent", min_value=0, max_value=1) for k in columns}
    st.dataframe(df.sort_values(list(columns)[-1], ascending=False), hide_index=True, width="stretch",
                 column_config=cfg)


st.title("Image-text")
st.caption("Images and sentences in one embedding space. ConSE needs no image-text training: the ImageNet "
           "classifier's top classes, as text, stand for the image. LiT trains projections on image-caption "
           "pairs with the image tower locked.")
folder = model_folder()
trained = None
if folder:
    with ui.guard("open the trained model"):
        p = serving.model_folder(folder, [os.environ.get(MODEL_ENV), DEMO_MODEL])
        if not (p / "config.json").is_file():
            st.sidebar.warning(f"{folder} is not a saved model folder")
        else:
            with st.spinner("Loading the trained model..."):
                trained = trained_model(str(p), (p / "config.json").stat().st_mtime)
if trained is None:
    st.sidebar.info("No trained model: train the demo (`python -m recipes.image_text_demo`, a few minutes on a "
                    "CPU) to compare it with ConSE and to search by text.")

zs_tab, search_tab, ssl_tab = st.tabs(["Zero-shot", "Text search", "Self-supervised"])

with zs_tab:
    loaded = None
    with ui.guard("read the image"):
        source = st.radio("Image", ["Sample", "Upload"], horizontal=True, key="it_source")
        if source == "Sample":
            key = st.selectbox("Sample photo", list(samples.PHOTOS), format_func=samples.label, key="it_sample")
            loaded = ui.Loaded(samples.label(key), samples.load(key), "scikit-image sample")
        else:
            key = None
            loaded = ui.uploaded_image("it_upload")
    names_text = st.text_input("Class names (comma-separated)",
                               DEFAULT_NAMES.get(key, "cat, cup of coffee, rocket, astronaut, camera"),
                               key="it_names")
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    if loaded is not None:
        if len(names) < 2 or len(set(names)) != len(names):
            st.warning("Type two or more different class names.")
        else:
            with ui.guard("classify the image"):
                c1, c2 = st.columns([1, 2])
                c1.image(ui.display(loaded.image, 480), caption=loaded.name, width="stretch")
                with st.spinner("Loading EfficientNet-Lite0 and MiniLM (first time only)..."):
                    base = conse_model()
                cols = {"ConSE": base.zero_shot(loaded.image[None], names)[0]}
                if trained is not None:
                    cols["trained (LiT)"] = trained.zero_shot(loaded.image[None], names)[0]
                with c2:
                    st.markdown(" · ".join(f"**{k}:** {names[int(np.argmax(v))]} ({float(np.max(v)):.0%})"
                                           for k, v in cols.items()))
                    probabilities_table(names, cols)
                    st.caption("ConSE: the 10 most probable ImageNet classes' names, weighted by probability, "
                               "against each class name. " + ("The trained model saw only its own captions "
                                                              "(Fashion-MNIST items for the demo)."
                                                              if trained is not None else ""))

with search_tab:
    if trained is None:
        st.info("Text search needs a trained image-text model: set its folder in the sidebar.")
    else:
        query = st.text_input("Describe what you are looking for", "a pair of jeans", key="it_query")
        k = st.slider("Results", 4, 24, 12, step=4, key="it_k")
        if query.strip():
            with ui.guard("search the images"):
                from recipes.image_text import search_text

                with st.spinner(f"Indexing {SEARCH_PER_CLASS * 10:,} Fashion-MNIST test images (first time only)..."):
                    p = Path(folder)
                    idx, sub = text_index(str(p), (p / "config.json").stat().st_mtime)
                r = search_text(idx, trained, query.strip(), k=k)
                hits = [(i, s, m) for i, s, m in zip(r.ids[0], r.scores[0], r.metadata[0]) if i >= 0]
                ui.grid([(ui.pixelated(sub.images[m["item"]], 3), f"{m['label']} ({s:.2f})") for i, s, m in hits],
                        columns=6)
                labels = [m["label"] for _, _, m in hits]
                top = max(set(labels), key=labels.count) if labels else "-"
                st.caption(f"{len(hits)} nearest of {len(sub):,} test images by cosine in the joint space; "
                           f"most common label: {top}.")

with ssl_tab:
    st.markdown("**SimCLR**: a backbone pre-trained without labels on the Fashion-MNIST training images "
                "(two augmented views of each image must match), then a linear probe on its embeddings, "
                "against the same probe on the ImageNet-pretrained embeddings.")
    if SIMCLR_PROBE.is_file():
        with ui.guard("read the SimCLR results"):
            rec = json.loads(SIMCLR_PROBE.read_text())
            curve = pd.DataFrame(rec["curve"]).set_index("labels per class")
            st.line_chart(curve, x_label="labelled images per class", y_label="linear-probe accuracy")
            st.caption(rec.get("note", ""))
    else:
        st.info("Run `python bench/simclr.py` to pre-train and write the linear-probe curve to "
                f"{SIMCLR_PROBE}.")
