"""The zoo's demo apps: ``streamlit run apps/Home.py`` (or ``make apps``), on http://localhost:8501.

One app; each page is a thin script in ``pages_/``. The general pages are listed in ``GENERAL``;
then one page per kind of model, from the registry of kinds (:mod:`zoo.kinds`): a script that
declares ``PAGE = dict(kind=...)``, or else the generic page of a kind (``apps/kind_page.py``), so a
new kind shows up here with no code of its own.
``streamlit run`` finds ``app`` below and serves the pages through ``st.App`` with
:class:`apps.serving.KnownPagesOnly` (unknown URLs get a 404); Streamlit then runs this file as
the page script for every visitor (``__name__ == "__main__"``). Who may connect and which server
folders visitors may open: see ``apps/serving.py``.
"""
import ast
import functools
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent  # the repository: makes `apps`, `zoo`, `recipes` importable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402


class Page(NamedTuple):
    section: str
    script: str | None  # pages_/<script>.py, or None: the generic page of a kind (apps/kind_page.py)
    title: str
    icon: str
    url: str            # URL path ("" for the default page at the root)
    about: str = ""     # one line for the Overview page
    kind: str | None = None


GENERAL = [
    Page("Explore", "overview", "Overview", ":material/home:", ""),
    Page("Explore", "model_zoo", "Model zoo", ":material/table_view:", "models",
         "every registry entry with input size, params, GFLOPs, feature dim, reference top-1 and whether "
         "its weights are on this machine"),
    Page("Pretrained models", "classify", "Classify", ":material/image_search:", "classify",
         "top-5 ImageNet labels for a photo, with a Grad-CAM heat map of where the evidence is"),
    Page("Pretrained models", "search", "Similarity search", ":material/grid_view:", "search",
         "nearest neighbours in a FAISS index of 2,000 Fashion-MNIST images or of your images; near-duplicates"),
]
SECTIONS = ["Explore", "Pretrained models", "Training"]


def declared_pages() -> dict:
    """kind -> the Page a script in pages_/ declares for it (its ``PAGE = dict(...)``, read, not run)."""
    out = {}
    for f in sorted((Path(__file__).parent / "pages_").glob("*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PAGE"]:
                d = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}  # PAGE = dict(key=literal, ...)
                out[d["kind"]] = Page(d["section"], f.stem, d["title"], d["icon"], d["url"], d["about"], d["kind"])
    return out


def kind_pages() -> list:
    """One page per kind of model (zoo.kinds): its own script, or the generic page of a kind."""
    from zoo.kinds import kinds

    own = declared_pages()
    return [own.get(k.name) or Page("Training", None, k.title, ":material/widgets:", k.name, k.summary, k.name)
            for k in kinds()]


PAGES = sorted(GENERAL + kind_pages(), key=lambda p: SECTIONS.index(p.section))


@functools.cache
def target(page: Page):
    """What ``st.Page`` / ``st.page_link`` take for a page: its script, or the generic kind page."""
    if page.script:
        return f"pages_/{page.script}.py"
    from apps.kind_page import render

    return st.Page(functools.partial(render, page.kind), title=page.title, icon=page.icon, url_path=page.url)


def navigation() -> dict:
    sections: dict[str, list] = {}
    for p in PAGES:
        t = target(p)
        sections.setdefault(p.section, []).append(
            t if not isinstance(t, str) else
            st.Page(t, title=p.title, icon=p.icon, url_path=p.url or None, default=not p.url))
    return sections


if __name__ == "__main__":  # a visitor's script run
    st.set_page_config(page_title="zoo: transfer learning demos", page_icon=":material/pets:", layout="wide")
    st.navigation(navigation()).run()
elif __name__ == "Home":  # `streamlit run apps/Home.py` imports this module to serve it
    from starlette.middleware import Middleware

    from apps.serving import KnownPagesOnly

    app = st.App(__file__, middleware=[Middleware(KnownPagesOnly, url_paths=[p.url for p in PAGES],
                                                  titles={p.url: p.title for p in PAGES})])
