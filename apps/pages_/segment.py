"""Segment: per-pixel classes of a demo scene or an uploaded photo, with a legend and class areas."""
PAGE = dict(kind="segmenter", section="Training", title="Segment", icon=":material/category:", url="segment",
            about="per-pixel classes as an overlay with a legend and per-class areas")  # read by apps/Home.py (not executed there)
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from apps import ui

ROOT = Path.cwd()  # where the recipes wrote runs/ (the folder the app was started from)
DEMO_SCENES = 24
QUICK = dict(n_train=600, head_epochs=6, epochs=0)  # the in-app demo: a few minutes on a CPU


def model_folders() -> list[Path]:
    """Where a demo segmenter may be: the apps' cache (trained here), then the README recipe's output."""
    return [ui.cache_dir("segment") / "model", ROOT / "runs" / "segment" / "model"]


@st.cache_resource(show_spinner=False)
def segmenter(folder: str, stamp: float):
    """A loaded segmenter (``stamp``: the folder's config time, so a retrained model is reloaded)."""
    import zoo

    return zoo.load(folder)


@st.cache_resource(show_spinner=False)
def demo_scenes(style: str, size: int):
    from recipes.scenes import scenes

    return scenes("test", n=DEMO_SCENES, size=size, style=style)


def train_quick() -> Path:
    from recipes import segmentation

    train = segmentation.scenes("train", n=QUICK["n_train"])
    val = segmentation.scenes("val", n=100)
    seg = segmentation.train(train, val, head_epochs=QUICK["head_epochs"], epochs=QUICK["epochs"], verbose=0)
    return seg.save(model_folders()[0])


def legend_html(names, pal, present) -> str:
    chips = [f'<span style="display:inline-block;width:0.9em;height:0.9em;background:rgb{tuple(int(c) for c in pal[i])};'
             f'border:1px solid #888;margin:0 0.3em 0 0.9em;vertical-align:middle"></span>{names[i]}'
             for i in range(1, len(names)) if i in present]
    return " ".join(chips) or "(only background)"


st.title("Segment")
st.caption("Per-pixel classes from a U-Net or DeepLabV3+ head on a zoo backbone, trained on the offline demo "
           "scenes (Fashion-MNIST items pasted on scikit-image photos).")

folder = next((f for f in model_folders() if (f / "config.json").is_file()), None)
seg = None
if folder is None:
    st.info("No demo segmenter on this machine yet. Run `python -m recipes.segment_scenes` for the full recipe "
            "(writes runs/segment/model), or train a quick one here.")
    if st.button(f"Train a quick demo segmenter ({QUICK['n_train']} scenes, frozen backbone; a few minutes)",
                 key="segment_train"):
        with ui.guard("train the demo segmenter"), st.spinner("Training..."):
            train_quick()
            st.rerun()
else:
    with ui.guard("load the segmenter"), st.spinner("Loading the segmenter (first time only)..."):
        seg = segmenter(str(folder), (folder / "config.json").stat().st_mtime)

if seg is not None:
    from recipes.segmentation import class_areas, overlay, palette

    loaded, truth = None, None
    source = st.radio("Image", ["Demo scene", "Upload"], horizontal=True, key="segment_source")
    if source == "Demo scene":
        c1, c2 = st.columns(2)
        style = c1.selectbox("Scenes", ["default", "shifted"], key="segment_style",
                             format_func=lambda s: {"default": "held-out test scenes",
                                                    "shifted": "composed differently (other photos, scales, tints)"}[s])
        i = c2.number_input("Scene", 0, DEMO_SCENES - 1, 0, key="segment_scene")
        with ui.guard("compose the demo scenes"):
            sc = demo_scenes(style, 128)
            loaded = ui.Loaded(f"{style} scene {i}", sc.images[int(i)].astype(np.float32), "demo scene, 128x128")
            truth = sc.masks[int(i)]
    else:
        loaded = ui.uploaded_image("segment_upload", "Choose an image file to segment.")

    if loaded is not None:
        with ui.guard("segment the image"):
            with st.spinner("Segmenting..."):
                pred = seg.segment([loaded.image], value_range="0-255", progress=False)[0]
            n, names, pal = seg.num_classes, seg.class_names, palette(seg.num_classes)
            shown = ui.to_uint8(loaded.image)
            cols = st.columns(3 if truth is not None else 2)
            cols[0].image(ui.display(shown, 512), caption=f"{loaded.name}: {loaded.note}", width="stretch")
            cols[1].image(ui.display(overlay(shown, pred, n), 512), caption="predicted", width="stretch")
            if truth is not None:
                cols[2].image(ui.display(overlay(shown, truth, n), 512), caption="truth", width="stretch")
            st.markdown(legend_html(names, pal, set(np.unique(pred).tolist())), unsafe_allow_html=True)
            areas = class_areas(pred, names)
            rows = [{"class": k, "area": v, "pixels": int((pred == names.index(k)).sum())} for k, v in areas.items()]
            if truth is not None:
                for r in rows:
                    c = names.index(r["class"])
                    inter, union = ((pred == c) & (truth == c)).sum(), ((pred == c) | (truth == c)).sum()
                    r["IoU with truth"] = inter / union if union else None
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                         column_config={"area": st.column_config.ProgressColumn(format="percent", min_value=0,
                                                                               max_value=1)})
            st.caption(f"{seg!r} from `{folder}`; the image is resized to {seg.input_size}x{seg.input_size} and the "
                       "class map brought back to its own size.")
