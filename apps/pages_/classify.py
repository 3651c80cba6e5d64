"""Classify: top-5 ImageNet labels for an uploaded or bundled photo, and a Grad-CAM heat map."""
import pandas as pd
import streamlit as st

from apps import samples, ui
from zoo import explain
from apps import resources as res

st.title("Classify")
st.caption("Top-5 ImageNet labels from a pretrained backbone, and a Grad-CAM heat map: red is where "
           "the image raises the chosen class's score most.")

loaded = None
with ui.guard("list the models"):
    names = res.pretrained_names()
    name = st.sidebar.selectbox("Model", names, help="registry entries whose weights are on this machine")

    source = st.radio("Image", ["Sample", "Upload"], horizontal=True, key="classify_source")
    if source == "Sample":
        key = st.selectbox("Sample photo", list(samples.PHOTOS), format_func=samples.label, key="classify_sample")
        loaded = ui.Loaded(samples.label(key), samples.load(key), "scikit-image sample")
    else:
        loaded = ui.uploaded_image("classify_upload", "Choose an image file to classify.")

if loaded is not None:
    with ui.guard("classify the image"):
        with st.spinner(f"Loading {name} (first time only)..."):
            m = res.model(name)
        top = m.classify(loaded.image[None], top_k=5)[0]
        idx, label, prob = top[0]
        st.markdown(f"### Top-1: {label} ({prob:.1%})")
        explain_idx = st.selectbox("Heat map for", [t[0] for t in top], key="classify_cam",
                                   format_func=lambda c: next(f"{lab} ({p:.1%})" for i, lab, p in top if i == c))
        with st.spinner("Computing Grad-CAM..."):
            cam = res.gradcam(name)(loaded.image, explain_idx)
        shown = ui.display(loaded.image, 640)
        c1, c2 = st.columns(2)
        c1.image(shown, caption=f"{loaded.name}: {loaded.note}", width="stretch")
        c2.image(explain.overlay(shown, cam), width="stretch",
                 caption=f"Grad-CAM for '{dict((i, lab) for i, lab, _ in top)[explain_idx]}' "
                         f"on the last {cam.shape[0]}x{cam.shape[1]} feature map")
        st.dataframe(
            pd.DataFrame([{"rank": r + 1, "label": lab, "ImageNet class": i, "probability": p}
                          for r, (i, lab, p) in enumerate(top)]),
            hide_index=True, width="stretch",
            column_config={"probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
        st.caption(f"{m.name} at {m.input_size}px, preprocessing from its registry entry "
                   f"(the image is resized to {m.input_size}x{m.input_size}).")
