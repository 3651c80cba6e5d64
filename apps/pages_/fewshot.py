"""Few-shot: a k-NN classifier (recipes.fewshot) from a few examples per class."""
PAGE = dict(kind="fewshot", section="Pretrained models", title="Few-shot", icon=":material/style:", url="fewshot",
            about="a classifier from a few examples per class, showing the support examples that decided each answer")  # read by apps/Home.py (not executed there)
import numpy as np
import pandas as pd
import streamlit as st

import zoo.index
from apps import resources as res
from apps import ui

st.title("Few-shot classification")
st.caption("A handful of labelled examples per class, frozen embeddings, and a k-nearest-neighbour vote "
           "(SimpleShot: centred on the support mean, cosine). No training: change the examples and it "
           "changes its mind at once.")

BUNDLED, UPLOADED = "Bundled support set (Fashion-MNIST)", "My own examples (upload)"


def show_predictions(knn, s_emb, s_thumbs, s_labels, q_emb, q_thumbs, q_captions, truth=None):
    """Each query: its image, the answer with its vote share, and the support examples that voted."""
    pred = knn.predict(q_emb)
    proba = knn.predict_proba(q_emb)
    nn = zoo.index.from_embeddings(knn.transform(s_emb), index_type="Flat").search_embeddings(
        knn.transform(q_emb), knn.k_)
    if truth is not None:
        st.markdown(f"**{int((pred == truth).sum())} of {len(pred)}** queries right.")
    for r in range(len(q_emb)):
        c1, c2, c3 = st.columns([1, 1.4, 5])
        c1.image(q_thumbs[r], caption=q_captions[r], width="stretch")
        ok = "" if truth is None else (" :green[:material/check: right]" if pred[r] == truth[r]
                                       else f" :red[:material/close: wrong, true: {truth[r]}]")
        c2.markdown(f"**{pred[r]}**{ok}  \n{proba[r].max():.0%} of the vote")
        with c3:
            ui.grid([(s_thumbs[i], f"{s_labels[i]} · {s:.2f}") for i, s in zip(nn.ids[r], nn.scores[r]) if i >= 0],
                    columns=max(5, knn.k_))


with ui.guard("run the few-shot classifier"):
    mode = st.radio("Support set", [BUNDLED, UPLOADED], horizontal=True, key="fs_mode")
    if mode == BUNDLED:
        names = res.fmnist("train").class_names
        c1, c2, c3 = st.columns([1, 3, 1])
        k_shot = c1.slider("Examples per class", 1, 20, 5, key="fs_k")
        chosen = c2.multiselect("Classes", names, default=names, key="fs_classes")
        seed = c3.number_input("Draw", 0, 10_000, 0, key="fs_seed", help="which training images form the support set")
        if len(chosen) < 2:
            st.warning("Choose at least two classes.")
            st.stop()
        classes = tuple(sorted(names.index(c) for c in chosen))
        with st.spinner("Embedding the support set and held-out images (first time only)..."):
            knn, s_imgs, s_labels, s_emb = res.fewshot_bundled(k_shot, classes, int(seed))
            h_imgs, h_labels, h_emb = res.fewshot_heldout(classes)
        s_thumbs = [ui.pixelated(x, 2) for x in s_imgs]
        with st.expander(f"Support set: {len(s_imgs)} training images ({k_shot} per class)"):
            ui.grid([(t, lab) for t, lab in zip(s_thumbs, s_labels)], columns=max(k_shot, 5) if k_shot <= 10 else 10)
        acc = float((knn.predict(h_emb) == h_labels).mean())
        pix = np.asarray(s_imgs, np.float32).reshape(len(s_imgs), -1) / 255.0  # raw-pixel baseline
        from recipes.fewshot import KNNClassifier

        base = KNNClassifier(model=None, k=5).fit(pix, s_labels)
        base_acc = float((base.predict(np.asarray(h_imgs, np.float32).reshape(len(h_imgs), -1) / 255.0)
                          == h_labels).mean())
        m1, m2, m3 = st.columns(3)
        m1.metric(f"Accuracy on {len(h_labels)} held-out test images", f"{acc:.1%}")
        m2.metric("Same k-NN on raw pixels", f"{base_acc:.1%}", delta=f"{(acc - base_acc) * 100:+.1f} points from features",
                  delta_color="off")
        m3.metric("Chance", f"{1 / len(classes):.1%}")

        st.subheader("Classify new images")
        qsrc = st.radio("Queries", ["Random held-out test images", "Upload images"], horizontal=True, key="fs_qsrc")
        if qsrc == "Random held-out test images":
            n = st.slider("How many", 1, 16, 6, key="fs_n")
            if st.button("New draw", key="fs_redraw"):
                st.session_state.fs_draw = st.session_state.get("fs_draw", 0) + 1
            rows = np.random.default_rng(st.session_state.get("fs_draw", 0)).choice(len(h_labels), n, replace=False)
            show_predictions(knn, s_emb, s_thumbs, s_labels, h_emb[rows], [ui.pixelated(h_imgs[r], 3) for r in rows],
                             [f"test image {r}" for r in rows], truth=h_labels[rows])
        else:
            ups = ui.image_uploader("Images to classify", key="fs_queries", multiple=True)
            loaded, bad = ui.read_uploads(ups)
            for msg in bad:
                st.error(msg)
            if loaded:
                q_emb = np.stack([res.embed_one(x.image, res.DEFAULT_MODEL, res.SMALL_SIZE) for x in loaded])
                show_predictions(knn, s_emb, s_thumbs, s_labels, q_emb, [ui.display(x.image, 192) for x in loaded],
                                 [x.name for x in loaded])
            elif not bad:
                st.info("Upload one or more images to classify.")
    else:
        c1, c2 = st.columns(2)
        n_classes = c1.number_input("Classes", 2, 8, 2, key="fs_nclasses")
        size = c2.select_slider("Input size", [96, 160, 224], 224, key="fs_size")
        support, s_names, problems = [], [], []
        cols = st.columns(int(n_classes))
        for c, col in enumerate(cols):
            with col:
                cname = st.text_input("Class name", f"class {c + 1}", key=f"fs_name_{c}").strip() or f"class {c + 1}"
                ups = ui.image_uploader(f"Examples of '{cname}'", key=f"fs_up_{c}", multiple=True)
                loaded, bad = ui.read_uploads(ups)
                problems += bad
                support += loaded
                s_names += [cname] * len(loaded)
        for msg in problems:
            st.error(msg)
        if len(set(s_names)) < 2:
            st.info("Upload at least one readable image for each of two or more classes "
                    "(1-10 per class is typical).")
            st.stop()
        if len(set(s_names)) < int(n_classes):
            st.warning("Some classes have no readable example and are left out.")
        from recipes.fewshot import KNNClassifier

        with st.spinner("Embedding the examples..."):
            s_emb = np.stack([res.embed_one(x.image, res.DEFAULT_MODEL, size) for x in support])
        s_labels = np.array(s_names)
        knn = KNNClassifier(model=res.model(res.DEFAULT_MODEL, size), k=5).fit(s_emb, s_labels)
        st.caption(f"{len(support)} examples, {len(knn.classes_)} classes, k = {knn.k_} "
                   f"(capped at the smallest class), {res.DEFAULT_MODEL} at {size}px.")
        ups = ui.image_uploader("Images to classify", key="fs_queries_own", multiple=True)
        loaded, bad = ui.read_uploads(ups)
        for msg in bad:
            st.error(msg)
        if loaded:
            q_emb = np.stack([res.embed_one(x.image, res.DEFAULT_MODEL, size) for x in loaded])
            show_predictions(knn, s_emb, [ui.display(x.image, 192) for x in support], s_labels, q_emb,
                             [ui.display(x.image, 192) for x in loaded], [x.name for x in loaded])
            with st.expander("Class probabilities"):
                st.dataframe(pd.DataFrame(knn.predict_proba(q_emb), columns=list(knn.classes_),
                                          index=[x.name for x in loaded]), width="stretch")
        elif not bad:
            st.info("Upload images to classify.")
