"""SimCLR self-supervised pre-training of a zoo backbone, and the linear probe that evaluates it.

```python
from recipes import simclr
ssl = simclr.pretrain(unlabelled_images, backbone="efficientnet_lite0", epochs=1, out_dir="runs/simclr")
zoo.load("runs/simclr/model").embed(images)          # a "backbone" folder: .embed, .finetune work
simclr.linear_probe(ssl, train, test)                # also for the ImageNet-pretrained baseline
```

SimCLR (Chen et al. 2020): two random augmentations of each image (parts of :mod:`zoo.augment`)
go through the backbone and an MLP projection head; the NT-Xent loss makes the two views of one
image each other's match among the 2N views of the batch. The head is dropped afterwards: the
backbone's pooled embedding is the representation. By default it starts from the ImageNet weights
(continued pre-training on the unlabelled target domain) with BatchNorm frozen, which suits the
small batches a CPU affords; ``weights=None, freeze_bn=False`` is SimCLR from scratch.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from zoo.errors import DataError, RecipeError

log = logging.getLogger(__name__)
AUGMENT = ["flip", "shift", "zoom", "rotate", "contrast", "brightness", "erase", "blur"]


def nt_xent(z1, z2, temperature: float = 0.2):
    """NT-Xent over 2N views: view i's positive is its pair, the 2N-2 others are negatives; the rows are
    L2-normalised here; the mean over all 2N views of the cross-entropy of cosine / temperature."""
    import tensorflow as tf

    z = tf.math.l2_normalize(tf.concat([z1, z2], 0), -1)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(2 * n)  # a view is not its own candidate
    target = tf.concat([tf.range(n) + n, tf.range(n)], 0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))


def _projection(in_dim: int, dim: int, seed: int):
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    head = keras.Sequential([keras.layers.Dense(512, activation="relu", kernel_initializer=init, name="proj_hidden"),
                             keras.layers.Dense(dim, kernel_initializer=init, name="proj_out")], name="simclr_projection")
    head.build((None, in_dim))
    return head


def _images(images):
    """An array of images or file paths; labels, if any, are ignored."""
    from zoo.images import list_image_files

    if hasattr(images, "images"):
        images = images.images
    if isinstance(images, (str, Path)):
        p = Path(images)
        if not p.is_dir():
            raise DataError(f"{p} is not a folder of images")
        images = [str(f) for f in list_image_files(p)]
    if len(images) < 2:
        raise DataError("SimCLR needs at least two unlabelled images")
    return images


def pretrain(images, backbone="efficientnet_lite0", epochs: int = 1, batch_size: int = 64,
             input_size: int | None = None, weights="imagenet", temperature: float = 0.2, lr: float = 3e-4,
             weight_decay: float = 1e-4, projection_dim: int = 128, augment=None, freeze_bn: bool = True,
             max_seconds: float | None = None, seed: int = 0, out_dir=None, progress: bool = True,
             strategy=None):
    """Pre-train ``backbone`` (a registry name or ZooModel, copied, never changed) on unlabelled
    ``images`` (array, file list, folder, or labelled data whose labels are ignored) with SimCLR.

    Returns the trained ZooModel (``.pretraining`` holds the settings and loss history); with
    ``out_dir`` it is saved to ``out_dir/model`` (a backbone folder ``zoo.load`` serves).
    ``max_seconds`` stops after the step that passes it. ``strategy``: any ``tf.distribute``
    strategy, as for ``finetune``; each replica contrasts its own share of the batch (its
    negatives are local, as in SimCLR's per-core batches) and gradients are summed across replicas.
    """
    import keras
    import tensorflow as tf

    import zoo
    from zoo.augment import build_augmentation
    from zoo.data import LabeledImages
    from zoo.inference import Progress
    from zoo.model import ZooModel
    from zoo.training import cosine_adamw, unfreeze_backbone

    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise RecipeError(f"{name} must be a positive integer; got {v!r}")
    if batch_size < 2:
        raise RecipeError("batch_size must be at least 2: the other images of a batch are the negatives")
    images = _images(images)
    keras.utils.set_random_seed(seed)
    base = backbone if isinstance(backbone, ZooModel) else zoo.load(backbone, input_size=input_size, weights=weights)
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if batch_size < 2 * replicas or batch_size % replicas:
        raise RecipeError(f"batch_size {batch_size} must split into {replicas} replicas' shares of 2 or more "
                          f"images: use a multiple of {replicas}, at least {2 * replicas}")
    n = len(images)
    steps = max(1, n // batch_size)
    with strategy.scope():  # every variable (weights, optimizer, augmentation seeds) is the strategy's
        model = base.copy(precision="float32")
        unfreeze_backbone(model, "all", freeze_bn=freeze_bn)
        aug = build_augmentation(augment if augment is not None else AUGMENT, seed=seed)
        head = _projection(model.feature_dim, projection_dim, seed)
        opt = cosine_adamw(lr, epochs * steps, weight_decay, 0.05)
        net = model.embedding_model
        variables = net.trainable_variables + head.trainable_variables
        opt.build(variables)  # its slots now, not inside the first distributed step

    def replica_step(x):
        with tf.GradientTape() as tape:
            h1 = net(aug(x, training=True), training=True)
            h2 = net(aug(x, training=True), training=True)
            loss = nt_xent(head(h1, training=True), head(h2, training=True), temperature)
            share = loss / replicas  # the optimizer sums the replicas' gradients
        opt.apply_gradients(zip(tape.gradient(share, variables), variables))
        return loss

    @tf.function
    def step(x):
        return strategy.reduce("MEAN", strategy.run(replica_step, args=(x,)), axis=None)

    data = LabeledImages(images, np.zeros(n, np.int64), ["unlabelled"])
    history = {"loss": [], "seconds": [], "loss_every_20_steps": []}
    t0 = time.perf_counter()
    stopped, done = False, 0
    for epoch in range(epochs):
        te, losses = time.perf_counter(), []
        bar = Progress(steps * batch_size, f"simclr epoch {epoch + 1}/{epochs}", progress)
        ds = data.batches(model.input_size, batch_size, shuffle=True, seed=seed + epoch).take(steps)
        for x, _ in ds:
            if x.shape[0] < 2 * replicas or x.shape[0] % replicas:
                continue
            losses.append(float(step(strategy.experimental_distribute_values_from_function(
                lambda ctx, x=x: tf.split(x, replicas)[ctx.replica_id_in_sync_group]) if replicas > 1 else x)))
            done += 1
            if done % 20 == 0:
                history["loss_every_20_steps"].append(float(np.mean(losses[-20:])))
            bar.update(int(x.shape[0]))
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                stopped = True
                break
        bar.close()
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["seconds"].append(time.perf_counter() - te)
        if progress:
            print(f"simclr epoch {epoch + 1}: loss {history['loss'][-1]:.4f}, {history['seconds'][-1]:.0f}s, "
                  f"{len(losses)} steps", file=sys.stderr)
        if stopped:
            break
    model._weights_digest, model._fns = None, {}
    model.pretraining = {"method": "simclr", "from": base.entry.full_name if weights else None,
                         "images": n, "epochs": epochs, "batch_size": batch_size, "temperature": temperature,
                         "lr": lr, "freeze_bn": freeze_bn, "augment": augment if augment is not None else AUGMENT,
                         "steps": done, "history": history, "replicas": replicas,
                         "seconds": round(time.perf_counter() - t0, 1), "stopped_early": stopped}
    if out_dir is not None:
        save(model, Path(out_dir) / "model")
    return model


def save(model, path) -> Path:
    """Save a pre-trained backbone as a "backbone" folder (``zoo.load(path)`` returns a ZooModel) with its
    pre-training record in config.json."""
    from zoo import io as zio
    from zoo.model import WEIGHTS_FILE

    config = {"base_model": model.entry.name, "tag": model.entry.tag, "input_size": model.input_size,
              "preprocessing": model.preprocessing.to_dict(),
              "pretraining": json.loads(json.dumps(getattr(model, "pretraining", {}), default=str))}
    out = zio.write_folder(path, "backbone", config, {WEIGHTS_FILE: model.keras_model.save_weights})
    model.weights_source = str(out)
    return out


def linear_probe(backbone, train, test, per_class: int | None = None, C: float = 1.0, seed: int = 0,
                 batch_size: int = 128) -> dict:
    """The standard evaluation of a representation: a logistic regression on frozen embeddings.

    ``backbone``: a ZooModel (or name / folder); ``train``/``test``: labelled data ((images, labels),
    LabeledImages) or ``(embeddings, labels)`` already computed. ``per_class`` trains on that many
    labelled images of each class. Returns accuracy, n_train, n_test.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import zoo

    m = backbone if hasattr(backbone, "embed") else zoo.load(backbone)

    def feats(d):
        x, y = (d.images, d.labels) if hasattr(d, "labels") else d
        y = np.asarray(y)
        x = np.asarray(x, np.float32) if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype.kind == "f" \
            else m.embed(x, batch_size=batch_size, progress=False)
        return x, y

    xtr, ytr = feats(train)
    xte, yte = feats(test)
    if per_class:
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(ytr == c))[:per_class] for c in np.unique(ytr)])
        xtr, ytr = xtr[keep], ytr[keep]
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(scaler.transform(xtr), ytr)
    acc = float((clf.predict(scaler.transform(xte)) == yte).mean())
    return {"accuracy": acc, "n_train": int(len(ytr)), "n_test": int(len(yte))}
