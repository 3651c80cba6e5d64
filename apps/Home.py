"""The zoo's demo apps: ``streamlit run apps/Home.py`` (or ``make apps``), on http://localhost:8501.

One app; each page is a thin script in ``pages_/``, registered by one line in ``PAGES``.
``streamlit run`` finds ``app`` below and serves the pages through ``st.App`` with
:class:`apps.serving.KnownPagesOnly` (unknown URLs get a 404); Streamlit then runs this file as
the page script for every visitor (``__name__ == "__main__"``). Who may connect and which server
folders visitors may open: see ``apps/serving.py``.
"""
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent  # the repository: makes `apps`, `zoo`, `recipes` importable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402


class Page(NamedTuple):
    section: str
    script: str      # pages_/<script>.py
    title: str
    icon: str
    url: str         # URL path ("" for the default page at the root)
    about: str = ""  # one line for the Overview page


PAGES = [
    Page("Explore", "overview", "Overview", ":material/home:", ""),
    Page("Explore", "model_zoo", "Model zoo", ":material/table_view:", "models",
         "every registry entry with input size, params, GFLOPs, feature dim, reference top-1 and whether "
         "its weights are on this machine"),
    Page("Pretrained models", "classify", "Classify", ":material/image_search:", "classify",
         "top-5 ImageNet labels for a photo, with a Grad-CAM heat map of where the evidence is"),
    Page("Pretrained models", "search", "Similarity search", ":material/grid_view:", "search",
         "nearest neighbours in a FAISS index of 2,000 Fashion-MNIST images or of your images; near-duplicates"),
    Page("Pretrained models", "fewshot", "Few-shot", ":material/style:", "fewshot",
         "a classifier from a few examples per class, showing the support examples that decided each answer"),
    Page("Pretrained models", "verify", "Verify", ":material/compare:", "verify",
         "are two images of the same thing? cosine score, calibrated threshold, decision (optional face crops)"),
    Page("Pretrained models", "image_text", "Image-text", ":material/translate:", "image_text",
         "zero-shot probabilities over class names you type; text-to-image search"),
    Page("Training", "finetune", "Fine-tune", ":material/model_training:", "finetune",
         "a short fine-tune with live progress and curves, evaluation, and the model folder as a zip"),
    Page("Training", "detect", "Detect", ":material/center_focus_strong:", "detect",
         "boxes with labels and scores from the demo detector or MTCNN faces"),
    Page("Training", "segment", "Segment", ":material/category:", "segment",
         "per-pixel classes as an overlay with a legend and per-class areas"),
]


def navigation() -> dict:
    sections: dict[str, list] = {}
    for p in PAGES:
        sections.setdefault(p.section, []).append(
            st.Page(f"pages_/{p.script}.py", title=p.title, icon=p.icon, url_path=p.url or None, default=not p.url))
    return sections


if __name__ == "__main__":  # a visitor's script run
    st.set_page_config(page_title="zoo: transfer learning demos", page_icon=":material/pets:", layout="wide")
    st.navigation(navigation()).run()
elif __name__ == "Home":  # `streamlit run apps/Home.py` imports this module to serve it
    from starlette.middleware import Middleware

    from apps.serving import KnownPagesOnly

    app = st.App(__file__, middleware=[Middleware(KnownPagesOnly, url_paths=[p.url for p in PAGES],
                                                  titles={p.url: p.title for p in PAGES})])
