"""The one inference loop: any input -> batches on zoo's pixel path -> a traced call -> per-kind results.

Every kind predicts through :func:`run`: the backbone (embed, features, ImageNet classes), the
compiled runtimes (TFLite, ONNX Runtime), the tasks (a classifier's probabilities, a segmenter's
maps in each image's own size, a detector's boxes in each image's own pixels), evaluation on
labelled data and the trainer's cached features. What differs by kind is a *stream* (how images
become fixed-size batches: :func:`resized`, :func:`letterboxed`, :func:`labelled`) and a
*postprocess* hook (batch outputs -> per-image results). The loop itself shows progress (images/s,
ETA), keeps track of which input each row is and which were skipped, and pads the last batch
where a traced call takes one batch size.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

import numpy as np

from zoo.errors import ImageError, InputShapeError

log = logging.getLogger(__name__)


class Embedded(NamedTuple):
    """What one call read: its outputs, the source of each row (path or index), and the
    ``(source, reason)`` of every input that was skipped."""

    outputs: object
    sources: list
    skipped: list


class Progress:
    """A terminal progress line with images/s and ETA (quiet when disabled or one batch)."""

    def __init__(self, total: int | None, what: str, enabled: bool = True):
        self.total, self.what, self.done = total, what, 0
        self.enabled = enabled and (total is None or total > 1)
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, n: int):
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.5 and (self.total is None or self.done < self.total)):
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = f", ETA {(self.total - self.done) / rate:.0f}s" if self.total and rate > 0 else ""
        of = f"/{self.total}" if self.total else ""
        print(f"\r{self.what}: {self.done}{of} images, {rate:.1f} img/s{eta}   ", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.enabled and self.done:
            print(file=sys.stderr, flush=True)


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputShapeError(f"batch_size must be a positive integer; got {batch_size!r}")


@dataclass
class Batch:
    """Pixels (B, S, S, 3) float32 in [0, 255], the source of each row, and per-row facts a
    postprocess hook needs (letterbox geometry, the image's own size) or labels."""

    pixels: object
    sources: list
    items: list | None = None
    labels: np.ndarray | None = None


@dataclass
class Stream:
    """Batches of one call's images; ``total`` images were given, ``skipped`` could not be read."""

    batches: Iterator[Batch]
    total: int | None
    skipped: list = field(default_factory=list)


# ---- streams ---------------------------------------------------------------------------------------
def resized(images, size: int, batch_size: int, method: str = "bilinear", value_range: str = "auto",
            shapes: bool = False) -> Stream:
    """Every image resized to ``size`` x ``size`` (:func:`zoo.images.batches`: files decoded in
    parallel, unreadable ones skipped). ``shapes=True`` puts each image's own (H, W) in ``items``."""
    from zoo import images as zimages

    if shapes:
        images = zimages.materialize(images)
    src = zimages.batches(images, size, batch_size, method, value_range=value_range)
    stream = Stream(iter(()), (len(src.sources) + len(src.skipped)) or None, list(src.skipped))

    def gen():
        done = 0
        seen = set()
        for b in src.dataset:
            if isinstance(b, tuple):  # files: (index into src.sources, pixels); failed decodes are missing
                idx, b = [int(i) for i in b[0].numpy()], b[1]
            else:
                idx = list(range(done, done + int(b.shape[0])))
            done += len(idx)
            seen.update(idx)
            srcs = [src.sources[i] if src.sources else i for i in idx]
            items = [zimages.original_shape(images, s) for s in srcs] if shapes else None
            yield Batch(b, srcs, items)
        for i in sorted(set(range(len(src.sources))) - seen):  # the files' decoder dropped these
            stream.skipped.append((src.sources[i], "decode failed"))
            log.warning("skipping %s: could not decode", src.sources[i])

    stream.batches = gen()
    return stream


def letterboxed(images, size: int, batch_size: int, value_range: str = "auto", fill: float = 114.0) -> Stream:
    """Every image letterboxed into ``size`` x ``size`` (aspect kept, centred, ``fill`` around it);
    ``items`` hold each row's (scale, pad, own shape) to map boxes back (:func:`zoo.images.letterboxed`)."""
    from zoo import images as zimages

    src = zimages.letterboxed(images, size, value_range, fill)

    def gen():
        for chunk in src.chunks(batch_size):
            yield Batch(np.stack([c.canvas for c in chunk]), [c.source for c in chunk], chunk)

    return Stream(gen(), src.total, src.skipped)


def labelled(data, size: int, batch_size: int) -> Stream:
    """Batches of a labelled collection (``zoo.data``: ``batches(size, batch_size)`` of (x, y))."""
    def gen():
        done = 0
        for x, y in data.batches(size, batch_size):
            n = int(x.shape[0])
            yield Batch(x, list(range(done, done + n)), labels=np.asarray(y))
            done += n

    return Stream(gen(), len(data) if hasattr(data, "__len__") else None)


# ---- the loop --------------------------------------------------------------------------------------
def _to_numpy(y):
    import tensorflow as tf

    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), y)


def _concat(parts):
    import tensorflow as tf

    if isinstance(parts[0], list):
        return [r for p in parts for r in p]
    return tf.nest.map_structure(lambda *xs: np.concatenate(xs), *parts)


def run(fn: Callable, stream: Stream, *, postprocess: Callable | None = None, what: str = "predict",
        progress: bool = True, pad_to: int | None = None) -> Embedded:
    """Run ``fn`` (pixels -> outputs, usually a traced call) over ``stream``.

    ``postprocess(outputs, batch)`` turns a batch's numpy outputs into per-image results (a list)
    or arrays; arrays are concatenated, lists joined. ``pad_to``: the batch size a traced call was
    traced for (the last batch is padded with copies of its first row and the extra rows dropped).
    A labelled stream's outputs come back as ``(outputs, labels)``.
    """
    import tensorflow as tf

    bar = Progress(stream.total, what, progress)
    outs, labels, sources = [], [], []
    try:
        for b in stream.batches:
            x, n = b.pixels, len(b.sources)
            if pad_to is not None and n < pad_to:
                x = np.concatenate([np.asarray(x), np.repeat(np.asarray(x)[:1], pad_to - n, axis=0)])
            y = _to_numpy(fn(tf.convert_to_tensor(x, tf.float32)))
            if pad_to is not None and n < pad_to:
                y = tf.nest.map_structure(lambda a: a[:n], y)
            outs.append(postprocess(y, b) if postprocess is not None else y)
            if b.labels is not None:
                labels.append(b.labels)
            sources.extend(b.sources)
            bar.update(n)
    except tf.errors.InvalidArgumentError as exc:
        if "NaN or infinite" in str(exc):
            raise InputShapeError("images contain NaN or infinite values") from None
        raise
    finally:
        bar.close()
    if not outs:
        first = f": {stream.skipped[0][0]} ({stream.skipped[0][1]})" if stream.skipped else ""
        raise ImageError(f"none of the {stream.total or len(stream.skipped)} images could be read{first}")
    result = _concat(outs)
    if labels:
        result = (result, np.concatenate(labels))
    return Embedded(result, sources, list(stream.skipped))


def traced(model, size: int, batch_size: int | None = None, flip_tta: bool = False, post: Callable | None = None):
    """A ``tf.function`` of ``model`` on float pixel batches (``batch_size`` fixes the batch
    dimension); ``flip_tta`` averages it with the mirrored images'; ``post`` is traced after it."""
    import tensorflow as tf

    def call(x):
        y = model(x, training=False)
        if flip_tta:
            y = tf.nest.map_structure(lambda a, b: 0.5 * (a + b), y, model(tf.reverse(x, [2]), training=False))
        return post(y) if post is not None else y
    return tf.function(call, input_signature=[tf.TensorSpec((batch_size, size, size, 3), tf.float32)])
