"""The page of a kind of model that has no page of its own: open a saved model folder of that kind,
run it on a sample photo or an upload, and show what it predicts (``Task.predict_described``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

from apps import samples, serving, ui


@st.cache_resource(show_spinner=False)
def _model(folder: str, stamp: float):
    import zoo

    return zoo.load(folder)


def default_folder(kind: str) -> Path:
    """Where ``zoo train <kind> ... --out runs/<kind>`` puts the model (or ``$ZOO_<KIND>_MODEL``)."""
    return Path(os.environ.get(f"ZOO_{kind.upper()}_MODEL", Path.cwd() / "runs" / kind / "model"))


def render(kind: str):
    from zoo.kinds import kinds

    info = next(k for k in kinds() if k.name == kind)
    st.title(info.title)
    st.caption(info.summary[:1].upper() + info.summary[1:])
    task = None
    with ui.guard("open the model"):
        default = default_folder(kind)
        typed = st.text_input(f"A saved {info.title.lower()} folder", str(default), key=f"kind_{kind}_folder",
                              help=f"written by `zoo train {kind} ...` or .save(); others only under {serving.ROOT_ENV}")
        folder = serving.model_folder(typed, [default])
        if not (folder / "config.json").is_file():
            st.info(f"No {info.title.lower()} at `{folder}` yet. Train one on the offline demo scenes: "
                    f"`zoo train {kind} scenes --out runs/{kind}` (then reload this page), or give another folder.")
        else:
            with st.spinner("Loading the model..."):
                task = _model(str(folder), (folder / "config.json").stat().st_mtime)
            if getattr(task, "kind", None) != kind:
                st.error(f"{folder} holds a {getattr(task, 'kind', type(task).__name__)}, not a {kind}.")
                task = None
    if task is None:
        return
    image = None
    with ui.guard("read the image"):
        source = st.radio("Image", ["Sample photo", "Upload"], horizontal=True, key=f"kind_{kind}_source")
        if source == "Sample photo":
            keys = list(samples.PHOTOS)
            image = samples.load(st.selectbox("Sample photo", keys, format_func=samples.label, key=f"kind_{kind}_sample"))
        else:
            loaded = ui.uploaded_image(f"kind_{kind}_upload")
            image = loaded.image if loaded is not None else None
    if image is None:
        return
    with ui.guard("predict"):
        with st.spinner("Predicting..."):
            out = task.predict_described(image[None]).outputs[0]
        c1, c2 = st.columns([2, 3])
        c1.image(ui.display(image), width="stretch")
        c2.code(json.dumps(out, indent=2), language="json")
