"""Verify: are two images of the same thing? (recipes.verification)"""
PAGE = dict(kind="verifier", section="Pretrained models", title="Verify", icon=":material/compare:", url="verify",
            about="are two images of the same thing? cosine score, calibrated threshold, decision (optional face crops)")  # read by apps/Home.py (not executed there)
import streamlit as st

from apps import resources as res
from apps import samples, ui
from zoo.errors import DataError

st.title("Verify")
st.caption("Cosine similarity of two images' embeddings against a threshold calibrated on labelled pairs "
           "at a chosen false-accept rate. Optionally, faces are found, levelled and cropped first (MTCNN).")

HAS_MTCNN = ui.module_available("mtcnn")


def pick(side: str, default: str):
    """One side's image: a bundled sample or an upload; returns a Loaded or None."""
    st.markdown(f"**Image {side}**")
    src = st.radio("Source", ["Sample", "Upload"], horizontal=True, key=f"ver_src_{side}", label_visibility="collapsed")
    if src == "Sample":
        keys = list(samples.ALL)
        key = st.selectbox("Sample", keys, index=keys.index(default), format_func=samples.label, key=f"ver_sample_{side}")
        return ui.Loaded(samples.label(key), samples.load(key), "scikit-image sample")
    up = ui.image_uploader(f"Image {side}", key=f"ver_up_{side}")
    with ui.guard(f"read image {side}"):
        return ui.read_upload(up)


with ui.guard("verify"):
    names = res.pretrained_names()
    name = st.sidebar.selectbox("Model", names, key="ver_model")
    face = st.toggle("Crop faces first (MTCNN)", value=False, disabled=not HAS_MTCNN, key="ver_face",
                     help="finds the most confident face, levels the eyes and crops a square around it")
    if not HAS_MTCNN:
        st.caption("Face cropping needs the optional package `mtcnn` (Keras; weights inside the wheel): "
                   "`pip install mtcnn`, then restart the app. Without it whole images are compared.")
    ca, cb = st.columns(2)
    with ca:
        a = pick("A", "chelsea")
    with cb:
        b = pick("B", "chelsea:crop")

    if a is None or b is None:
        st.info("Choose two images.")
        st.stop()
    with st.spinner(f"Calibrating the threshold for {name} on Fashion-MNIST pairs (first time only, cached on disk)..."):
        try:
            v = res.verifier(name)
        except DataError as exc:  # no Fashion-MNIST here: verify with a threshold set by hand
            from recipes.verification import Verifier

            st.warning(f"No calibration data ({exc}); set the threshold by hand below.")
            v = Verifier(model=res.model(name), threshold=0.75)
            st.session_state.ver_manual = True
    images = [a.image, b.image]
    if face:
        from recipes.verification import FaceNotFoundError

        missing = []
        with st.spinner("Finding faces..."):
            crop = res.face_cropper()
            for n, (side, x) in enumerate(zip("AB", [a, b])):
                try:
                    images[n] = crop(x.image)
                except FaceNotFoundError:
                    missing.append(f"image {side} ({x.name})")
        if missing:  # outside the spinner, so that it goes away
            for col, x in zip((ca, cb), (a, b)):
                with col:
                    res.show_image(x.image, f"{x.name}: {x.note}", 480)
            st.error(f"No face found in {' or '.join(missing)}: choose a photo with a clear, frontal face "
                     "or turn off 'Crop faces first'.")
            st.stop()
    with ca:
        res.show_image(images[0], f"{a.name}: {a.note}" + (" (face crop)" if face else ""), 480)
    with cb:
        res.show_image(images[1], f"{b.name}: {b.note}" + (" (face crop)" if face else ""), 480)

    score = float(v.score(images[0], images[1]))
    cal = v.calibration or {}
    manual = st.toggle("Set the threshold by hand", key="ver_manual")
    threshold = st.slider("Threshold", -1.0, 1.0, float(v.threshold), 0.01, key="ver_thr") if manual else float(v.threshold)
    same = score >= threshold
    c1, c2, c3 = st.columns(3)
    c1.metric("Cosine similarity", f"{score:.3f}")
    c2.metric("Threshold" + (" (by hand)" if manual else " (calibrated)"), f"{threshold:.3f}")
    c3.metric("Decision", "same" if same else "different")
    (st.success if same else st.warning)(
        f"**{'Same' if same else 'Different'}**: similarity {score:.3f} is "
        f"{'at or above' if same else 'below'} the threshold {threshold:.3f}.")
    if cal:
        st.caption(f"Calibrated threshold {v.threshold:.3f}: false-accept rate {cal.get('far', float('nan')):.2%} and "
                   f"true-accept rate {cal.get('tar', float('nan')):.1%} on {cal.get('data', 'labelled pairs')} "
                   f"(target FAR {cal.get('target', res.VERIFY_FAR):g}). Photos of other kinds score differently: "
                   "calibrate on pairs like yours (recipes.verification.Verifier.calibrate) for real decisions.")
