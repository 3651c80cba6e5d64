"""Model zoo: every registry entry and its metadata, filterable."""
import fnmatch

import pandas as pd
import streamlit as st

from apps import ui

st.title("Model zoo")
st.caption("Every registry entry. Metadata travels with the weights and drives preprocessing; "
           "'Weights here' says whether `zoo.load(name)` works offline on this machine.")


@st.cache_data(show_spinner=False)
def registry_table() -> pd.DataFrame:
    import zoo
    from zoo.weights.resolve import weights_available

    rows = []
    for name in zoo.list_models():
        d = zoo.info(name)
        w = d["weights"] or {}
        p = d["preprocessing"]
        rows.append({
            "name": name, "family": d["family"], "input": d["input_size"], "params (M)": d["params_m"],
            "GFLOPs": d["gflops"], "feature dim": d["feature_dim"], "top-1 (%)": d["top1"],
            "weights here": weights_available(zoo.get_entry(name)),
            "weights from": f"pip: {w['package']}" if w.get("package") else ("download" if w.get("url") else "-"),
            "normalise": f"mean {tuple(round(x, 1) for x in p['mean'])} std {tuple(round(x, 1) for x in p['std'])}"
                         f" {p['channel_order']}, {p['interpolation']}",
            "license": d["license"], "source": d["source"],
        })
    return pd.DataFrame(rows)


with ui.guard("read the registry"):
    df = registry_table()
    c1, c2, c3 = st.columns([2, 2, 1])
    pattern = c1.text_input("Name (wildcards)", "", placeholder="efficientnet*  or  *net*",
                            help="shell-style pattern, as in zoo.list_models('resnet*')")
    families = c2.multiselect("Family", sorted(df["family"].unique()))
    only_here = c3.checkbox("Weights here only", help="entries that load offline on this machine")
    max_params = st.slider("Max parameters (M)", 1, int(df["params (M)"].max()) + 1, int(df["params (M)"].max()) + 1)
    view = df[df["params (M)"] <= max_params]
    if pattern.strip():
        pat = pattern.strip() if any(ch in pattern for ch in "*?[") else f"*{pattern.strip()}*"
        view = view[[fnmatch.fnmatch(n, pat.lower()) for n in view["name"]]]
    if families:
        view = view[view["family"].isin(families)]
    if only_here:
        view = view[view["weights here"]]
    st.markdown(f"**{len(view)} of {len(df)} models**, {int(df['weights here'].sum())} with weights on this machine")
    st.dataframe(
        view, hide_index=True, width="stretch",
        column_config={
            "weights here": st.column_config.CheckboxColumn("weights here"),
            "top-1 (%)": st.column_config.NumberColumn(format="%.1f"),
            "GFLOPs": st.column_config.NumberColumn(format="%.2f"),
            "params (M)": st.column_config.NumberColumn(format="%.1f"),
            "source": st.column_config.TextColumn(width="medium"),
        })
    if len(view):
        pick = st.selectbox("Details", view["name"].tolist())
        import zoo

        st.json(zoo.info(pick), expanded=False)
        st.code(f'import zoo\nm = zoo.load("{pick}")\nm.classify(images, top_k=5); m.embed(images)', language="python")
