"""Image-text (CLIP-style) training: LiT with the CLIP or SigLIP loss.

LiT ("locked image tuning", Zhai et al. 2022): the pretrained image tower is frozen, so its
embeddings are computed once and every epoch trains only the projection heads (and, with
``text_layers=N``, the text tower's top N layers, run on cached hidden states of the layers
below). ``mode="full"`` unfreezes the image tower too (BatchNorm frozen), streaming augmented
pixels; slow on a CPU. Losses: symmetric InfoNCE with a learnable temperature clamped at 100
(CLIP, Radford et al. 2021) or the pairwise sigmoid loss (SigLIP, Zhai et al. 2023). Identical
captions count as positives of each other, not negatives. ``queue=N`` keeps the last N projected
pairs as extra negatives (MoCo-style) so that a small CPU batch still sees many.

A contrastive loss needs the batch's pairs together, so this kind trains with its own loop rather
than ``zoo.training``'s two phases (its image tower stays locked unless ``mode="full"``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from zoo.errors import DataError, RecipeError
from zoo.tasks.image_text.data import read_pairs
from zoo.tasks.image_text.model import DEFAULT_TEMPLATES, Head, ImageTextModel, l2  # noqa: F401

log = logging.getLogger(__name__)
MODES, LOSSES = ("lit", "full"), ("clip", "siglip")
MAX_LOGIT_SCALE = math.log(100.0)


# ---- losses ------------------------------------------------------------------------------------
def _positives(ids_a, ids_b):
    import tensorflow as tf

    return tf.cast(tf.equal(ids_a[:, None], ids_b[None, :]), tf.float32)


def clip_loss(image_emb, text_emb, logit_scale, caption_ids=None, image_queue=None, text_queue=None,
              queue_ids=None):
    """Symmetric InfoNCE on L2-normalised embeddings (CLIP): the mean of the image->text and
    text->image cross-entropies of ``exp(min(logit_scale, log 100)) * cosine``.

    ``caption_ids`` (B,): pairs with equal ids are positives of each other (the target spreads over
    them); without it the diagonal is the only positive. ``image_queue``/``text_queue`` (Q, d) with
    ``queue_ids`` (Q,) (-1: empty slot, ignored) add earlier pairs as extra candidates.
    """
    import tensorflow as tf

    scale = tf.exp(tf.minimum(logit_scale, MAX_LOGIT_SCALE))
    b = tf.shape(image_emb)[0]
    ids = tf.range(b) if caption_ids is None else tf.cast(caption_ids, tf.int32)
    texts, images, cand = text_emb, image_emb, ids
    valid = tf.ones([b], tf.bool)
    if text_queue is not None:
        texts = tf.concat([text_emb, text_queue], 0)
        images = tf.concat([image_emb, image_queue], 0)
        q = tf.cast(queue_ids, tf.int32)
        cand = tf.concat([ids, q], 0)
        valid = tf.concat([valid, q >= 0], 0)
    pos = _positives(ids, cand) * tf.cast(valid, tf.float32)[None]
    target = pos / tf.reduce_sum(pos, 1, keepdims=True)
    mask = tf.where(valid, 0.0, -1e9)[None]

    def ce(logits):
        return tf.reduce_mean(tf.reduce_sum(-target * tf.nn.log_softmax(logits + mask, 1), 1))
    return 0.5 * (ce(scale * tf.matmul(image_emb, texts, transpose_b=True))
                  + ce(scale * tf.matmul(text_emb, images, transpose_b=True)))


def siglip_loss(image_emb, text_emb, logit_scale, logit_bias, caption_ids=None, image_queue=None,
                text_queue=None, queue_ids=None):
    """The pairwise sigmoid loss (SigLIP): ``-1/B sum_ij log sigmoid(z_ij (t x_i.y_j + b))``, z = +1 for
    matching pairs (equal ``caption_ids``), -1 otherwise; ``t = exp(logit_scale)`` (clamped at 100).
    Queued texts (``queue_ids`` >= 0) are extra pairs for each image."""
    import tensorflow as tf

    scale = tf.exp(tf.minimum(logit_scale, MAX_LOGIT_SCALE))
    b = tf.shape(image_emb)[0]
    ids = tf.range(b) if caption_ids is None else tf.cast(caption_ids, tf.int32)
    texts, cand, valid = text_emb, ids, tf.ones([b], tf.bool)
    if text_queue is not None:
        q = tf.cast(queue_ids, tf.int32)
        texts, cand = tf.concat([text_emb, text_queue], 0), tf.concat([ids, q], 0)
        valid = tf.concat([valid, q >= 0], 0)
    z = 2.0 * _positives(ids, cand) - 1.0
    logits = scale * tf.matmul(image_emb, texts, transpose_b=True) + logit_bias
    per = tf.math.log_sigmoid(z * logits) * tf.cast(valid, tf.float32)[None]
    return -tf.reduce_sum(per) / tf.cast(b, tf.float32)


# ---- training ----------------------------------------------------------------------------------
def _keras_head(in_dim: int, dim: int, kind: str, name: str, seed: int):
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    if kind == "identity":
        if in_dim != dim:
            raise RecipeError(f"an identity head keeps the {in_dim}-d features: pass dim={in_dim}")
        layer = keras.layers.Dense(dim, kernel_initializer="identity", name=f"{name}_proj", trainable=False)
        head = keras.Sequential([layer], name=f"{name}_head")
        head.build((None, in_dim))
        return head
    if kind == "linear":
        layers = [keras.layers.Dense(dim, kernel_initializer=init, name=f"{name}_proj")]
    elif kind == "mlp":
        layers = [keras.layers.Dense(max(dim, 512), activation="relu", kernel_initializer=init, name=f"{name}_hidden"),
                  keras.layers.Dense(dim, kernel_initializer=init, name=f"{name}_proj")]
    else:
        raise RecipeError(f"heads must be 'linear', 'mlp' or 'identity' (text only); got {kind!r}")
    head = keras.Sequential(layers, name=f"{name}_head")
    head.build((None, in_dim))
    return head


def _numpy_head(head) -> Head:
    return Head([(l.kernel.numpy(), l.bias.numpy(), "relu" if l.activation.__name__ == "relu" else None)
                 for l in head.layers])


def _cached_embeddings(tower, images, cache_dir, batch_size, progress) -> np.ndarray:
    """The frozen tower's embeddings of ``images``, computed once (and reused from ``cache_dir``)."""
    key = None
    if cache_dir is not None:
        h = hashlib.sha256(json.dumps(tower.fingerprint(), sort_keys=True).encode())
        if isinstance(images, np.ndarray):
            h.update(str(images.shape).encode() + str(images.dtype).encode())
            h.update(np.ascontiguousarray(images).tobytes())
        else:
            h.update("\n".join(map(str, images)).encode())
        key = Path(cache_dir) / f"emb-{h.hexdigest()[:20]}.npy"
        if key.is_file():
            return np.load(key, allow_pickle=False)
    r = tower.embed(images, batch_size=batch_size, progress=progress, return_sources=True)
    if r.skipped:
        raise DataError(f"{len(r.skipped)} training images could not be read (first: {r.skipped[0][0]}: "
                        f"{r.skipped[0][1]}): remove them from the pairs")
    if key is not None:
        from zoo.io import atomic_write
        import io

        buf = io.BytesIO()
        np.save(buf, r.outputs, allow_pickle=False)
        atomic_write(key, buf.getvalue())
    return r.outputs


def _given(features, pairs, tower) -> np.ndarray:
    f = np.asarray(features, np.float32)
    if f.ndim != 2 or len(f) != len(pairs) or f.shape[1] != tower.feature_dim:
        raise RecipeError(f"features must be ({len(pairs)}, {tower.feature_dim}) embeddings of the pairs' images "
                          f"by {tower.name}; got shape {f.shape}")
    return f


class _TextSide:
    """Text features for the unique captions: fixed vectors (locked tower) or the top ``layers`` of the
    tower run on cached hidden states of the layers below (trainable)."""

    def __init__(self, tower, captions: list[str], layers: int):
        import keras
        import tensorflow as tf

        self.tower, self.layers = tower, layers
        if layers == 0:
            self.fixed = tf.constant(tower.encode(captions))
            self.variables = []
            return
        bb = tower.backbone
        n = len(bb.transformer_layers)
        if not 0 < layers <= n:
            raise RecipeError(f"text_layers must be in 0..{n}; got {layers}")
        cut = bb.get_layer("embeddings_dropout").output if layers == n else bb.transformer_layers[n - layers - 1].output
        bottom = keras.Model(bb.input, cut)
        ids, mask = tower.tokenize(captions)
        hs = []
        for s in range(0, len(captions), 256):
            hs.append(bottom({"token_ids": ids[s:s + 256], "segment_ids": np.zeros_like(ids[s:s + 256]),
                              "padding_mask": mask[s:s + 256]}, training=False).numpy())
        self.hidden, self.mask = tf.constant(np.concatenate(hs)), tf.constant(mask)
        self.top = bb.transformer_layers[n - layers:]
        for layer in bb.layers:
            layer.trainable = False
        for layer in self.top:
            layer.trainable = True
        self.variables = [v for layer in self.top for v in layer.trainable_variables]

    def __call__(self, cap_ids, training: bool):
        import tensorflow as tf

        if self.layers == 0:
            return tf.gather(self.fixed, cap_ids)
        uniq, inv = tf.unique(cap_ids)  # run the top layers once per distinct caption in the batch
        x, m = tf.gather(self.hidden, uniq), tf.gather(self.mask, uniq)
        for layer in self.top:
            x = layer(x, padding_mask=m, training=training)
        mf = tf.cast(m, x.dtype)[..., None]
        pooled = tf.reduce_sum(x * mf, 1) / tf.maximum(tf.reduce_sum(mf, 1), 1.0)
        return tf.gather(tf.math.l2_normalize(pooled, -1), inv)


def train(pairs, val=None, image_model="efficientnet_lite0", text_model: str = "minilm", mode: str = "lit",
          loss: str = "clip", epochs: int = 10, batch_size: int = 256, dim: int = 256, lr: float = 3e-4,
          weight_decay: float = 1e-4, image_head: str = "mlp", text_head: str = "identity", text_layers: int = 0, text_lr: float = 2e-5,
          queue: int = 0, input_size: int | None = None, augment="light", temperature: float = 0.07,
          templates=None, seed: int = 0, out_dir=None, cache_dir=None, text_weights=None,
          progress: bool = True, max_seconds: float | None = None, image_features=None,
          val_features=None, strategy=None) -> ImageTextModel:
    """Train an image-text model on ``pairs`` (see :func:`read_pairs`; ``val`` likewise, used to keep the
    epoch with the lowest validation loss). Returns an :class:`ImageTextModel`; with ``out_dir`` it is
    saved to ``out_dir/model`` with ``history.json``.

    ``mode``: "lit" (image tower locked, its embeddings cached once; ``cache_dir`` keeps them across
    runs) or "full" (image tower trained too, BatchNorm frozen, ``augment`` on the pixels).
    ``loss``: "clip" (symmetric InfoNCE, learnable temperature starting at ``temperature``, clamped
    at 1/100) or "siglip" (sigmoid loss; t = 10, b = -10 at start as in the paper).
    ``image_head``: "mlp" (default) or "linear"; ``text_head``: "identity" (default: the joint space
    is the text tower's own, so names and wordings never seen in training keep their meaning, and
    ``dim`` is ignored), "linear" or "mlp". ``text_layers``: how many top layers of the text tower to
    train (lr ``text_lr``); 0 locks it. ``queue``: number of earlier pairs kept as extra negatives.
    ``max_seconds`` stops training early (after a step).
    ``image_features`` / ``val_features``: the locked tower's embeddings of the pairs' images, if you
    already have them (LiT only; ``image_model`` must be the tower that made them).
    ``strategy``: any ``tf.distribute`` strategy, as for ``finetune``. With more than one replica
    (LiT with locked towers and no queue) each replica contrasts its share of the batch and the
    gradients are summed.
    """
    import keras
    import tensorflow as tf

    import zoo
    from zoo.model import ZooModel
    from zoo.text import load_text_tower

    if mode not in MODES:
        raise RecipeError(f"mode must be one of {MODES}; got {mode!r}")
    if loss not in LOSSES:
        raise RecipeError(f"loss must be one of {LOSSES}; got {loss!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise RecipeError(f"{name} must be a positive integer; got {v!r}")
    if isinstance(queue, bool) or not isinstance(queue, (int, np.integer)) or queue < 0:
        raise RecipeError(f"queue must be a non-negative integer; got {queue!r}")
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if replicas > 1 and (mode != "lit" or text_layers or queue):
        raise RecipeError(f"a {replicas}-replica strategy trains LiT heads only: use mode='lit', text_layers=0 "
                          "and queue=0 (the feature queue and the towers' own layers are single-replica)")
    if batch_size % replicas:
        raise RecipeError(f"batch_size {batch_size} must be a multiple of the {replicas} replicas")
    pairs = read_pairs(pairs)
    val = read_pairs(val) if val is not None else None
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()

    tower = image_model if isinstance(image_model, ZooModel) else zoo.load(image_model, input_size=input_size)
    text = load_text_tower(text_model, text_weights, shared=text_layers == 0)
    all_caps = pairs.captions + (val.captions if val is not None else [])
    uniq = sorted(set(all_caps))
    where = {c: i for i, c in enumerate(uniq)}
    cap_ids = np.array([where[c] for c in pairs.captions], np.int32)
    val_ids = np.array([where[c] for c in val.captions], np.int32) if val is not None else None
    text_side = _TextSide(text, uniq, int(text_layers))

    if mode == "lit":
        x_train = _given(image_features, pairs, tower) if image_features is not None else \
            _cached_embeddings(tower, pairs.images, cache_dir, 128, progress)
        x_val = None if val is None else _given(val_features, val, tower) if val_features is not None else \
            _cached_embeddings(tower, val.images, cache_dir, 128, progress)
        body = None
    else:
        from zoo.augment import build_augmentation
        from zoo.data import LabeledImages
        from zoo.training import unfreeze_backbone

        body = tower  # trained in place: pass a copy if you need the original
        unfreeze_backbone(body, "all", freeze_bn=True)
        aug = build_augmentation(augment, seed=seed)
        as_set = lambda p, ids: LabeledImages(p.images, ids, uniq)  # noqa: E731  (caption id as the "label")
        x_val = None

    if text_head == "identity":
        dim = text.dim  # the joint space is the text tower's own
    from zoo.training import cosine_adamw

    n = len(pairs)
    steps_per_epoch = max(1, n // batch_size) if n >= batch_size else 1
    total = epochs * steps_per_epoch
    first = tf.VariableAggregation.ONLY_FIRST_REPLICA  # clamped in the step: every replica computes the same
    with strategy.scope():
        ihead = _keras_head(tower.feature_dim, dim, image_head, "image", seed)
        thead = _keras_head(text.dim, dim, text_head, "text", seed + 1)
        scale = tf.Variable(math.log(10.0) if loss == "siglip" else math.log(1.0 / temperature), name="logit_scale",
                            aggregation=first)
        bias = tf.Variable(-10.0 if loss == "siglip" else 0.0, name="logit_bias", trainable=loss == "siglip",
                           aggregation=first)
        head_vars = ihead.trainable_variables + thead.trainable_variables + [scale] + ([bias] if loss == "siglip" else [])
        image_vars = body.embedding_model.trainable_variables if body is not None else []
        opt = cosine_adamw(lr, total, weight_decay, 0.05)
        opt.exclude_from_weight_decay(var_list=[scale, bias])  # decay would pull t and b towards 0
        opt_text = cosine_adamw(text_lr, total, 0.0, 0.05) if text_side.variables else None
        opt_image = cosine_adamw(lr * 0.05, total, weight_decay, 0.05) if image_vars else None
        if replicas > 1:
            opt.build(head_vars)  # its slots now, not inside the first distributed step
        qd = int(queue)
        q_img = tf.Variable(tf.zeros([max(qd, 1), dim]), trainable=False)
        q_txt = tf.Variable(tf.zeros([max(qd, 1), dim]), trainable=False)
        q_ids = tf.Variable(-tf.ones([max(qd, 1)], tf.int32), trainable=False)
        q_ptr = tf.Variable(0, trainable=False)

    def compute(x, ids, training, use_queue):
        if body is not None and training:
            feats = body.embedding_model(x, training=True)
        else:
            feats = x
        zi = tf.math.l2_normalize(ihead(feats, training=training), -1)
        zt = tf.math.l2_normalize(thead(text_side(ids, training), training=training), -1)
        kw = dict(image_queue=q_img, text_queue=q_txt, queue_ids=q_ids) if use_queue else {}
        value = (clip_loss(zi, zt, scale, ids, **kw) if loss == "clip"
                 else siglip_loss(zi, zt, scale, bias, ids, **kw))
        return value, zi, zt

    def replica_step(x, ids):
        with tf.GradientTape() as tape:
            value, zi, zt = compute(x, ids, True, qd > 0)
            share = value / replicas  # the optimizer sums the replicas' gradients
        groups = [(opt, head_vars)] + ([(opt_text, text_side.variables)] if opt_text else []) \
            + ([(opt_image, image_vars)] if opt_image else [])
        grads = tape.gradient(share, [v for _, vs in groups for v in vs])
        i = 0
        for o, vs in groups:
            o.apply_gradients(zip(grads[i:i + len(vs)], vs))
            i += len(vs)
        scale.assign(tf.clip_by_value(scale, 0.0, MAX_LOGIT_SCALE))
        if qd > 0:  # enqueue this batch (ring buffer)
            b = tf.shape(ids)[0]
            slots = (q_ptr + tf.range(b)) % qd
            q_img.scatter_nd_update(slots[:, None], tf.stop_gradient(zi))
            q_txt.scatter_nd_update(slots[:, None], tf.stop_gradient(zt))
            q_ids.scatter_nd_update(slots[:, None], ids)
            q_ptr.assign((q_ptr + b) % qd)
        return value

    @tf.function
    def train_step(x, ids):
        if replicas == 1:
            return replica_step(x, ids)
        return strategy.reduce("MEAN", strategy.run(replica_step, args=(x, ids)), axis=None)

    def shares(x, ids):
        if replicas == 1 or int(ids.shape[0]) % replicas:
            return x, ids
        return tuple(strategy.experimental_distribute_values_from_function(
            lambda ctx, t=t: tf.split(t, replicas)[ctx.replica_id_in_sync_group]) for t in (x, ids))

    @tf.function
    def eval_step(x, ids):
        return compute(x, ids, False, False)[0]

    def val_loss():
        if val is None:
            return None
        if mode == "lit":
            xs = x_val
        else:
            xs = tower.embed(val.images, batch_size=64, progress=False)
        vals, w = [], []
        for s in range(0, len(val), batch_size):
            ids = tf.constant(val_ids[s:s + batch_size])
            vals.append(float(eval_step(tf.constant(xs[s:s + batch_size]), ids)))
            w.append(len(ids))
        return float(np.average(vals, weights=w))

    history = {"loss": [], "val_loss": [], "logit_scale": [], "seconds": []}
    best, best_state = None, None
    rng = np.random.default_rng(seed)
    stopped = False
    for epoch in range(epochs):
        te = time.perf_counter()
        losses = []
        if mode == "lit":
            order = rng.permutation(n)
            batches = ((x_train[order[s:s + batch_size]], cap_ids[order[s:s + batch_size]])
                       for s in range(0, steps_per_epoch * batch_size, batch_size) if len(order[s:s + batch_size]))
        else:
            ds = as_set(pairs, cap_ids).batches(tower.input_size, batch_size, shuffle=True, seed=seed + epoch)
            if aug is not None:
                ds = ds.map(lambda a, y: (aug(a, training=True), y))
            batches = ((a, y) for a, y in ds.take(steps_per_epoch))
        for x, ids in batches:
            x, ids = tf.convert_to_tensor(x, tf.float32), tf.cast(ids, tf.int32)
            if replicas > 1 and int(ids.shape[0]) % replicas:
                continue  # a last short batch that does not split evenly
            losses.append(float(train_step(*shares(x, ids))))
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                stopped = True
                break
        v = val_loss()
        history["loss"].append(float(np.mean(losses)))
        history["val_loss"].append(v if v is not None else float("nan"))
        history["logit_scale"].append(float(scale.numpy()))
        history["seconds"].append(time.perf_counter() - te)
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}"
                  + (f", val_loss {v:.4f}" if v is not None else "") + f", temperature "
                  f"{math.exp(-history['logit_scale'][-1]):.4f}, {history['seconds'][-1]:.1f}s", file=sys.stderr)
        if v is not None and (best is None or v < best):
            best = v
            best_state = [w.numpy() for w in head_vars + text_side.variables + image_vars] + [bias.numpy()]
        if stopped:
            log.warning("stopped after %.0f s (max_seconds)", time.perf_counter() - t0)
            break
    if best_state is not None:
        for w, val_w in zip(head_vars + text_side.variables + image_vars + [bias], best_state):
            w.assign(val_w)
    if text_side.variables:
        text.changed()
    if body is not None:
        body._weights_digest = None
        body._fns = {}

    model = ImageTextModel(tower, text, _numpy_head(ihead), _numpy_head(thead), float(scale.numpy()),
                           float(bias.numpy()) if loss == "siglip" else None, loss,
                           templates=templates or DEFAULT_TEMPLATES, text_trained=bool(text_side.variables),
                           image_trained=body is not None)
    model.seen_text = l2(model.text_head(text.encode(sorted(set(pairs.captions)))))
    model.history = history
    model.training_config = {"mode": mode, "loss": loss, "epochs": epochs, "batch_size": batch_size, "dim": dim,
                             "lr": lr, "weight_decay": weight_decay, "image_head": image_head,
                             "text_head": text_head,
                             "text_layers": int(text_layers), "queue": qd, "temperature": temperature,
                             "seed": seed, "pairs": n, "val_pairs": len(val) if val is not None else 0,
                             "seconds": round(time.perf_counter() - t0, 1), "stopped_early": stopped}
    if out_dir is not None:
        out = Path(out_dir)
        model.save(out / "model")
        from zoo.io import atomic_write

        atomic_write(out / "history.json", json.dumps(history, indent=2))
    return model
