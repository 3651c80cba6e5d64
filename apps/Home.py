"""The zoo's demo apps: ``streamlit run apps/Home.py`` (or ``make apps``).

One app, pages registered with ``st.navigation``; each page is a thin script in ``pages_/``.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: makes `apps`, `zoo`, `recipes` importable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="zoo: transfer learning demos", page_icon=":material/pets:", layout="wide")

PAGES = {
    "Explore": [
        st.Page("pages_/overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page("pages_/model_zoo.py", title="Model zoo", icon=":material/table_view:", url_path="models"),
    ],
    "Pretrained models": [
        st.Page("pages_/classify.py", title="Classify", icon=":material/image_search:", url_path="classify"),
        st.Page("pages_/search.py", title="Similarity search", icon=":material/grid_view:", url_path="search"),
        st.Page("pages_/fewshot.py", title="Few-shot", icon=":material/style:", url_path="fewshot"),
        st.Page("pages_/verify.py", title="Verify", icon=":material/compare:", url_path="verify"),
    ],
    "Training": [
        st.Page("pages_/finetune.py", title="Fine-tune", icon=":material/model_training:", url_path="finetune"),
    ],
}

st.navigation(PAGES).run()
