"""A Keras callback that draws training progress and curves on a Streamlit page as it trains."""
from __future__ import annotations

import time

import keras
import pandas as pd
import streamlit as st


class StreamlitProgress(keras.callbacks.Callback):
    """Progress bar per batch and loss/accuracy curves per epoch, across training phases.

    ``phases``: ``[(name, epochs[, cost per epoch]), ...]`` in the order ``fit`` is called (for
    the zoo's fine-tuning: the head on cached features, then the unfrozen network); each ``fit``
    call starts the next phase. Costs weight the bar so that it moves with time rather than with
    epochs (a head epoch on cached features is far cheaper than a full-network epoch);
    ``prelude`` is the cost of work done before the first ``fit`` (e.g. caching features), counted
    when it begins. Drawing is throttled to ``every`` seconds per batch.
    """

    def __init__(self, phases, bar=None, chart=None, prelude: float = 0.0, every: float = 0.3):
        super().__init__()
        self.phases = [(p[0], int(p[1]), float(p[2]) if len(p) > 2 else 1.0) for p in phases if int(p[1]) > 0]
        self.prelude = float(prelude)
        self.total = max(1e-9, self.prelude + sum(e * w for _, e, w in self.phases))
        self.bar = bar if bar is not None else st.progress(0.0, text="starting")
        self.chart = chart if chart is not None else st.empty()
        self.every = every
        self.phase = -1
        self.done = 0.0        # cost of the work finished so far
        self.rows: list[dict] = []
        self._last = 0.0

    @property
    def _current(self):
        return self.phases[min(max(self.phase, 0), len(self.phases) - 1)] if self.phases else ("training", 1, 1.0)

    @property
    def phase_name(self) -> str:
        return self._current[0]

    def on_train_begin(self, logs=None):
        if self.phase < 0:
            self.done += self.prelude
        self.phase += 1
        self.steps = int(self.params.get("steps") or 1)
        self.epoch_in_phase = 0
        self._draw_bar(0, force=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_in_phase = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._draw_bar(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.done += self._current[2]
        logs = {k: float(v) for k, v in (logs or {}).items() if k in (
            "loss", "accuracy", "val_loss", "val_accuracy")}
        self.rows.append({"epoch": len(self.rows) + 1, "phase": self.phase_name, **logs})
        self._draw_bar(self.steps, logs, force=True, epoch_done=True)
        self.draw_curves()

    def _draw_bar(self, batch, logs=None, force=False, epoch_done=False):
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        name, n_phase, cost = self._current
        batch = min(batch, self.steps)
        partial = 0.0 if epoch_done else cost * batch / self.steps
        frac = min(1.0, (self.done + partial) / self.total)
        loss = f" · loss {logs['loss']:.3f}" if logs and "loss" in logs else ""
        self.bar.progress(frac, text=f"{name}: epoch {self.epoch_in_phase + 1}/{n_phase} · "
                                     f"batch {batch}/{self.steps}{loss}")

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def draw_curves(self):
        df = self.frame()
        if df.empty:
            return
        with self.chart.container():
            draw_curves(df)


def draw_curves(df: pd.DataFrame):
    """Two line charts (loss, accuracy) of a per-epoch frame with train and val columns."""
    cols = st.columns(2)
    for col, metric in zip(cols, ("loss", "accuracy")):
        ys = [c for c in (metric, f"val_{metric}") if c in df]
        with col:
            st.caption(metric)
            if ys:
                st.line_chart(df.set_index("epoch")[ys], height=220)


def history_frame(history: dict, head_epochs: int = 0, epochs: int = 0) -> pd.DataFrame:
    """A per-epoch frame from ``FineTunedClassifier.history`` (drawn after training)."""
    n = len(history.get("loss", []))
    starts = list(history.get("phase_starts", [])) or [0]
    names = [p for p, e in (("head (frozen backbone)", head_epochs), ("full network", epochs)) if e > 0]
    names = names if len(names) == len(starts) else [f"phase {i + 1}" for i in range(len(starts))]
    phase = [names[sum(e >= s for s in starts) - 1] for e in range(n)]
    df = pd.DataFrame({"epoch": range(1, n + 1), "phase": phase})
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if len(history.get(k, [])) == n:
            df[k] = history[k]
    return df
