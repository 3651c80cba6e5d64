"""Faster CPU inference: the same ``embed`` / ``predict`` / ``classify`` calls through TFLite
(XNNPACK) or ONNX Runtime.

```python
m = zoo.runtimes.compile_model(zoo.load("efficientnet_lite0"), "tflite")  # zoo.load(..., runtime="tflite")
m.embed(images)                     # the TensorFlow model's rows (cosine 0.9999999), faster on CPU
e = zoo.runtimes.open_export("clf.tflite").predict(images)                # any file zoo.export wrote
```
``compile_model`` exports the model once with float32 pixel input (so zoo's own decode and
resize feed it unrounded) and caches the file under ``$ZOO_HOME/runtimes`` keyed by the digest
of its weights and the library versions. Everything but embed/predict/classify (``features``,
``finetune``, ``save``, ``fingerprint``...) is the wrapped TensorFlow model's: an index built
with one runtime is searched with another. Few-shot heads and verifiers get their ``model``
swapped for the compiled one.

Measured on the 2-core AVX2 CPU (``bench/runtimes.py``, efficientnet_lite0 at 224 px, batch 32,
ratios to ``m.embed`` through TensorFlow in the same run, machine shared with other jobs, load
7-11): from in-memory arrays TFLite fp32 2.2-2.8x with cosine 0.9999998, ONNX Runtime fp32
1.9-2.0x; from JPEG files TFLite 1.7-3.1x, ONNX Runtime 1.7-2.0x. TFLite int8 about 3.8x but
top-1 agreement with the float model only 95% on Fashion-MNIST (dynamic-range: 98%, no faster).
TFLite runs through ``ai_edge_litert`` when installed (TensorFlow 2.21 deprecates
``tf.lite.Interpreter`` in its favour), else ``tf.lite.Interpreter``; both use XNNPACK.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

log = logging.getLogger(__name__)
RUNTIMES = ("tensorflow", "tflite", "onnxruntime")
BATCH_SIZE = 32


class RuntimeModelError(ZooError, ValueError):
    """An unknown runtime, or a model file a runtime cannot run."""


def cpu_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise RuntimeModelError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    return runtime


# ---- runners: one compiled file, named numpy inputs -> named numpy outputs -------------------
class TFLiteRunner:
    """A TFLite model on XNNPACK with ``num_threads`` threads (default: the cores we may use)."""

    runtime = "tflite"

    def __init__(self, model_path, num_threads: int | None = None, use_litert: bool = True):
        try:
            if not use_litert:
                raise ImportError
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        self.path = Path(model_path)
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads or cpu_threads())
        sig = self.interpreter.get_signature_list()
        if not sig:
            raise RuntimeModelError(f"{model_path} has no signature: export it with zoo.export")
        self.key = next(iter(sig))
        self.runner = self.interpreter.get_signature_runner(self.key)
        self.inputs = {k: v["dtype"] for k, v in self.runner.get_input_details().items()}
        self.lock = threading.Lock()  # an interpreter runs one call at a time

    def __call__(self, **inputs) -> dict:
        feed = {k: np.ascontiguousarray(v, self.inputs[k]) for k, v in inputs.items()}
        with self.lock:
            return {k: np.array(v) for k, v in self.runner(**feed).items()}  # copies: buffers are reused


class OnnxRunner:
    """An ONNX model on ONNX Runtime's CPU provider with ``num_threads`` intra-op threads."""

    runtime = "onnxruntime"

    def __init__(self, model_path, num_threads: int | None = None):
        from zoo.extras import require

        ort = require("onnxruntime", "runtime='onnxruntime'")
        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads or cpu_threads()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(model_path)
        self.session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        types = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}
        self.inputs = {i.name: types.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs) -> dict:
        feed = {k: np.ascontiguousarray(v, self.inputs[k]) for k, v in inputs.items()}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))


def open_runner(path, runtime: str | None = None, num_threads: int | None = None):
    """A runner for a ``.tflite`` or ``.onnx`` file (runtime from the suffix unless given)."""
    path = Path(path)
    runtime = runtime or {".tflite": "tflite", ".onnx": "onnxruntime"}.get(path.suffix)
    if runtime == "tflite":
        return TFLiteRunner(path, num_threads)
    if runtime == "onnxruntime":
        return OnnxRunner(path, num_threads)
    raise RuntimeModelError(f"{path}: no runtime runs this file; pass a .tflite or .onnx export")


# ---- the model -------------------------------------------------------------------------------
class RuntimeModel:
    """A model's ``embed`` / ``predict`` / ``classify`` run by a compiled file.

    ``model``: the TensorFlow model it was compiled from (other attributes are delegated to it),
    or None for a bare export (then ``metadata`` says the input size, resize method and labels).
    """

    def __init__(self, runner, metadata: dict, model=None, batch_size: int = BATCH_SIZE):
        self.runner, self.metadata, self.model = runner, metadata, model
        self.runtime = runner.runtime
        self.batch_size = int(batch_size)
        self.input_name = next(iter(runner.inputs))
        self.input_dtype = runner.inputs[self.input_name]
        self.input_size = int(metadata["inputs"][0]["shape"][1])
        self.method = (metadata.get("preprocessing") or {}).get("interpolation", "bilinear")

    def __getattr__(self, name):  # everything else is the TensorFlow model's
        model = self.__dict__.get("model")
        if model is None:
            raise AttributeError(f"a bare {self.__dict__.get('runtime')} export has no {name!r}")
        return getattr(model, name)

    def __repr__(self):
        return f"<RuntimeModel {self.runtime} of {self.model!r}>" if self.model is not None else \
            f"<RuntimeModel {self.runtime} {self.metadata.get('kind')} {self.input_size}px>"

    @property
    def labels(self):
        return self.metadata.get("labels") or (self.model.labels if self.model is not None else None)

    @property
    def feature_dim(self) -> int:
        return int(self.metadata["outputs"]["embedding"]["shape"][-1])

    def _pixels(self, batch: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.uint8:
            from zoo.images import as_uint8

            return as_uint8(batch)
        return batch

    def _run(self, output: str, images, batch_size, progress, value_range, flip_tta=False):
        """One output of the compiled graph over ``images``, through zoo's one inference loop."""
        from zoo import inference

        inference.check_batch_size(batch_size)
        if output not in self.metadata["outputs"]:
            raise RuntimeModelError(f"this {self.metadata.get('kind')} export has no {output!r} output "
                                    f"(it has {', '.join(self.metadata['outputs'])})")

        def call(x):
            x = self._pixels(np.asarray(x))
            y = self.runner(**{self.input_name: x})[output]
            return 0.5 * (y + self.runner(**{self.input_name: x[:, :, ::-1]})[output]) if flip_tta else y
        r = inference.run(call, inference.resized(images, self.input_size, batch_size, self.method, value_range),
                          what=f"{output} ({self.runtime})", progress=progress)
        return r._replace(outputs=np.asarray(r.outputs, np.float32))

    def embed(self, images, batch_size: int | None = None, normalize: bool = False, progress: bool = True,
              return_sources: bool = False, value_range: str = "auto"):
        """(N, D) float32 embeddings, as ``ZooModel.embed``."""
        r = self._run("embedding", images, batch_size or self.batch_size, progress, value_range)
        e = r.outputs
        if normalize:
            e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return r._replace(outputs=e) if return_sources else e

    def predict(self, images, batch_size: int | None = None, tta: bool = False, return_sources: bool = False,
                value_range: str = "auto", progress: bool = False):
        """(N, classes) probabilities, as ``ZooModel.predict`` / ``FineTunedClassifier.predict``."""
        r = self._run("probabilities", images, batch_size or self.batch_size, progress, value_range, tta)
        return r if return_sources else r.outputs

    def classify(self, images, top_k: int = 5, batch_size: int | None = None, return_sources: bool = False,
                 **kwargs):
        from zoo.labels import check_top_k, top_classes

        check_top_k(top_k)
        r = self.predict(images, batch_size, return_sources=True, **kwargs)
        out = top_classes(r.outputs, self.labels, top_k)
        return r._replace(outputs=out) if return_sources else out

    def run(self, images, batch_size: int | None = None, value_range: str = "auto") -> dict:
        """Every output of the graph (e.g. a few-shot head's probabilities, confidence, unknown)."""
        from zoo import inference

        stream = inference.resized(images, self.input_size, batch_size or self.batch_size, self.method, value_range)
        return inference.run(lambda x: self.runner(**{self.input_name: self._pixels(np.asarray(x))}), stream,
                             what=f"run ({self.runtime})", progress=False).outputs


# ---- compiling and opening -------------------------------------------------------------------
def cache_dir() -> Path:
    from zoo.weights.resolve import zoo_home

    return zoo_home() / "runtimes"


def _cache_key(sig, runtime, quantize) -> str:
    import keras
    import tensorflow as tf

    from zoo import __version__
    from zoo.export import graph_digest

    blob = json.dumps([graph_digest(sig.model), sig.model.name, runtime, quantize, __version__, tf.__version__,
                       keras.__version__, sig.metadata.get("kind")])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def compile_model(model, runtime: str = "tflite", quantize: str | None = None, calibration=None,
                  batch_size: int = BATCH_SIZE, num_threads: int | None = None, cache: bool = True):
    """``model`` with embed/predict/classify run by ``runtime`` ("tflite" or "onnxruntime").

    A few-shot head or verifier (anything with a ``.model``) gets its model compiled in place and
    is returned. ``runtime="tensorflow"`` returns ``model`` unchanged.
    """
    from zoo.export import export, read_metadata, signature_of

    check_runtime(runtime)
    if runtime == "tensorflow":
        return model
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "embedding_model") and not hasattr(model, "embedding_model"):
        model.model = compile_model(inner, runtime, quantize, calibration, batch_size, num_threads, cache)
        return model
    if isinstance(model, RuntimeModel):
        model = model.model
    sig = signature_of(model, "float32")
    ext = "tflite" if runtime == "tflite" else "onnx"
    path = cache_dir() / f"{model.name}-{model.input_size}-{_cache_key(sig, runtime, quantize)}.{ext}"
    meta = None
    if cache and path.is_file():
        try:
            meta = read_metadata(path)
        except ZooError as exc:
            log.warning("recompiling %s: %s", path, exc)
    if meta is None:
        log.info("compiling %s for %s (once; cached in %s)", model.name, runtime, path.parent)
        export(model, path, ext, quantize, calibration, input_dtype="float32")
        meta = read_metadata(path)
    return RuntimeModel(open_runner(path, runtime, num_threads), meta, model, batch_size)


def open_export(path, runtime: str | None = None, batch_size: int = BATCH_SIZE, num_threads: int | None = None):
    """A :class:`RuntimeModel` over a file or folder written by :func:`zoo.export.export`."""
    from zoo.export import FORMATS, read_metadata

    path = Path(path)
    meta = read_metadata(path)
    f = path / meta["file"] if path.is_dir() else path
    if meta["export_format"] not in ("tflite", "onnx"):
        raise RuntimeModelError(f"{path} is a {meta['export_format']} export: load it with tf.saved_model.load, "
                            f"or export as {'/'.join(k for k in FORMATS if k != 'saved_model')}")
    return RuntimeModel(open_runner(f, runtime, num_threads), meta, None, batch_size)


# ---- the default for bulk jobs (index building, few-shot, verification pairs) ----------------
AUTO_MIN_IMAGES = 200  # below this the one-off conversion (about 4 s for Lite0 here) outweighs the gain
_bulk_cache = None  # model -> its compiled RuntimeModel, per process


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def bulk_runtime(runtime: str = "auto", n_images: int | None = None) -> str:
    """The runtime a bulk embedding job uses. ``"auto"`` (or ``$ZOO_RUNTIME``) means TFLite on a
    machine without a GPU (bench/runtimes.py: 1.7-3.1x TensorFlow's img/s for Lite0 on the
    2-core CPU, cosine 0.9999998), TensorFlow on a GPU or for jobs under ``AUTO_MIN_IMAGES``."""
    runtime = os.environ.get("ZOO_RUNTIME", runtime) if runtime == "auto" else runtime
    if runtime != "auto":
        return check_runtime(runtime)
    if (n_images is not None and n_images < AUTO_MIN_IMAGES) or has_gpu():
        return "tensorflow"
    return "tflite"


def bulk_model(model, runtime: str = "auto", n_images: int | None = None):
    """``model`` run by :func:`bulk_runtime`'s choice: compiled once per process (and cached on
    disk). A model that does not convert stays on TensorFlow, with a warning."""
    import weakref

    global _bulk_cache
    if model is None or isinstance(model, RuntimeModel) or getattr(model, "kind", None) != "backbone":
        return model
    chosen = bulk_runtime(runtime, n_images)
    if chosen == "tensorflow":
        return model
    _bulk_cache = _bulk_cache if _bulk_cache is not None else weakref.WeakKeyDictionary()
    key = (chosen, model.fingerprint())
    held = _bulk_cache.get(model)
    if held is not None and held[0] == key:
        return held[1]
    try:
        fast = compile_model(model, chosen)
    except Exception as exc:  # noqa: BLE001 - any converter failure: TensorFlow still gives the answer
        if runtime != "auto":
            raise
        log.warning("%s does not convert to %s (%s); embedding with TensorFlow", model.name, chosen, exc)
        fast = model
    _bulk_cache[model] = (key, fast)
    return fast
