"""Detect: boxes, labels and scores from the demo scene detector or MTCNN faces (recipes.detection)."""
PAGE = dict(kind="detector", section="Training", title="Detect", icon=":material/center_focus_strong:", url="detect",
            about="boxes with labels and scores from the demo detector or MTCNN faces")  # read by apps/Home.py (not executed there)
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from apps import samples, serving, ui

ROOT = Path.cwd()  # where the recipes wrote runs/ (the folder the app was started from)
DEMO_MODEL = Path(os.environ.get("ZOO_DETECTOR", ROOT / "runs" / "detect" / "model"))
DETECTORS = ["Demo detector (Fashion-MNIST scenes)", "MTCNN faces"]
HAS_MTCNN = ui.module_available("mtcnn")


@st.cache_resource(show_spinner=False)
def _detector(folder: str, stamp: float):
    """A saved detector (reloaded when its config changes: ``stamp`` is its mtime)."""
    import zoo

    return zoo.load(folder)


@st.cache_resource(show_spinner=False)
def _faces():
    import zoo

    return zoo.load("mtcnn_faces")


@st.cache_data(show_spinner=False, max_entries=4)
def _scenes(style: str, n: int = 24):
    from recipes.detection import scenes

    s = scenes("test", n=n, size=128, style=style)
    return s.images, s.boxes


st.title("Detect")
st.caption("Boxes, classes and scores. The demo detector is a RetinaNet on EfficientNet-Lite0's P3-P5 pyramid, "
           "trained on scenes of Fashion-MNIST items pasted on photos (`python -m recipes.detect_scenes`); "
           "MTCNN finds faces (weights inside the `mtcnn` wheel). Boxes come back in the image's own pixels.")

det, image, truth, note = None, None, None, ""
with ui.guard("set up the detector"):
    which = st.sidebar.radio("Detector", DETECTORS, key="det_which")
    score = st.sidebar.slider("Score threshold", 0.05, 0.95, 0.3 if which == DETECTORS[0] else 0.9, 0.05,
                              key=f"det_score_{DETECTORS.index(which)}", help="boxes scoring below this are hidden")
    if which == DETECTORS[0]:
        typed = st.sidebar.text_input("Detector folder", str(DEMO_MODEL), key="det_folder",
                                      help="a folder written by Detector.save (or set ZOO_DETECTOR); "
                                           f"others only under {serving.ROOT_ENV}")
        folder = serving.model_folder(typed, [DEMO_MODEL])
        if not (folder / "config.json").is_file():
            st.info(f"No trained detector at `{folder}`. Train the demo one (about 20 minutes on 2 CPU cores) "
                    "with `python -m recipes.detect_scenes`, or give another folder; MTCNN faces need no "
                    "training.")
        else:
            with st.spinner("Loading the detector..."):
                det = _detector(str(folder), (folder / "config.json").stat().st_mtime)
    elif not HAS_MTCNN:
        st.info("MTCNN needs the optional package `mtcnn` (`pip install mtcnn`), then restart the app.")
    else:
        with st.spinner("Loading MTCNN..."):
            det = _faces()

    sources = ["Demo scene", "Sample photo", "Upload"] if which == DETECTORS[0] else ["Sample photo", "Upload"]
    source = st.radio("Image", sources, horizontal=True, key=f"det_source_{which[:4]}")
    if source == "Demo scene":
        style = st.selectbox("Scenes", ["default", "shifted"], key="det_style",
                             format_func=lambda s: {"default": "held-out test scenes",
                                                    "shifted": "composed differently (other photos, tints, scales)"}[s])
        images, boxes = _scenes(style)
        i = st.number_input("Scene", 0, len(images) - 1, 0, key="det_scene")
        image, truth, note = images[int(i)], boxes[int(i)], f"test scene {int(i)} ({style}); truth in green"
    elif source == "Sample photo":
        keys = list(samples.PHOTOS)
        key = st.selectbox("Sample photo", keys, index=keys.index("astronaut"), format_func=samples.label,
                           key="det_sample")
        image, note = samples.load(key), "scikit-image sample"
    else:
        loaded = ui.uploaded_image("det_upload")
        if loaded is not None:
            image, note = loaded.image, loaded.note

if det is not None and image is not None:
    with ui.guard("detect"):
        from recipes.detection import draw

        with st.spinner("Detecting..."):
            r = det.detect(image[None], score_threshold=score, value_range="0-255")[0]  # pixels in [0, 255]
        small = max(image.shape[:2]) < 320
        st.image(draw(image, r, truth, scale=4 if small else 1), width="stretch",
                 caption=f"{len(r['boxes'])} detections at score >= {score:.2f}; {note}")
        if len(r["boxes"]):
            st.dataframe(pd.DataFrame([{"label": n, "score": float(s), "x1": float(b[0]), "y1": float(b[1]),
                                        "x2": float(b[2]), "y2": float(b[3])}
                                       for b, s, n in zip(r["boxes"], r["scores"], r["names"])]),
                         hide_index=True, width="stretch",
                         column_config={"score": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.2f")})
        else:
            st.caption("Nothing scores above the threshold: lower it in the sidebar.")
