"""Similarity search: a FAISS index of a collection, queried by upload or by one of its images."""
import numpy as np
import pandas as pd
import streamlit as st

from apps import resources as res
from apps import serving, ui

st.title("Similarity search")
st.caption("Images become L2-normalised embeddings of a pretrained backbone; a FAISS index "
           "(zoo.index) returns the nearest by cosine similarity.")

BUNDLED, UPLOADS, FOLDER = "Fashion-MNIST (bundled)", "My images (upload)", "A folder on the server"
coll = None
with ui.guard("open the collection"):
    which = st.radio("Collection", [BUNDLED, UPLOADS, FOLDER], horizontal=True, key="search_collection")
    if which == BUNDLED:
        with st.spinner(f"Indexing {res.FMNIST_PER_CLASS * 10:,} Fashion-MNIST images at {res.SMALL_SIZE}px "
                        "(first visit only: about 10-30 s, then cached on disk)..."):
            coll = res.fmnist_collection()
    elif which == UPLOADS:
        c1, c2 = st.columns([3, 1])
        with c1:
            ups = ui.image_uploader("Images to search among", key="search_collection_upload", multiple=True)
        size = c2.select_slider("Input size", [96, 128, 160, 224], 160, key="search_upload_size",
                                help="smaller is faster; larger sees finer detail")
        loaded, bad = ui.read_uploads(ups)
        for msg in bad:
            st.error(msg)
        if len(loaded) >= 2:
            with st.spinner(f"Embedding {len(loaded)} images..."):
                coll = res.upload_collection(loaded, int(size))
        elif not bad:
            st.info("Upload two or more images: each becomes an item of a small index you can search "
                    "and check for near-duplicates. They stay in this browser session.")
    else:
        root = serving.visitor_root()
        if root is None:
            st.info(f"Opening folders on the server is off. Start the app with `{serving.ROOT_ENV}=/path/to/images` "
                    "to let visitors index and search folders (or saved .zidx indexes) under that path; "
                    "here, upload your images instead.")
        else:
            c1, c2 = st.columns([3, 1])
            folder = c1.text_input(f"Folder of images under {root} (searched recursively), or a saved .zidx index",
                                   key="search_folder", placeholder=f"{root}/photos  or  photos.zidx")
            size = c2.select_slider("Input size", [96, 128, 160, 224], 160, key="search_size",
                                    help="smaller is faster to build; larger sees finer detail")
            if not folder.strip():
                st.info("Enter a folder path. The index is built once (embedding every image) and reused while "
                        "the folder is unchanged. For very large folders build it with `zoo index build` and "
                        "open the .zidx here.")
            else:
                p = serving.visitor_path(folder)
                if not p.is_dir():
                    st.error(f"{folder.strip()} is not a folder under {root}.")
                else:
                    digest = res.folder_digest(str(p))
                    with st.spinner(f"Indexing {p} at {size}px (first time only)..."):
                        coll = res.folder_collection(str(p), int(size), files_digest=digest, root=str(root))

if coll is not None:
    idx = coll.index
    st.caption(coll.title)
    if coll.skipped:
        n = len(coll.skipped)
        st.warning(f"{n} file{'s were' if n != 1 else ' was'} left out (unreadable): "
                   + "; ".join(ui.short_reason(path, why) for path, why in coll.skipped[:5]) + (" ..." if n > 5 else ""))
    tab_search, tab_dups, tab_info = st.tabs(["Search", "Near-duplicates", "Index"])

    with tab_search, ui.guard("search"):
        c1, c2 = st.columns([2, 1])
        qsrc = c1.radio("Query", ["An image from the collection", "Upload an image"], horizontal=True,
                        key="search_query_source")
        k = c2.slider("Neighbours", 4, 30, 12, key="search_k")
        query_img, result, exclude = None, None, None
        if qsrc == "An image from the collection":
            ids = idx.ids
            if "search_item" not in st.session_state:
                st.session_state.search_item = int(ids[0])
            a, b = st.columns([3, 1])
            b.button("Random item", key="search_random",
                     on_click=lambda: st.session_state.update(search_item=int(np.random.default_rng().choice(ids))))
            item = a.number_input("Item id", min_value=int(ids.min()), max_value=int(ids.max()), step=1,
                                  key="search_item")
            if int(item) not in set(ids.tolist()):
                st.error(f"There is no item {int(item)} in this index.")
            else:
                query_img = coll.thumb(int(item))
                query_caption = coll.caption(int(item), idx.metadata([int(item)])[0] or {})
                result = idx.search_embeddings(idx.vectors([int(item)]), k + 1)
                exclude = int(item)
        else:
            up = ui.image_uploader("Query image", key="search_upload")
            with ui.guard("read the upload"):
                loaded = ui.read_upload(up)
                if loaded is not None:
                    query_img, query_caption = ui.display(loaded.image, 256), f"{loaded.name}: {loaded.note}"
                    result = idx.search(loaded.image[None], k)
        if result is not None:
            rows = [(int(i), float(s), m or {}) for i, s, m in zip(result.ids[0], result.scores[0], result.metadata[0])
                    if i >= 0 and int(i) != exclude][:k]
            q, g = st.columns([1, 5])
            with q:
                st.markdown("**Query**")
                if query_img is not None:
                    st.image(query_img, caption=query_caption, width="stretch")
            with g:
                st.markdown(f"**{len(rows)} nearest** (cosine similarity)")
                ui.grid([(coll.thumb(i), f"{coll.caption(i, m)} · {s:.3f}") for i, s, m in rows], columns=6)
            qlabel = coll.label_of(idx.metadata([exclude])[0]) if exclude is not None else None
            if qlabel is not None:
                same = sum(coll.label_of(m) == qlabel for _, _, m in rows)
                st.markdown(f"**{same} of {len(rows)}** neighbours share the query's label '{qlabel}'.")
            with st.expander("Scores and metadata"):
                st.dataframe(pd.DataFrame([{"rank": r + 1, "id": i, "score": s, **m} for r, (i, s, m) in enumerate(rows)]),
                             hide_index=True, width="stretch")
        elif qsrc == "Upload an image":
            st.info("Upload an image to find its nearest neighbours in the collection.")

    with tab_dups, ui.guard("find near-duplicates"):
        c1, c2 = st.columns(2)
        thr = c1.slider("Cosine similarity at least", 0.80, 0.999, 0.95, step=0.001, format="%.3f", key="dup_thr")
        show = c2.slider("Groups to show", 1, 30, 8, key="dup_show")
        groups = idx.duplicates(threshold=thr, k=10)
        st.markdown(f"**{len(groups)} group{'s' * (len(groups) != 1)}** of near-duplicates ({sum(map(len, groups))} items) "
                    f"at cosine >= {thr:.3f}.")
        if not groups:
            st.info("No near-duplicates at this threshold: lower it to see more.")
        for n, group in enumerate(groups[:show]):
            st.markdown(f"Group {n + 1}: {len(group)} items")
            metas = idx.metadata(group)
            ui.grid([(coll.thumb(i), coll.caption(i, m or {})) for i, m in zip(group[:16], metas[:16])], columns=8)

    with tab_info:
        st.json(idx.info(), expanded=True)
