"""Export a model for serving: TensorFlow SavedModel, TFLite or ONNX, preprocessing included.

```python
zoo.export.export(m, "out/", format="tflite")                        # or m.export(...)
zoo.export.export(clf, "clf.onnx", format="onnx", quantize="int8", calibration=images)
```
The exported graph takes raw ``uint8`` RGB images ``(N, H, W, 3)`` at the model's input size
(input name ``images``) and holds the normalisation, so a serving stack needs nothing from this
toolkit: it resizes to ``export.json["input"]["shape"]`` and feeds the pixels. Outputs by kind:

=============  =======================================================================
backbone       ``embedding`` (N, D); ``probabilities`` (N, 1000) if it has the ImageNet head
classifier     ``probabilities`` (N, classes), ``embedding`` (N, D)
few-shot head  ``probabilities`` (N, classes), ``confidence`` (N,), ``unknown`` (N,) bool
               (support set, centring and unknown threshold are constants of the graph)
verifier       ``embedding`` (N, D), L2-normalised (head included); ``threshold`` in export.json
               (``pair=True``: inputs ``images_a``/``images_b``, outputs ``score``, ``same``)
segmenter      ``probabilities`` (N, S, S, C), ``classes`` (N, S, S) at the input size
detector       ``boxes`` (N, D, 4) xyxy, ``scores``, ``labels``, ``count`` after NMS, on a
               letterboxed input (SavedModel and ONNX; TFLite has no combined NMS)
image-text     ``embedding`` (N, dim) in the joint space; ``class_names=[...]`` adds zero-shot
               ``probabilities`` (text vectors as constants)
=============  =======================================================================

``out`` is a folder (``model.tflite`` / ``model.onnx`` / the SavedModel itself, plus
``export.json``), or a file path ending in ``.tflite`` / ``.onnx`` (then the metadata is written
beside it as ``<file>.json``; ONNX files also carry it in their ``metadata_props``). Writes are
atomic: a folder is built aside and swapped in; a file goes through a temp file and a rename.

**Adding a kind**: give the class a method
``export_signature(input_dtype="uint8", **options) -> Signature`` returning a Keras model with one
input per image tensor (``(None, H, W, 3)`` of ``input_dtype``, made with :func:`pixel_input`)
and a dict of named outputs, plus the metadata a server needs (labels, thresholds, box format).
The pieces the built-in kinds use are public for that: :func:`backbone_trunk`, :func:`without_head`,
:func:`model_metadata` and :func:`export_layers`.
Everything else (the three formats, quantisation, metadata, atomic writes, the CLI) is shared.
Keras models only: TFLite's converter freezes a Keras model's weights, but not those of an
arbitrary ``tf.Module`` here (measured: a 200 kB file of unfrozen variables that outputs NaN).

Quantisation: ``"dynamic"`` stores weights as int8 (no data needed); ``"int8"`` also quantises
activations, calibrated on ``calibration`` images (any input ``m.embed`` takes; 100-500 from the
deployment domain). SavedModel exports are float32 only.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo import io as zio
from zoo.errors import ZooError

log = logging.getLogger(__name__)

FORMATS = {"saved_model": None, "tflite": "model.tflite", "onnx": "model.onnx"}
QUANTIZE = (None, "dynamic", "int8")
META_FILE = "export.json"
EXPORT_FORMAT, EXPORT_VERSION = "zoo.export", 1
ONNX_OPSET = 17
CALIBRATION_IMAGES = 256  # at most this many calibration images are used


class ExportError(ZooError, ValueError):
    """A model that cannot be exported as asked (kind, format, quantisation, calibration)."""


@dataclass
class Signature:
    """What a kind exports: a Keras model on pixel input with named outputs, and metadata."""

    model: object                       # keras.Model: inputs (None, H, W, 3); outputs {name: tensor}
    metadata: dict = field(default_factory=dict)   # kind, labels, threshold, ... (JSON-able)


# ---- building blocks for export_signature ----------------------------------------------------
def pixel_input(size: int, dtype: str = "uint8", name: str = "images"):
    """(keras.Input (None, size, size, 3) of ``dtype``, the same pixels as float32 in [0, 255])."""
    import keras

    raw = keras.Input((size, size, 3), dtype=dtype, name=name)
    return raw, export_layers().ToFloat(name=f"{name}_to_float")(raw)


@functools.cache
def export_layers():
    """The export layers (ToFloat, FewShotHead, L2Normalize, PairScore, ArgMax) for custom kinds' signatures,
    defined on first use so that importing this module does not import Keras."""
    import keras

    class ToFloat(keras.layers.Layer):
        """Raw pixels of any dtype -> float32 (the models' own Normalize takes [0, 255] floats)."""

        def call(self, x):
            return keras.ops.cast(x, "float32")

    class FewShotHead(keras.layers.Layer):
        """Class scores of a few-shot head from raw embeddings, support set held as constants."""

        def __init__(self, support, labels, n_classes, mean, mode, metric, k, power, temperature,
                     threshold, **kw):
            super().__init__(**kw)
            self.support = np.asarray(support, np.float32)     # transformed, (S, D) or (C, D) prototypes
            self.onehot = np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]
            self.mean = np.asarray(mean, np.float32)
            self.mode, self.metric, self.k, self.power = mode, metric, int(k), power
            self.temperature, self.threshold = float(temperature), threshold

        def call(self, e):
            ops = keras.ops
            if self.power:
                e = ops.sign(e) * ops.power(ops.abs(e), self.power)
            q = e - ops.convert_to_tensor(self.mean)
            s = ops.convert_to_tensor(self.support)
            if self.metric == "cosine":
                q = q / ops.maximum(ops.norm(q, axis=1, keepdims=True), 1e-12)
                sim = ops.matmul(q, ops.transpose(s))
            else:  # -euclidean distance, as zoo.index reports it
                d2 = (ops.sum(q * q, axis=1, keepdims=True) - 2.0 * ops.matmul(q, ops.transpose(s))
                      + ops.sum(s * s, axis=1)[None, :])
                sim = -ops.sqrt(ops.maximum(d2, 0.0))
            if self.mode == "prototype":
                conf = ops.max(sim, axis=1)
                probs = ops.softmax((sim - conf[:, None]) / self.temperature, axis=1)
            else:
                top, idx = ops.top_k(sim, self.k)
                w = ops.maximum(top, 1e-6) if self.metric == "cosine" else 1.0 / (1e-6 - top)
                votes = ops.sum(w[:, :, None] * ops.take(ops.convert_to_tensor(self.onehot), idx, axis=0), axis=1)
                probs = votes / ops.maximum(ops.sum(votes, axis=1, keepdims=True), 1e-12)
                conf = top[:, 0]
            thr = -np.inf if self.threshold is None else float(self.threshold)
            return {"probabilities": probs, "confidence": conf, "unknown": ops.less(conf, thr)}

    class L2Normalize(keras.layers.Layer):
        def __init__(self, matrix=None, **kw):
            super().__init__(**kw)
            self.matrix = None if matrix is None else np.asarray(matrix, np.float32)

        def call(self, e):
            if self.matrix is not None:
                e = keras.ops.matmul(e, keras.ops.convert_to_tensor(self.matrix))
            return e / keras.ops.maximum(keras.ops.norm(e, axis=1, keepdims=True), 1e-12)

    class PairScore(keras.layers.Layer):
        def __init__(self, threshold, **kw):
            super().__init__(**kw)
            self.threshold = threshold

        def call(self, a, b):
            s = keras.ops.sum(a * b, axis=1)
            thr = np.inf if self.threshold is None else float(self.threshold)
            return {"score": s, "same": keras.ops.greater_equal(s, thr)}

    class ArgMax(keras.layers.Layer):
        """Index of the largest value on the last axis, as int32 (tf.math.argmax: keras.ops.argmax
        adds bitwise ops for -0.0 that TFLite lacks)."""

        def call(self, x):
            import tensorflow as tf

            return tf.math.argmax(x, axis=-1, output_type=tf.int32)

    return types.SimpleNamespace(ToFloat=ToFloat, FewShotHead=FewShotHead, L2Normalize=L2Normalize,
                                 PairScore=PairScore, ArgMax=ArgMax)


# ---- signatures of the built-in kinds --------------------------------------------------------
def backbone_trunk(m):
    """A float-pixel model {"embedding"[, "probabilities"]} running the trunk once."""
    import keras

    from zoo.layers import Normalize

    outs = {"embedding": m.feature_network.get_layer("pooled").output}
    if getattr(m, "imagenet_model", None) is not None:
        outs["probabilities"] = m.network.output
    inner = keras.Model(m.network.input, outs, name=f"{m.name}_trunk")
    p = m.preprocessing
    norm = Normalize(p.mean, p.std, p.channel_order, name="normalize")
    return lambda x: inner(norm(x))


def model_metadata(m, kind: str) -> dict:
    """The export.json fields every kind shares: kind, model, fingerprint, preprocessing, input size."""
    p = m.preprocessing
    return {"kind": kind, "model": m.entry.full_name, "fingerprint": m.fingerprint(),
            "preprocessing": {**p.to_dict(), "note": "inside the graph: feed raw RGB pixels"},
            "input_size": m.input_size}


def without_head(m):
    """The backbone view of a model (a classifier's embedding is its backbone's)."""
    if getattr(m, "imagenet_model", None) is None:
        return m
    return type("Backbone", (), {"feature_network": m.feature_network, "network": m.network,
                                 "preprocessing": m.preprocessing, "name": m.name, "imagenet_model": None})()


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    return x if isinstance(x, (str, int, float, bool, type(None))) else repr(x)


def signature_of(obj, input_dtype: str = "uint8", **options) -> Signature:
    """The export signature of a model: its kind's ``export_signature`` (options checked against it)."""
    if not hasattr(obj, "export_signature"):
        raise ExportError(f"cannot export a {type(obj).__name__}: export a zoo model or task, or give the class "
                          "an export_signature() method (see zoo.export)")
    import inspect

    known = inspect.signature(obj.export_signature).parameters
    unknown = sorted(k for k, v in options.items() if k not in known and v is not None)
    if unknown:
        raise ExportError(f"a {type(obj).__name__} export takes no option {', '.join(unknown)} "
                          f"(it takes: {', '.join(k for k in known if k != 'input_dtype') or 'none'})")
    return obj.export_signature(input_dtype=input_dtype, **{k: v for k, v in options.items() if k in known})


# ---- converters ------------------------------------------------------------------------------
def _specs(model):
    import tensorflow as tf

    return [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]


def calibration_batches(calibration, size: int, n: int = CALIBRATION_IMAGES):
    """Up to ``n`` calibration images as uint8 arrays (1, size, size, 3), through zoo's pixel path."""
    from zoo import images as zimages

    if calibration is None:
        raise ExportError('quantize="int8" needs calibration images: pass calibration=<100-500 images from '
                          'the deployment domain> (an array, a folder, file paths...)')
    src = zimages.batches(calibration, size, 32)
    out = []
    for batch in src.dataset:
        if isinstance(batch, tuple):
            batch = batch[1]
        out.extend(zimages.as_uint8(batch.numpy())[:, None])
        if len(out) >= n:
            break
    if not out:
        raise ExportError("none of the calibration images could be read")
    return out[:n]


def _quiet():
    """Silence the converters' chatter on stdout/stderr unless logging is at DEBUG."""
    import contextlib

    if log.isEnabledFor(logging.DEBUG):
        return contextlib.nullcontext()
    return _redirect_fds()


class _redirect_fds:
    """Send file descriptors 1 and 2 to /dev/null (the converters print from C++)."""

    def __enter__(self):
        sys.stdout.flush(), sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        sys.stdout.flush(), sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def frozen_function(model):
    """A ``tf.function`` of ``model`` with its weights folded into constants and named outputs.

    Tracing and freezing once here, then converting, takes 15-20 s for EfficientNet-Lite0 where
    ``TFLiteConverter.from_keras_model`` (a SavedModel written and read back) takes about 40 s.
    """
    import tensorflow as tf
    from zoo.compat import convert_variables_to_constants_v2

    specs = _specs(model)
    call = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False),
                       input_signature=specs)
    frozen = convert_variables_to_constants_v2(call.get_concrete_function())
    keys = tf.nest.flatten({k: k for k in model.output})  # the order frozen outputs come in

    @tf.function(input_signature=specs)
    def named(*xs):
        return dict(zip(keys, tf.nest.flatten(frozen(*xs))))
    return named


def to_tflite(model, quantize=None, calibration=None) -> bytes:
    """TFLite flatbuffer of a Keras model, signature ``serving_default`` (XNNPACK runs it on CPU)."""
    import tensorflow as tf

    fn = frozen_function(model)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], tf.Module())
    if quantize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        data = calibration

        def representative():
            for x in data:
                yield [x] * len(model.inputs)
        conv.representative_dataset = representative
    with _quiet():
        return conv.convert()


def to_onnx(model, path: Path, quantize=None, calibration=None, metadata: dict | None = None):
    """ONNX file of a Keras model (tf2onnx), optionally quantised with onnxruntime's tools."""
    from zoo.extras import require

    onnx, tf2onnx = require("onnx", "ONNX export"), require("tf2onnx", "ONNX export")
    path = Path(path)
    fn = frozen_function(model)  # from_function keeps the output names (from_keras loses them)
    with _quiet():
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=ONNX_OPSET)
    if metadata:
        onnx.helper.set_model_props(proto, {"zoo_export": json.dumps(metadata)})
    if not quantize:
        onnx.save(proto, str(path))
        return
    require("onnxruntime", "ONNX quantisation")
    from onnxruntime import quantization as q
    with tempfile.TemporaryDirectory(dir=path.parent) as d, _quiet():
        f32, pre = Path(d) / "f32.onnx", Path(d) / "pre.onnx"
        onnx.save(proto, str(f32))
        q.quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        if quantize == "dynamic":
            # only matrix products: onnxruntime's dynamic ConvInteger path measured here 4-10x slower
            # than float with top-1 agreement 0.54-0.76 on EfficientNet-Lite0
            q.quantize_dynamic(str(pre), str(path), weight_type=q.QuantType.QInt8, per_channel=True,
                               op_types_to_quantize=["MatMul", "Gemm"])
        else:
            # reduce_range: 7-bit weights avoid u8s8 saturation on CPUs without VNNI (AVX2 here);
            # per-channel weights and percentile calibration: agreement 0.85 -> 0.95 in a 96 px test
            names = [i.name for i in proto.graph.input]
            q.quantize_static(str(pre), str(path), _Reader(names, calibration), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, reduce_range=True, calibrate_method=q.CalibrationMethod.Percentile,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    if metadata:
        m = onnx.load(str(path))
        onnx.helper.set_model_props(m, {"zoo_export": json.dumps(metadata)})
        onnx.save(m, str(path))


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over uint8 batches."""

    def __init__(self, names, batches):
        self.it = iter([{n: b for n in names} for b in batches])

    def get_next(self):
        return next(self.it, None)


def to_saved_model(model, path: Path):
    """A TensorFlow SavedModel folder with signature ``serving_default`` (weights as constants:
    built for serving; about 2x faster to write than ``keras.Model.export``)."""
    import tensorflow as tf

    fn = frozen_function(model)
    module = tf.Module()
    module.serve = fn
    with _quiet():
        tf.saved_model.save(module, str(path), signatures={"serving_default": fn.get_concrete_function()})


# ---- the entry point -------------------------------------------------------------------------
def _check_args(fmt, quantize):
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be None, 'dynamic' or 'int8'; got {quantize!r}")
    if fmt == "saved_model" and quantize:
        raise ExportError("a SavedModel is exported in float32 only: use format='tflite' or 'onnx' to quantise")


def graph_digest(model) -> str:
    """SHA-256 (16 hex) of every weight of the exported graph."""
    h = hashlib.sha256()
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    for layer in model._flatten_layers() if hasattr(model, "_flatten_layers") else []:
        for a in ("support", "onehot", "mean", "matrix"):
            v = getattr(layer, a, None)
            if isinstance(v, np.ndarray):
                h.update(v.tobytes())
    return h.hexdigest()[:16]


def export(model, out, format: str = "saved_model", quantize: str | None = None, calibration=None,
           *, input_dtype: str = "uint8", **options) -> Path:
    """Write ``model`` (any zoo kind; see the module doc) to ``out`` in ``format``; returns the path.

    ``quantize``: None (float32), "dynamic" (int8 weights) or "int8" (weights and activations,
    needs ``calibration`` images). ``input_dtype="float32"`` takes [0, 255] float pixels instead
    of uint8 (what :mod:`zoo.runtimes` uses, to feed zoo's resized pixels unrounded).
    ``options``: kind-specific (``pair=True`` for a verifier).
    """
    _check_args(format, quantize)
    if input_dtype not in ("uint8", "float32"):
        raise ExportError(f"input_dtype must be 'uint8' or 'float32'; got {input_dtype!r}")
    sig = signature_of(model, input_dtype, **options)
    if format == "tflite" and sig.metadata.get("kind") == "detector":
        raise ExportError("TFLite has no combined non-max suppression, which the detector's graph ends with: "
                          "export it with format='saved_model' or 'onnx'")
    out = Path(out).expanduser()
    size = int(sig.model.inputs[0].shape[1])
    calib = calibration_batches(calibration, size) if quantize == "int8" else None
    if calib is not None and input_dtype == "float32":
        calib = [c.astype(np.float32) for c in calib]
    single = out.suffix in (".tflite", ".onnx")
    if single and format == "saved_model" or single and out.suffix != f".{format}":
        raise ExportError(f"{out}: a {format} export goes to a folder"
                          + (f" or a .{format} file" if format != "saved_model" else ""))
    meta = _metadata(sig, format, quantize, input_dtype, calib)
    out.parent.mkdir(parents=True, exist_ok=True)
    zio.sweep_stale(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        target = tmp / "saved_model" if format == "saved_model" else tmp / FORMATS[format]
        if format == "saved_model":
            to_saved_model(sig.model, target)
        elif format == "tflite":
            target.write_bytes(to_tflite(sig.model, quantize, calib))
        else:
            to_onnx(sig.model, target, quantize, calib, meta)
        if single:
            meta["file"] = out.name
            meta["sha256"] = zio.sha256_file(target)
            zio.fsync_file(target)
            os.replace(target, out)
            zio.atomic_write(out.with_name(out.name + ".json"), json.dumps(meta, indent=2))
            return out
        if format == "saved_model":
            folder, meta["file"] = target, "."  # the folder is the SavedModel (TF Serving reads it)
        else:
            folder, meta["file"] = tmp, FORMATS[format]
            meta["sha256"] = zio.sha256_file(target)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        zio.replace_dir(folder, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s to %s", meta.get("kind"), out)
    return out


def _metadata(sig: Signature, fmt, quantize, input_dtype, calib) -> dict:
    m = sig.model
    inputs = [{"name": t.name.split(":")[0], "shape": [None, *t.shape[1:]], "dtype": input_dtype,
               "range": [0, 255], "channels": "RGB"} for t in m.inputs]
    outputs = {k: {"shape": [None, *t.shape[1:]], "dtype": str(t.dtype)} for k, t in m.output.items()}
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "export_format": fmt,
            "quantize": quantize, "calibration_images": len(calib) if calib is not None else None,
            "inputs": inputs, "outputs": outputs, "graph_digest": graph_digest(m),
            **_jsonable(sig.metadata), "versions": zio.library_versions()}


def read_metadata(path) -> dict:
    """The ``export.json`` of an export folder or the ``.json`` beside an exported file."""
    p = Path(path)
    f = p / META_FILE if p.is_dir() else p.with_name(p.name + ".json")
    if not f.is_file():
        raise ExportError(f"{p} has no export metadata ({f.name}): export it again with zoo.export")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{f} is not valid JSON ({exc}): export again") from exc
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{f} is not zoo export metadata")
    if meta.get("format_version", 0) > EXPORT_VERSION:
        raise ExportError(f"{f} is export format v{meta['format_version']}; this zoo reads up to "
                          f"v{EXPORT_VERSION}: upgrade zoo")
    model_file = p if not p.is_dir() else p / meta.get("file", "")
    if meta.get("sha256") and zio.sha256_file(model_file) != meta["sha256"]:
        raise ExportError(f"{model_file} does not match the SHA-256 in {f}: the export is corrupt; export again")
    return meta


# ---- command line ----------------------------------------------------------------------------
def add_commands(subparsers):
    """``zoo export MODEL --format tflite --out FILE [--quantize dynamic|int8 --calibration DIR]``."""
    s = subparsers.add_parser("export", help="export a model for serving (SavedModel, TFLite, ONNX)",
                              description="Export a saved model folder or registry model; the graph takes raw "
                                          "uint8 RGB images at the model's input size.")
    s.add_argument("model", help="a folder written by save() (classifier, few-shot head, verifier...) "
                                 "or a registry name")
    s.add_argument("--format", choices=list(FORMATS), default="saved_model")
    s.add_argument("--out", required=True, help="output folder, or a .tflite / .onnx file")
    s.add_argument("--quantize", choices=["dynamic", "int8"], help="int8 weights (dynamic) or weights and activations")
    s.add_argument("--calibration", help="images for --quantize int8: a folder, a file, or 'fashion_mnist'")
    s.add_argument("--input-size", type=int, help="input size of a registry model")
    s.add_argument("--pair", action="store_true",
                   help="verifier: a two-image graph (score, same) instead of embeddings")
    s.add_argument("--class-names", help="image-text model: comma-separated names for a zero-shot "
                                         "'probabilities' output beside the embedding")
    s.add_argument("--score-threshold", type=float, help="detector: the lowest score kept (default 0.3)")
    s.set_defaults(func=_cmd_export)
    return s


def _cmd_export(a) -> int:
    import zoo

    model = zoo.load(a.model, input_size=a.input_size) if a.input_size else zoo.load(a.model)
    calibration = a.calibration
    if calibration == "fashion_mnist":
        from zoo import data

        calibration = data.fashion_mnist("train").subset(total=CALIBRATION_IMAGES, seed=0).images
    options = {"pair": True} if a.pair else {}
    if a.class_names:
        options["class_names"] = [n.strip() for n in a.class_names.split(",") if n.strip()]
    if a.score_threshold is not None:
        options["score_threshold"] = a.score_threshold
    path = export(model, a.out, a.format, a.quantize, calibration, **options)
    meta = read_metadata(path)
    outs = ", ".join(f"{k} {v['shape']}" for k, v in meta["outputs"].items())
    print(f"wrote {path} ({a.format}{', ' + a.quantize if a.quantize else ''}): input uint8 "
          f"{meta['inputs'][0]['shape']}; outputs {outs}")
    return 0
