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
from zoo.errors import SavedRecipeError, NotCalibratedError, RecipeError
from zoo.tasks.common import embed, is_embeddings, load_recorded_model, model_record, resolve_model

log = logging.getLogger(__name__)
LOSSES = ("supcon", "contrastive")


class FaceNotFoundError(RecipeError):
    """The face front end found no face in an image."""


def _l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _as_uint8_rgb(img) -> np.ndarray:
    from zoo.images import read_image, to_rgb

    a = read_image(img) if isinstance(img, (str, Path)) else to_rgb(img)
    return np.clip(a, 0, 255).astype(np.uint8)


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


class Verifier:
    """Cosine similarity of (optionally fine-tuned) frozen embeddings, with a calibrated threshold.

    ``model``: registry name, saved-model folder or ZooModel (None: embeddings only).
    ``face``: crop and align faces with MTCNN first (optional ``mtcnn`` package).
    """

    def __init__(self, model="efficientnet_lite0", threshold: float | None = None, face: bool = False,
                 input_size: int | None = None, batch_size: int = 64):
        self.model = resolve_model(model, input_size)
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
        from zoo.tasks.metric_head import train_linear_head

        self.head, hist = train_linear_head(e, y, loss=loss, steps=steps, lr=lr, anchor=anchor,
                                            classes_per_batch=min(classes_per_batch, len(classes)),
                                            per_class=per_class, temperature=temperature, margin=margin,
                                            seed=seed)
        self.threshold, self.calibration = None, None  # scores changed: calibrate again
        return hist

    def export(self, out, format: str = "saved_model", quantize: str | None = None, calibration=None, **options):
        """A serving graph on raw uint8 images, preprocessing included (see :mod:`zoo.export`)."""
        from zoo.export import export

        return export(self, out, format, quantize, calibration, **options)

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Folder: config.json (model fingerprint, threshold, calibration) + head.npy if fine-tuned."""
        cfg = {"model": model_record(self.model), "threshold": self.threshold,
               "calibration": self.calibration, "face": self.face is not None, "head": self.head is not None}
        files = {"head.npy": self.head.astype(np.float32)} if self.head is not None else {}
        return zio.write_folder(path, "verifier", cfg, files)

    @classmethod
    def load(cls, path, model=None) -> "Verifier":
        path = Path(path)
        return cls._from_folder(path, zio.read_config(path, "verifier", SavedRecipeError), model)

    @classmethod
    def _from_folder(cls, path: Path, cfg: dict, model=None) -> "Verifier":
        zio.require(cfg, path, face=bool, head=bool)
        model = load_recorded_model(cfg["model"], model, "this verifier")
        v = cls(model=model, threshold=cfg["threshold"], face=cfg["face"])
        v.calibration = cfg["calibration"]
        if cfg["head"]:
            v.head = np.load(path / "head.npy", allow_pickle=False)
        return v


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


zio.register_kind("verifier", lambda path, cfg, model=None, **_: Verifier._from_folder(path, cfg, model))
