"""Fine-tune: a short run of zoo's fine-tuning recipe with live progress, evaluation and a download."""
PAGE = dict(kind="classifier", section="Training", title="Fine-tune", icon=":material/model_training:", url="finetune",
            about="a short fine-tune with live progress and curves, evaluation, and the model folder as a zip")  # read by apps/Home.py (not executed there)
import inspect
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from apps import progress as live
from apps import resources as res
from apps import serving, ui

st.title("Fine-tune")
st.caption("zoo's recipe: train a new head on cached frozen features, then unfreeze the network (BatchNorm "
           "frozen) and train on with augmentation, AdamW and a cosine schedule. The best validation "
           "weights are kept. On this CPU a few thousand small images take a minute or two.")

FMNIST, FOLDER = "Fashion-MNIST (bundled)", "A folder of class subfolders"


def finetune_accepts_callbacks() -> bool:
    from zoo.training import train

    params = inspect.signature(train).parameters
    return "callbacks" in params


def run(name, train, test, size, head_epochs, epochs, batch_size, lr):
    """Fine-tune, evaluate and save; returns what the results section shows."""
    import zoo
    from zoo import plots

    with st.spinner(f"Loading {name} at {size}px..."):
        m = zoo.load(name, input_size=size)  # a private copy: fine-tuning changes the weights
    out = ui.cache_dir("finetune") / f"{name}-{size}px-{time.strftime('%Y%m%d-%H%M%S')}"
    bar = st.progress(0.0, text=f"Embedding {len(train):,} training images with the frozen backbone "
                                "(the head trains on these cached features)...")
    chart = st.empty()
    # bar weights: caching features ~ one forward pass (1), a head epoch on cached features ~ nothing,
    # a full-network epoch ~ forward + backward with augmentation (3)
    cb = live.StreamlitProgress([("head (frozen backbone)", head_epochs, 0.05), ("full network", epochs, 3.0)],
                                bar, chart, prelude=1.0 if head_epochs else 0.0)
    kwargs = dict(epochs=epochs, head_epochs=head_epochs, batch_size=batch_size, lr=lr, verbose=0, out_dir=out)
    if finetune_accepts_callbacks():
        kwargs["callbacks"] = [cb]
    else:
        st.caption("This version of zoo.training.train takes no callbacks: the curves are drawn "
                   "when training ends.")
    t0 = time.perf_counter()
    clf = m.finetune(train, **kwargs)
    train_s = time.perf_counter() - t0
    bar.progress(1.0, text=f"Evaluating on {len(test):,} test images...")
    ev = clf.evaluate(test, plot=out / "confusion_test.png")
    folder = clf.save(out / "model")
    bar.progress(1.0, text=f"Done: trained in {train_s:.0f} s, test accuracy {ev['accuracy']:.1%}.")
    chart.empty()  # the results below draw the final curves
    curves = live.history_frame(clf.history, head_epochs, epochs)
    plots.training_curves(clf.history, out / "curves.png", f"{name} fine-tuning")
    for f in ("curves.png", "confusion_test.png", "confusion_val.png"):
        if (out / f).is_file():
            (folder / f).write_bytes((out / f).read_bytes())
    cm = ev["confusion_matrix"]
    per_class = pd.DataFrame({"class": clf.class_names, "test images": cm.sum(1),
                              "accuracy": np.diag(cm) / np.maximum(cm.sum(1), 1)})
    return {"name": name, "size": size, "accuracy": ev["accuracy"], "loss": ev["loss"], "n_test": ev["n"],
            "n_train": len(train), "seconds": train_s, "curves": curves, "per_class": per_class,
            "confusion_png": (out / "confusion_test.png").read_bytes(), "zip": ui.zip_folder(folder, out.name),
            "folder": str(folder), "kept": getattr(clf, "training_config", {}).get("kept")}


with ui.guard("set up fine-tuning"):
    names = res.pretrained_names()
    c1, c2 = st.columns(2)
    name = c1.selectbox("Backbone", names, key="ft_model",
                        help="entries with weights on this machine (see the Model zoo page)")
    dataset = c2.radio("Dataset", [FMNIST, FOLDER], key="ft_data")
    if dataset == FMNIST:
        c1, c2 = st.columns(2)
        n_train = c1.select_slider("Training images", [100, 200, 500, 1000, 2000, 5000, 10000, 60000], 1000,
                                   key="ft_ntrain", help="a stratified sample of the 60,000; 10% of it is held out for validation")
        n_test = c2.select_slider("Test images", [200, 500, 1000, 2000, 10000], 1000, key="ft_ntest")
    else:
        root = serving.visitor_root()
        if root is None:
            st.info(f"Training on a folder of the server is off. Start the app with `{serving.ROOT_ENV}=/path/to/data` "
                    "to let visitors train on folders under that path.")
        folder = st.text_input(f"Folder with one subfolder of images per class, under {root}", key="ft_folder",
                               placeholder=f"{root}/flowers  (flowers/daisy/*.jpg, flowers/rose/*.jpg, ...)",
                               disabled=root is None)
        test_fraction = st.slider("Held out for testing", 0.1, 0.5, 0.2, 0.05, key="ft_testfrac")
    c1, c2, c3 = st.columns(3)
    size = c1.select_slider("Input size", [64, 96, 128, 160, 224], 96, key="ft_size",
                            help="Fashion-MNIST is 28x28: 64-96 px is plenty and fast")
    head_epochs = c2.number_input("Head epochs (frozen backbone)", 0, 50, 5, key="ft_head_epochs")
    epochs = c3.number_input("Full-network epochs (unfrozen)", 0, 20, 2, key="ft_epochs")
    with st.expander("More settings"):
        c1, c2 = st.columns(2)
        batch_size = c1.select_slider("Batch size", [16, 32, 64, 128], 64, key="ft_bs")
        lr = c2.select_slider("Peak learning rate (unfrozen)", [5e-5, 1e-4, 2e-4, 5e-4, 1e-3], 1e-4, key="ft_lr",
                              help="small data wants a small rate: 1e-4 beat 5e-4 on 1,000 Fashion-MNIST images")

    if st.button("Start fine-tuning", type="primary", key="ft_start"):
        st.session_state.pop("ft_result", None)
        if head_epochs + epochs == 0:
            st.error("Set at least one epoch (head or full network).")
        else:
            from zoo import data as zdata

            if dataset == FMNIST:
                train = res.fmnist("train").subset(total=n_train, seed=0)
                test = res.fmnist("test").subset(total=n_test, seed=1)
            else:
                if serving.visitor_root() is not None and not folder.strip():
                    raise zdata.DataError("enter the folder of class subfolders to train on")
                whole = serving.class_folders(folder)
                if whole.num_classes < 2:
                    raise zdata.DataError(f"{folder} has {whole.num_classes} class subfolder; fine-tuning needs 2 or more")
                train, test = whole.split(test_fraction, seed=0)
            st.session_state.ft_result = run(name, train, test, int(size), int(head_epochs), int(epochs),
                                             int(batch_size), float(lr))

result = st.session_state.get("ft_result")
if result:
    st.subheader(f"Result: {result['name']} at {result['size']}px")
    c1, c2, c3 = st.columns(3)
    c1.metric(f"Test accuracy ({result['n_test']:,} images)", f"{result['accuracy']:.1%}")
    c2.metric("Test loss", f"{result['loss']:.3f}")
    c3.metric("Training time", f"{result['seconds']:.0f} s", help=f"{result['n_train']:,} training images")
    if result.get("kept") == "head":
        st.info("The full-network epochs never beat the head alone on the validation images, so the "
                "head-only model was kept. With this little data, try a lower learning rate or more epochs.")
    live.draw_curves(result["curves"])
    c1, c2 = st.columns([3, 2])
    c1.image(result["confusion_png"], caption="Confusion matrix on the test images", width="stretch")
    c2.dataframe(result["per_class"], hide_index=True, width="stretch",
                 column_config={"accuracy": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
    st.download_button("Download the model folder (.zip)", result["zip"], file_name=f"{Path(result['folder']).parent.name}.zip",
                       mime="application/zip", type="primary", on_click="ignore", key="ft_download")
    run_name = Path(result["folder"]).parent.name
    st.caption(f"The zip holds config.json, model.weights.h5 (checksummed), the curves and confusion matrices; "
               f"unzip it and `zoo.load('{run_name}')`. Also saved on this machine at `{result['folder']}`.")
