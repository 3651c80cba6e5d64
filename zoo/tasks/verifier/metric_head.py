"""Metric learning of a linear head over frozen embeddings (TensorFlow, balanced batches)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def _loss_fn(kind: str, temperature: float, margin: float):
    def loss(z, y):
        s = tf.matmul(z, z, transpose_b=True)
        same = tf.cast(tf.equal(y[:, None], y[None, :]), tf.float32)
        eye = tf.eye(tf.shape(z)[0])
        pos = same - eye
        if kind == "contrastive":  # pull genuine cosine to 1, push impostors below the margin
            per = pos * (1.0 - s) ** 2 + (1.0 - same) * tf.nn.relu(s - margin) ** 2
            return tf.reduce_sum(per) / tf.reduce_sum(1.0 - eye)
        logits = s / temperature - 1e9 * eye  # supervised contrastive (Khosla et al. 2020)
        log_p = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
        return -tf.reduce_mean(tf.reduce_sum(pos * log_p, 1) / tf.maximum(tf.reduce_sum(pos, 1), 1.0))
    return loss


def train_linear_head(e: np.ndarray, y: np.ndarray, loss: str = "supcon", steps: int = 300, lr: float = 1e-3,
                      anchor: float = 0.3, classes_per_batch: int = 16, per_class: int = 16,
                      temperature: float = 0.1, margin: float = 0.5, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(W (D, D), history): embeddings ``e @ W`` (then L2-normalised) trained on labels ``y``."""
    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    x = (e / np.linalg.norm(e, axis=1).mean()).astype(np.float32)  # scale only: cosine ignores it
    d = x.shape[1]
    eye = tf.eye(d)
    w = tf.Variable(eye)
    opt = tf.keras.optimizers.Adam(lr)
    fn = _loss_fn(loss, temperature, margin)

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            z = tf.math.l2_normalize(tf.matmul(xb, w), axis=1)
            value = fn(z, yb)
            total = value + anchor * tf.reduce_sum((w - eye) ** 2)
        opt.apply_gradients([(tape.gradient(total, w), w)])
        return value

    by_class = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
    history = []
    for _ in range(steps):
        cls = rng.choice(len(by_class), classes_per_batch, replace=False)
        rows = np.concatenate([rng.choice(by_class[c], per_class, replace=len(by_class[c]) < per_class) for c in cls])
        history.append(float(step(x[rows], y[rows].astype(np.int32))))
    return w.numpy(), {"loss": history}
