"""Cosine image verification: are two images of the same thing?

```python
v = Verifier(model="efficientnet_lite0")
v.score(img_a, img_b)                    # cosine similarity
v.calibrate((A, B), same, far=1e-2)      # threshold at a false-accept rate (or far="eer")
v.verify(img_a, img_b)                   # (same: bool, score)
v.finetune(images, labels)               # metric fine-tuning of a small head on frozen embeddings
```
``pairs`` are ``(A, B)``, two aligned collections (images, paths or embeddings), or a list of
``(a, b)`` tuples. 2-D float arrays whose width is the model's feature size are embeddings.

Metric fine-tuning trains a linear head (initialised at the identity) over frozen embeddings
with a supervised-contrastive loss (Khosla et al. 2020) or the contrastive pair loss on cosine,
on balanced batches (P classes x K images). The head is pulled towards the identity
(``anchor``): measured on Fashion-MNIST classes held out of training, without that pull the
head forgets what the frozen embedding knew about unseen classes and verification gets worse.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from zoo import io as zio
from zoo.errors import NotCalibratedError, RecipeError, SavedRecipeError
from zoo.kinds import register_kind
from zoo.tasks.base import Task
from zoo.tasks.common import embed, is_embeddings, load_recorded_model, resolve_model

log = logging.getLogger(__name__)
LOSSES = ("supcon", "contrastive")


class FaceNotFoundError(RecipeError):
    """The face front end found no face in an image."""


def _l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _as_uint8_rgb(img) -> np.ndarray:
    from zoo.images import rgb

    return np.clip(rgb(img), 0, 255).astype(np.uint8)


class FaceCropper:
    """Detect the most confident face with MTCNN, level the eyes, crop square with a margin.

    Needs the optional package ``mtcnn`` (Keras; its weights ship in the wheel).
    """

    def __init__(self, margin: float = 0.25, min_confidence: float = 0.9):
        from zoo.extras import require

        MTCNN = require("mtcnn", "the face front end (or use Verifier(face=False) and pass face crops)").MTCNN
        self.detector = MTCNN()
        self.margin, self.min_confidence = margin, min_confidence

    def __call__(self, img) -> np.ndarray:
        """One aligned face crop (uint8 RGB) from an image or path; FaceNotFoundError if none."""
        from PIL import Image

        a = _as_uint8_rgb(img)
        faces = [f for f in self.detector.detect_faces(a) if f["confidence"] >= self.min_confidence]
        if not faces:
            name = img if isinstance(img, (str, Path)) else f"image of shape {a.shape}"
            raise FaceNotFoundError(f"no face found in {name}: pass a closer photo or use Verifier(face=False)")
        f = max(faces, key=lambda f: f["confidence"] * f["box"][2] * f["box"][3])
        (lx, ly), (rx, ry) = f["keypoints"]["left_eye"], f["keypoints"]["right_eye"]
        angle = math.degrees(math.atan2(float(ry) - float(ly), float(rx) - float(lx)))
        x, y, w, h = f["box"]
        cx, cy = x + w / 2, y + h / 2
        im = Image.fromarray(a).rotate(angle, center=(cx, cy), resample=Image.BILINEAR)
        half = max(w, h) * (0.5 + self.margin)
        return np.asarray(im.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))))


@register_kind("verifier", aliases=("verification.Verifier",))
class Verifier(Task):
    """Cosine similarity of (optionally fine-tuned) frozen embeddings, with a calibrated threshold.

    ``model``: registry name, saved-model folder or ZooModel (None: embeddings only).
    ``face``: crop and align faces with MTCNN first (optional ``mtcnn`` package).
    """

    stores_backbone = False  # the backbone is the registry's (or a saved folder's): recorded, not copied
    load_error = SavedRecipeError

    def __init__(self, model="efficientnet_lite0", threshold: float | None = None, face: bool = False,
                 input_size: int | None = None, batch_size: int = 64):
        super().__init__(resolve_model(model, input_size))
        self.threshold = threshold
        self.calibration: dict | None = None
        self.head: np.ndarray | None = None
        self.face = FaceCropper() if face else None
        self.batch_size = batch_size

    # ---- embeddings and scores --------------------------------------------------------------
    def raw_embed(self, images) -> np.ndarray:
        """Backbone embeddings (after face cropping), before the head."""
        if self.face is not None and not is_embeddings(images):
            if isinstance(images, np.ndarray) and images.ndim == 4 or isinstance(images, (list, tuple)):
                images = [self.face(im) for im in images]
            else:
                images = [self.face(images)]
        return embed(self.model, images, self.batch_size)

    def embed(self, images) -> np.ndarray:
        """(N, D) L2-normalised embeddings (through the fine-tuned head when there is one)."""
        e = self.raw_embed(images)
        return _l2n(e @ self.head if self.head is not None else e)

    def _side(self, x) -> tuple[np.ndarray, bool]:
        """(embeddings, whether ``x`` was one image rather than a collection)."""
        if isinstance(x, np.ndarray) and x.ndim == 1:
            return self.embed(x[None].astype(np.float32)), True  # one embedding
        if isinstance(x, (str, Path)):
            single = not Path(x).is_dir()
        elif isinstance(x, np.ndarray):
            single = (x.ndim == 2 and not is_embeddings(x)) or (x.ndim == 3 and x.shape[-1] in (1, 3, 4))
        else:
            single = hasattr(x, "convert")  # a PIL image
        if single:
            x = x[None] if isinstance(x, np.ndarray) else [x]
        return self.embed(x), single

    def score(self, a, b):
        """Cosine similarity of two images (a float), or of two aligned collections (an array)."""
        ea, single = self._side(a)
        eb, _ = self._side(b)
        if len(ea) != len(eb):
            raise RecipeError(f"{len(ea)} images on one side and {len(eb)} on the other (unreadable files are "
                              "skipped): pass aligned collections of readable images")
        s = (ea * eb).sum(1)
        return float(s[0]) if single else s

    def score_pairs(self, pairs) -> np.ndarray:
        """Scores of ``(A, B)`` or a list of ``(a, b)``."""
        a, b = _split_pairs(pairs)
        return np.atleast_1d(self.score(a, b))

    # ---- decisions --------------------------------------------------------------------------
    def calibrate(self, pairs, same, far: float | str = 1e-2) -> float:
        """Set the threshold at a target false-accept rate on labelled pairs, or at the EER (far="eer")."""
        scores = self.score_pairs(pairs)
        t, info = calibrate_scores(scores, same, far)
        self.threshold, self.calibration = t, info
        return t

    def verify(self, a, b):
        """(same, score): a bool and float for one pair, arrays for aligned collections."""
        if self.threshold is None:
            raise NotCalibratedError("no threshold: call calibrate(pairs, same) or pass Verifier(threshold=...)")
        s = self.score(a, b)
        return (s >= self.threshold, s) if isinstance(s, np.ndarray) else (bool(s >= self.threshold), s)

    # ---- metric fine-tuning -----------------------------------------------------------------
    def finetune(self, images, labels, loss: str = "supcon", steps: int = 300, lr: float = 1e-3,
                 anchor: float = 0.3, classes_per_batch: int = 16, per_class: int = 16,
                 temperature: float = 0.1, margin: float = 0.5, seed: int = 0) -> dict:
        """Train the head on labelled images (or embeddings); returns ``{"loss": [...]}``.

        Batches hold ``classes_per_batch`` classes x ``per_class`` images (balanced sampling).
        ``anchor`` weighs an L2 pull of the head towards the identity (0 disables it).
        """
        if loss not in LOSSES:
            raise RecipeError(f"loss must be one of {LOSSES}; got {loss!r}")
        labels = np.asarray(labels)
        e = self.raw_embed(images)
        if len(e) != len(labels):
            raise RecipeError(f"{len(e)} readable images but {len(labels)} labels: pass one label per image "
                              "and remove unreadable files")
        classes, y = np.unique(labels, return_inverse=True)
        counts = np.bincount(y)
        if len(classes) < 2 or counts.min() < 2:
            raise RecipeError("metric fine-tuning needs 2+ classes with 2+ images each")
        from zoo.tasks.verifier.metric_head import train_linear_head

        self.head, hist = train_linear_head(e, y, loss=loss, steps=steps, lr=lr, anchor=anchor,
                                            classes_per_batch=min(classes_per_batch, len(classes)),
                                            per_class=per_class, temperature=temperature, margin=margin,
                                            seed=seed)
        self.threshold, self.calibration = None, None  # scores changed: calibrate again
        return hist

    def export_signature(self, input_dtype: str = "uint8", pair: bool = False):
        """L2-normalised ``embedding`` (N, D) through the head, or with ``pair=True`` a two-image
        graph (inputs ``images_a``/``images_b``, outputs ``score`` and ``same``)."""
        import keras

        from zoo.export import ExportError, Signature, _jsonable, backbone_trunk, export_layers, model_metadata
        from zoo.export import log as export_log
        from zoo.export import pixel_input, without_head

        m = self.model
        if m is None:
            raise ExportError("this verifier has no model (it takes embeddings): create it with model=... to export")
        trunk = backbone_trunk(without_head(m))
        norm = export_layers().L2Normalize(self.head, name="verifier_embedding")
        meta = {**model_metadata(m, "verifier"), "threshold": self.threshold, "calibration": _jsonable(self.calibration),
                "score": "cosine of the two images' embeddings (dot product of the L2-normalised outputs)"}
        if self.face is not None:
            meta["input_note"] = "aligned face crops: the MTCNN face front end is not part of the graph"
            export_log.warning("the exported verifier takes face crops: MTCNN detection and alignment are not exported")
        if not pair:
            raw, x = pixel_input(m.input_size, input_dtype)
            return Signature(keras.Model(raw, {"embedding": norm(trunk(x)["embedding"])}, name="verifier_export"), meta)
        ra, xa = pixel_input(m.input_size, input_dtype, "images_a")
        rb, xb = pixel_input(m.input_size, input_dtype, "images_b")
        out = export_layers().PairScore(self.threshold, name="pair_score")(norm(trunk(xa)["embedding"]),
                                                                          norm(trunk(xb)["embedding"]))
        return Signature(keras.Model([ra, rb], out, name="verifier_pair_export"), {**meta, "pair": True})

    # ---- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"threshold": self.threshold, "calibration": self.calibration, "face": self.face is not None}

    def get_arrays(self) -> dict:
        return {"head": self.head.astype(np.float32)} if self.head is not None else {}

    @classmethod
    def from_config(cls, backbone, cfg, arrays, class_names, **_):
        v = cls(model=backbone, threshold=cfg["threshold"], face=cfg["face"])
        v.calibration = cfg["calibration"]
        v.head = arrays.get("head")
        return v

    @classmethod
    def load_legacy(cls, path: Path, cfg: dict, model=None, **_) -> "Verifier":
        zio.require(cfg, path, face=bool, head=bool)
        arrays = {"head": np.load(path / "head.npy", allow_pickle=False)} if cfg["head"] else {}
        return cls.from_config(load_recorded_model(cfg["model"], model, "this verifier"), cfg, arrays, [])


def _split_pairs(pairs):
    if isinstance(pairs, tuple) and len(pairs) == 2:
        return pairs
    pairs = list(pairs)
    if not pairs or any(len(p) != 2 for p in pairs):
        raise RecipeError("pairs must be (A, B), two aligned collections, or a list of (a, b) tuples")
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if all(isinstance(x, np.ndarray) and x.ndim == 1 for x in a + b):
        a, b = np.stack(a).astype(np.float32), np.stack(b).astype(np.float32)
    return a, b


def _genuine_impostor(scores, same):
    scores, same = np.asarray(scores, float), np.asarray(same, bool)
    if scores.shape != same.shape:
        raise RecipeError(f"{len(scores)} scores but {len(same)} same/different labels")
    gen, imp = scores[same], scores[~same]
    if not len(gen) or not len(imp):
        raise RecipeError("calibration needs both genuine (same=True) and impostor (same=False) pairs")
    return gen, imp


def eer(scores, same) -> tuple[float, float]:
    """(equal error rate, threshold there)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(np.asarray(same, bool), np.asarray(scores, float))
    k = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float((fpr[k] + 1 - tpr[k]) / 2), float(min(thr[k], 1.0 + 1e-6))


def calibrate_scores(scores, same, far: float | str = 1e-2) -> tuple[float, dict]:
    """(threshold, info) so that at most ``far`` of impostor scores reach it (or at the EER)."""
    gen, imp = _genuine_impostor(scores, same)
    if far == "eer":
        rate, t = eer(scores, same)
        method = "eer"
    else:
        far = float(far)
        if not 0 < far < 1:
            raise RecipeError(f"far must be in (0, 1) or 'eer'; got {far}")
        if far * len(imp) < 1:
            log.warning("%d impostor pairs cannot resolve a false-accept rate of %g: the threshold sits above "
                        "every impostor; use %d+ impostor pairs", len(imp), far, math.ceil(1 / far))
        allowed = int(math.floor(far * len(imp) + 1e-9))
        desc = np.sort(imp)[::-1]
        t = float(np.nextafter(desc[min(allowed, len(desc) - 1)], np.inf)) if allowed < len(desc) else float(desc[-1])
        method, rate = "far", far
    info = {"method": method, "target": rate, "threshold": t, "far": float(np.mean(imp >= t)),
            "tar": float(np.mean(gen >= t)), "n_genuine": int(len(gen)), "n_impostor": int(len(imp))}
    return t, info

