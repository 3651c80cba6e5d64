"""Object detection: data (demo scenes, COCO / Pascal VOC / YOLO readers), training, drawing.

```python
from recipes import detection
train, val, test = detection.scenes()                     # offline demo scenes (recipes.scenes)
data = detection.read_coco("ann.json", "images/")          # or read_voc(dir) / read_yolo(dir, names)
det = detection.train(train, val, backbone="efficientnet_lite0", epochs=12, out_dir="runs/detect")
det.detect(images); det.evaluate(test); det.save("runs/detect/model")
```

Readers check every record: boxes reaching outside the image are clipped (warning), zero-area or
inverted boxes and unknown classes are skipped (warning naming the file and record), images
without boxes are kept as negatives, missing image files are skipped (warning), and a file that
does not parse raises :class:`DetectionDataError` naming it. The model lives in
:mod:`zoo.tasks.detector`; this module trains it: frozen backbone first, then optionally the
whole network with BatchNorm frozen (``zoo.training``'s steps), with augmentation that moves the
boxes with the pixels (horizontal flip, scale jitter with crop or padding, colour).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import xml.etree.ElementTree as ET  # expat >= 2.4.1 refuses entity expansion bombs; no external entities
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import DataError, RecipeError

log = logging.getLogger(__name__)


class DetectionDataError(DataError):
    """A detection dataset file that cannot be used (names the file and the record)."""


# ---- data ----------------------------------------------------------------------------------
@dataclass
class DetectionData:
    """Images with boxes: ``boxes[i]`` (k, 4) float32 xyxy pixel edges, ``labels[i]`` (k,) int64."""

    images: list                  # file paths or arrays (H, W, 3), or one (N, H, W, 3) array
    boxes: list
    labels: list
    class_names: list
    sources: list = field(default_factory=list)   # where each image came from (path or index)

    def __post_init__(self):
        if not self.sources:
            self.sources = [str(x) if isinstance(x, (str, Path)) else i for i, x in enumerate(self.images)]

    def __len__(self):
        return len(self.images)

    def take(self, index) -> "DetectionData":
        index = np.asarray(index, dtype=int).ravel()
        imgs = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        return DetectionData(imgs, [self.boxes[i] for i in index], [self.labels[i] for i in index],
                             list(self.class_names), [self.sources[i] for i in index])


def as_detection_data(d) -> DetectionData:
    """DetectionData from itself, demo ``Scenes`` or an ``(images, boxes, labels[, class_names])`` tuple."""
    if isinstance(d, DetectionData):
        return d
    if isinstance(d, tuple) and len(d) in (3, 4):
        top = max((int(np.max(lab)) for lab in d[2] if len(lab)), default=0)
        names = list(d[3]) if len(d) == 4 else [str(i) for i in range(top + 1)]
        return DetectionData(d[0], [np.asarray(b, np.float32).reshape(-1, 4) for b in d[1]],
                             [np.asarray(lab, np.int64).reshape(-1) for lab in d[2]], names)
    if all(hasattr(d, a) for a in ("images", "boxes", "labels", "class_names")):
        return DetectionData(d.images, [np.asarray(b, np.float32).reshape(-1, 4) for b in d.boxes],
                             [np.asarray(lab, np.int64).reshape(-1) for lab in d.labels], list(d.class_names))
    raise DetectionDataError(f"cannot use {type(d).__name__} as detection data: pass detection.scenes(...), "
                             "read_coco/read_voc/read_yolo output, or (images, boxes, labels[, class_names])")


def scenes(split="all", n=None, size: int = 128, seed: int = 0, style: str = "default"):
    """The offline demo scenes (:mod:`recipes.scenes`): Fashion-MNIST items on real photos,
    labels 0-9 with their names. ``split``: "train", "val", "test" or "all" (a tuple of three)."""
    from recipes.scenes import scenes as make

    return make(split, n=n, size=size, seed=seed, style=style)


def _check_box(box, w, h, where: str, what: str):
    """A clipped float32 box, or None (zero-area, inverted or outside: skipped with a warning)."""
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        log.warning("%s: %s is not four finite numbers (%s): skipped", where, what, box)
        return None
    x1, y1, x2, y2 = b
    if x2 <= x1 or y2 <= y1:
        log.warning("%s: %s has zero area or is inverted (%s): skipped", where, what, [float(v) for v in b])
        return None
    if w and h:
        c = np.clip(b, 0, [w, h, w, h])
        if (c[2] - c[0]) <= 0 or (c[3] - c[1]) <= 0:
            log.warning("%s: %s lies outside the %dx%d image (%s): skipped", where, what, w, h, [float(v) for v in b])
            return None
        if not np.allclose(c, b):
            log.warning("%s: %s reaches outside the %dx%d image (%s): clipped", where, what, w, h,
                        [round(float(v), 2) for v in b])
        b = c
    return b.astype(np.float32)


def _image_size(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        if im.format == "JPEG" and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
    return w, h


def _finish(images, boxes, labels, class_names, sources, what) -> DetectionData:
    if not images:
        raise DetectionDataError(f"{what}: no usable images")
    n = sum(len(b) for b in boxes)
    empty = sum(len(b) == 0 for b in boxes)
    if empty:
        log.info("%s: %d of %d images have no boxes (kept as negatives)", what, empty, len(images))
    if n == 0:
        raise DetectionDataError(f"{what}: no usable boxes in {len(images)} images")
    return DetectionData(images, boxes, labels, list(class_names), sources)


def read_coco(json_path, images_dir=None, class_names=None) -> DetectionData:
    """A COCO detection JSON (``images``, ``annotations`` with ``bbox`` [x, y, w, h], ``categories``).

    Classes are the categories sorted by id (or ``class_names``, matched by name; others are
    skipped). Crowd annotations are skipped (COCO ignores them); images that are listed but
    missing on disk are skipped with a warning.
    """
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent
    try:
        doc = json.loads(json_path.read_text())
    except FileNotFoundError as exc:
        raise DetectionDataError(f"{json_path}: no such file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DetectionDataError(f"{json_path} is not valid JSON ({exc}): is it a COCO annotation file?") from exc
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise DetectionDataError(f"{json_path} is not a COCO detection file: it needs lists 'images', "
                                 "'annotations' and 'categories'")
    cats = {}
    for i, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DetectionDataError(f"{json_path}: categories[{i}] needs an 'id' and a 'name'")
        cats[c["id"]] = str(c["name"])
    by_id = sorted(cats, key=lambda k: (0, k, "") if isinstance(k, (int, float)) else (1, 0, str(k)))
    names = list(class_names) if class_names is not None else [cats[k] for k in by_id]
    by_name = {n: i for i, n in enumerate(names)}
    cat_to_label = {cid: by_name[n] for cid, n in cats.items() if n in by_name}
    imgs = {}
    for i, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DetectionDataError(f"{json_path}: images[{i}] needs an 'id' and a 'file_name'")
        imgs[im["id"]] = im
    per_image = {k: ([], []) for k in imgs}
    for i, a in enumerate(doc["annotations"]):
        where = f"{json_path} annotation {a.get('id', i) if isinstance(a, dict) else i}"
        if not isinstance(a, dict) or "bbox" not in a or "image_id" not in a or "category_id" not in a:
            log.warning("%s: needs 'bbox', 'image_id' and 'category_id': skipped", where)
            continue
        if a["image_id"] not in imgs:
            log.warning("%s: image_id %s is not in 'images': skipped", where, a["image_id"])
            continue
        if a.get("iscrowd"):
            continue
        if a["category_id"] not in cat_to_label:
            log.warning("%s: category_id %s is %s: skipped", where, a["category_id"],
                        "not in 'categories'" if a["category_id"] not in cats else "not one of the classes asked for")
            continue
        bb = a["bbox"]
        if not isinstance(bb, (list, tuple)) or len(bb) != 4 or not all(isinstance(v, (int, float)) for v in bb):
            log.warning("%s: bbox %r is not [x, y, width, height]: skipped", where, bb)
            continue
        im = imgs[a["image_id"]]
        box = _check_box([bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]], im.get("width"), im.get("height"), where, "bbox")
        if box is not None:
            per_image[a["image_id"]][0].append(box)
            per_image[a["image_id"]][1].append(cat_to_label[a["category_id"]])
    images, boxes, labels = [], [], []
    for k, im in imgs.items():
        path = images_dir / im["file_name"]
        if not path.is_file():
            log.warning("%s: image %s (%s) is missing: skipped", json_path, k, path)
            continue
        images.append(str(path))
        b, lab = per_image[k]
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
    return _finish(images, boxes, labels, names, list(images), str(json_path))


def _text(node, tag, where):
    el = node.find(tag)
    if el is None or el.text is None:
        raise ValueError(f"{where}: no <{tag}>")
    return el.text.strip()


def read_voc(root, class_names=None) -> DetectionData:
    """Pascal VOC XML annotations: ``root/Annotations/*.xml`` with images in ``root/JPEGImages``,
    or XML files beside their images anywhere under ``root``.

    VOC pixel indices are 1-based and inclusive: a box becomes ``(xmin - 1, ymin - 1, xmax, ymax)``
    in pixel edges (as Detectron2 reads VOC). Classes: sorted names found, or ``class_names``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DetectionDataError(f"{root} is not a folder of Pascal VOC annotations")
    xmls = sorted((root / "Annotations").glob("*.xml")) if (root / "Annotations").is_dir() else sorted(root.rglob("*.xml"))
    if not xmls:
        raise DetectionDataError(f"no .xml annotation files under {root}")
    records = []
    for x in xmls:
        try:
            doc = ET.parse(x).getroot()
        except ET.ParseError as exc:
            raise DetectionDataError(f"{x} is not valid XML ({exc})") from exc
        if doc.tag != "annotation":
            log.warning("%s: root element <%s> is not <annotation>: skipped", x, doc.tag)
            continue
        fname = (doc.findtext("filename") or x.stem).strip()
        candidates = [x.parent / fname, root / "JPEGImages" / fname, root / fname]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:  # VOC files sometimes name the image without its extension, or another one
            found = next((c for d in (x.parent, root / "JPEGImages") if d.is_dir()
                          for c in sorted(d.glob(Path(fname).stem + ".*")) if c.suffix.lower() != ".xml"), None)
        if found is None:
            log.warning("%s: image %s is missing (looked in %s): skipped", x, fname,
                        ", ".join(str(c.parent) for c in candidates[:2]))
            continue
        size = doc.find("size")
        try:
            w = int(float(size.findtext("width"))) if size is not None and size.findtext("width") else 0
            h = int(float(size.findtext("height"))) if size is not None and size.findtext("height") else 0
        except ValueError:
            w = h = 0
        if not (w and h):
            w, h = _image_size(found)
        objs = []
        for j, obj in enumerate(doc.findall("object")):
            where = f"{x} object {j}"
            try:
                name = _text(obj, "name", where)
                bb = obj.find("bndbox")
                if bb is None:
                    raise ValueError(f"{where}: no <bndbox>")
                vals = [float(_text(bb, t, where)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except ValueError as exc:
                log.warning("%s: skipped", exc)
                continue
            objs.append((name, [vals[0] - 1, vals[1] - 1, vals[2], vals[3]], where))
        records.append((found, w, h, objs))
    names = list(class_names) if class_names is not None else sorted({o[0] for r in records for o in r[3]})
    by_name = {n: i for i, n in enumerate(names)}
    images, boxes, labels = [], [], []
    for found, w, h, objs in records:
        b, lab = [], []
        for name, box, where in objs:
            if name not in by_name:
                log.warning("%s: class %r is not one of %s: skipped", where, name, names)
                continue
            box = _check_box(box, w, h, where, "box")
            if box is not None:
                b.append(box)
                lab.append(by_name[name])
        images.append(str(found))
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
    return _finish(images, boxes, labels, names, list(images), str(root))


def read_yolo(root, names) -> DetectionData:
    """A YOLO folder: images with ``.txt`` label files of ``class cx cy w h`` (fractions of the
    image) either beside them or in a sibling ``labels/`` tree mirroring ``images/``.

    ``names``: the class names (a list, or a text file with one name per line). An image
    without a label file has no boxes (a negative).
    """
    from zoo.images import list_image_files

    root = Path(root)
    if isinstance(names, (str, Path)) and Path(names).is_file():
        names = [s.strip() for s in Path(names).read_text().splitlines() if s.strip()]
    names = [str(n) for n in names]
    if not names:
        raise DetectionDataError("read_yolo needs the class names (a list or a file with one per line)")
    if not root.is_dir():
        raise DetectionDataError(f"{root} is not a YOLO folder (images with .txt label files)")
    files = list_image_files(root)
    if not files:
        raise DetectionDataError(f"no images under {root}")
    images, boxes, labels = [], [], []
    for f in files:
        rel = f.relative_to(root)
        parts = list(rel.parts)
        cands = [f.with_suffix(".txt")]
        if "images" in parts:
            i = len(parts) - 1 - parts[::-1].index("images")
            cands.append(root.joinpath(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt"))
        txt = next((c for c in cands if c.is_file()), None)
        b, lab = [], []
        if txt is not None:
            w, h = _image_size(f)
            for ln, line in enumerate(txt.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                where = f"{txt}:{ln}"
                try:
                    vals = [float(v) for v in line.split()]
                    if len(vals) != 5 or vals[0] != int(vals[0]):
                        raise ValueError
                except ValueError:
                    log.warning("%s: %r is not 'class cx cy w h': skipped", where, line.strip())
                    continue
                c = int(vals[0])
                if not 0 <= c < len(names):
                    log.warning("%s: class id %d is outside the %d names: skipped", where, c, len(names))
                    continue
                cx, cy, bw, bh = vals[1:]
                box = _check_box([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h],
                                 w, h, where, "box")
                if box is not None:
                    b.append(box)
                    lab.append(c)
        images.append(str(f))
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
    return _finish(images, boxes, labels, names, list(images), str(root))


def read_tfds(name: str, split: str = "train", data_dir=None, limit: int | None = None, download: bool = True):
    """A tensorflow-datasets detection set by name ("voc/2007", "voc/2012", "coco/2017", ...): see
    :func:`recipes.tfds_data.detection_from_tfds` (downloads once when online; offline it needs ``data_dir``)."""
    from recipes.tfds_data import detection_from_tfds

    return detection_from_tfds(name, split, data_dir=data_dir, limit=limit, download=download)


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Tile origins along one axis: every ``stride``, the last one flush with the far edge."""
    if length <= size:
        return [0]
    s = list(range(0, length - size + 1, stride))
    return s if s[-1] == length - size else s + [length - size]


def tiles(data, size: int = 400, overlap: float = 0.25, min_visible: float = 0.5) -> DetectionData:
    """Large images (aerial scenes, slides) cut into ``size`` x ``size`` tiles for training.

    Tiles start every ``size * (1 - overlap)`` pixels, the last one flush with the far edge; an
    image no larger than ``size`` stays whole. A box is kept in a tile, clipped to it, when at
    least ``min_visible`` of its area lies inside (a crown cut in half is not labelled as a whole
    tree). Tiles without boxes are kept as negatives. ``sources`` read ``"<image>@x,y"``.
    """
    from zoo import images as zimages

    data = as_detection_data(data)
    if not 0 <= overlap < 1:
        raise RecipeError(f"overlap must be in [0, 1), not {overlap}")
    stride = max(1, int(round(size * (1 - overlap))))
    out_img, out_box, out_lab, out_src = [], [], [], []
    for img, b, lab, src in zip(data.images, data.boxes, data.labels, data.sources):
        px = zimages.read_image(img) if isinstance(img, (str, Path)) else zimages.to_rgb(img)
        px = np.clip(np.round(px), 0, 255).astype(np.uint8)
        h, w = px.shape[:2]
        b = np.asarray(b, np.float32).reshape(-1, 4)
        area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
        for y in _starts(h, size, stride):
            for x in _starts(w, size, stride):
                tw, th = min(size, w - x), min(size, h - y)
                c = np.clip(b - [x, y, x, y], 0, [tw, th, tw, th])
                inside = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
                keep = (inside > 0) & (inside >= min_visible * np.maximum(area, 1e-9))
                out_img.append(px[y:y + th, x:x + tw])
                out_box.append(c[keep].astype(np.float32))
                out_lab.append(np.asarray(lab, np.int64)[keep])
                out_src.append(f"{src}@{x},{y}")
    return DetectionData(out_img, out_box, out_lab, list(data.class_names), out_src)


# ---- writers (conversions, and the readers' round-trip tests) ------------------------------
def _image_files(data: DetectionData, images_dir: Path) -> list[Path]:
    """Paths of ``data``'s images, writing array images as PNGs into ``images_dir``."""
    from PIL import Image

    images_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i, img in enumerate(data.images):
        if isinstance(img, (str, Path)):
            out.append(Path(img))
        else:
            p = images_dir / f"{i:06d}.png"
            Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8)).save(p)
            out.append(p)
    return out


def _shape_of(img):
    if isinstance(img, (str, Path)):
        w, h = _image_size(Path(img))
        return h, w
    return np.shape(img)[:2]


def write_coco(data, json_path, images_dir=None) -> Path:
    """``data`` as a COCO JSON (array images are written as PNGs into ``images_dir``)."""
    from zoo.io import atomic_write

    data = as_detection_data(data)
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent / "images"
    files = _image_files(data, images_dir)
    doc = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": n} for k, n in enumerate(data.class_names)]}
    for i, (f, b, lab) in enumerate(zip(files, data.boxes, data.labels)):
        h, w = _shape_of(f)
        doc["images"].append({"id": i + 1, "file_name": os.path.relpath(f, images_dir), "width": int(w), "height": int(h)})
        for box, c in zip(np.asarray(b, float).reshape(-1, 4), lab):
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                       "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                       "area": (box[2] - box[0]) * (box[3] - box[1]), "iscrowd": 0})
    atomic_write(json_path, json.dumps(doc))
    return json_path


def write_voc(data, root) -> Path:
    """``data`` as Pascal VOC: ``root/Annotations/*.xml`` and ``root/JPEGImages`` (1-based boxes)."""
    from zoo.io import atomic_write

    data = as_detection_data(data)
    root = Path(root)
    files = _image_files(data, root / "JPEGImages")
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for f, b, lab in zip(files, data.boxes, data.labels):
        h, w = _shape_of(f)
        doc = ET.Element("annotation")
        ET.SubElement(doc, "filename").text = f.name
        size = ET.SubElement(doc, "size")
        for t, v in (("width", w), ("height", h), ("depth", 3)):
            ET.SubElement(size, t).text = str(int(v))
        for box, c in zip(np.asarray(b, float).reshape(-1, 4), lab):
            obj = ET.SubElement(doc, "object")
            ET.SubElement(obj, "name").text = data.class_names[int(c)]
            bb = ET.SubElement(obj, "bndbox")
            for t, v in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3])):
                ET.SubElement(bb, t).text = f"{v:g}"
        atomic_write(root / "Annotations" / f"{f.stem}.xml", ET.tostring(doc, encoding="unicode"))
    return root


def write_yolo(data, root) -> Path:
    """``data`` as a YOLO folder: ``root/images/*``, ``root/labels/*.txt``, ``root/names.txt``."""
    from zoo.io import atomic_write

    data = as_detection_data(data)
    root = Path(root)
    files = _image_files(data, root / "images")
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for f, b, lab in zip(files, data.boxes, data.labels):
        h, w = _shape_of(f)
        lines = [f"{int(c)} {(x1 + x2) / 2 / w:.8f} {(y1 + y2) / 2 / h:.8f} {(x2 - x1) / w:.8f} {(y2 - y1) / h:.8f}"
                 for (x1, y1, x2, y2), c in zip(np.asarray(b, float).reshape(-1, 4), lab)]
        atomic_write(root / "labels" / f"{f.stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
    atomic_write(root / "names.txt", "\n".join(data.class_names) + "\n")
    return root


# ---- training ------------------------------------------------------------------------------
AUGMENT = {
    "none": None,
    "light": {"flip": True, "scale": (0.8, 1.25), "brightness": 0.1, "contrast": (0.85, 1.15),
              "saturation": (0.8, 1.2), "hue": 0.03},
    "default": {"flip": True, "scale": (0.6, 1.5), "brightness": 0.15, "contrast": (0.7, 1.3),
                "saturation": (0.6, 1.4), "hue": 0.08},
    "strong": {"flip": True, "scale": (0.5, 1.8), "brightness": 0.25, "contrast": (0.6, 1.4),
               "saturation": (0.3, 1.7), "hue": 0.5},   # for data whose classes do not depend on colour
}
MIN_KEPT = 0.45   # a box cropped by scale jitter stays an object while this fraction of it is in the frame


@dataclass
class DetectionConfig:
    epochs: int = 12                 # epochs with the backbone frozen (heads and FPN train)
    unfreeze_epochs: int = 0         # then epochs with the backbone (BatchNorm frozen) ...
    unfreeze: str | int = "all"      # ... all of it, or only its last N pyramid stages (cheaper on CPU)
    input_size: int | None = None    # default: the images' common square size, else 320
    batch_size: int = 16
    lr: float = 3e-3                 # peak learning rate, frozen phase (AdamW, cosine, warm-up)
    unfreeze_lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    clipnorm: float = 10.0
    augment: object = "default"      # "none" | "light" | "default" | "strong" | dict (see AUGMENT)
    head: dict | None = None         # zoo.tasks.detector.HEAD_DEFAULTS overrides
    patience: int | None = None      # early stopping on validation mAP (None: run all epochs)
    eval_every: int = 1              # validation mAP every N epochs (0: never)
    eval_images: int = 200           # at most this many validation images for it
    seed: int = 0
    verbose: int | None = None


def _augment_config(augment) -> dict | None:
    if isinstance(augment, dict):
        return {**AUGMENT["default"], **augment}
    if augment in (None, False):
        return None
    if augment is True:
        augment = "default"
    if augment not in AUGMENT:
        raise RecipeError(f"augment must be one of {sorted(AUGMENT)} or a dict, not {augment!r}")
    return AUGMENT[augment]


def _choose_size(data: DetectionData, size) -> int:
    if size is None:
        shapes = {tuple(np.shape(x)[:2]) for x in data.images[:256]} if not isinstance(data.images[0], (str, Path)) else set()
        size = next(iter(shapes))[0] if len(shapes) == 1 and len(set(next(iter(shapes)))) == 1 else 320
    size = int(size)
    if size % 32 or size < 64:
        raise RecipeError(f"input_size must be a multiple of 32 and at least 64 (P5 has stride 32); got {size}")
    return size


def letterbox_set(data: DetectionData, size: int):
    """All images as letterboxed uint8 canvases (N, size, size, 3) with boxes (N, M, 4) and labels
    (N, M) padded with -1, in memory. Unreadable files are skipped with a warning."""
    from zoo import images as zimages
    from zoo.errors import ImageError

    n_max = max(1, max(len(b) for b in data.boxes))
    canvases, boxes, labels = [], [], []
    arr = isinstance(data.images, np.ndarray) and data.images.ndim == 4 and data.images.shape[1:3] == (size, size)
    for i, img in enumerate(data.images):
        if arr and data.images.dtype == np.uint8 and data.images.shape[-1] == 3:
            canvas, s, pad = img, 1.0, (0, 0)
        else:
            try:
                px = zimages.read_image(img) if isinstance(img, (str, Path)) else zimages.to_rgb(img)
            except ImageError as exc:
                log.warning("skipping %s", exc)
                continue
            canvas, s, pad = zimages.letterbox(px, size)
            canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        b = np.full((n_max, 4), -1, np.float32)
        lab = np.full((n_max,), -1, np.int32)
        k = len(data.boxes[i])
        if k:
            b[:k] = zimages.letterbox_boxes(data.boxes[i], s, pad)
            lab[:k] = data.labels[i]
        canvases.append(canvas)
        boxes.append(b)
        labels.append(lab)
    if not canvases:
        raise DetectionDataError("none of the images could be read")
    return np.stack(canvases), np.stack(boxes), np.stack(labels)


def augment_example(image, boxes, labels, seed, cfg: dict, size: int):
    """One letterboxed image (S, S, 3) float32 [0, 255] with boxes (M, 4) and labels (M,):
    flip, scale jitter (zoom in = crop, zoom out = grey padding) and colour, boxes moved with the
    pixels. A box keeps its label while ``MIN_KEPT`` of it stays in the frame (then clipped)."""
    import tensorflow as tf

    s = tf.random.experimental.stateless_split(seed, 8)
    S = float(size)
    valid = labels >= 0
    if cfg.get("flip"):
        flip = tf.random.stateless_uniform([], s[0]) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        boxes = tf.where(flip, tf.stack([S - boxes[:, 2], boxes[:, 1], S - boxes[:, 0], boxes[:, 3]], 1), boxes)
    lo, hi = cfg.get("scale") or (1.0, 1.0)
    if (lo, hi) != (1.0, 1.0):
        z = tf.exp(tf.random.stateless_uniform([], s[1], math.log(lo), math.log(hi)))
        room = S - z * S   # > 0: padding around the shrunk image; < 0: how much of the enlarged one is cut
        u = tf.random.stateless_uniform([2], s[2])
        tx, ty = tf.minimum(room, 0.0) + u[0] * tf.abs(room), tf.minimum(room, 0.0) + u[1] * tf.abs(room)
        # output pixel centre c -> input (c + 0.5 - t) / z - 0.5, so that edges map as e' = z e + t
        t = tf.stack([1 / z, 0.0, (0.5 - tx) / z - 0.5, 0.0, 1 / z, (0.5 - ty) / z - 0.5, 0.0, 0.0])
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=t[None], output_shape=tf.constant([size, size]),
            fill_value=114.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
        moved = boxes * z + tf.stack([tx, ty, tx, ty])
        clipped = tf.clip_by_value(moved, 0.0, S)
        area = lambda b: tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)  # noqa: E731
        kept = valid & (area(clipped) >= MIN_KEPT * area(moved)) & \
            (clipped[:, 2] - clipped[:, 0] >= 2.0) & (clipped[:, 3] - clipped[:, 1] >= 2.0)
        boxes = tf.where(kept[:, None], clipped, -1.0)
        labels = tf.where(kept, labels, -1)
    x = image / 255.0
    if cfg.get("brightness"):
        x = tf.image.stateless_random_brightness(x, cfg["brightness"], s[3])
    if cfg.get("contrast"):
        x = tf.image.stateless_random_contrast(x, *cfg["contrast"], s[4])
    if cfg.get("saturation"):
        x = tf.image.stateless_random_saturation(x, *cfg["saturation"], s[5])
    if cfg.get("hue"):
        x = tf.image.stateless_random_hue(x, cfg["hue"], s[6])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0, boxes, labels


def training_dataset(det, canvases, boxes, labels, batch_size: int, augment: dict | None = None, seed: int = 0,
                     shuffle: bool = True, repeat: bool = True):
    """A tf.data pipeline of ``(pixels, targets, weights)`` batches for ``det.keras_model.fit``."""
    import tensorflow as tf

    size = canvases.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((canvases, boxes, labels))
    if shuffle:
        ds = ds.shuffle(len(canvases), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def prep(i, el):
        img, b, lab = el
        img = tf.cast(img, tf.float32)
        if augment:
            img, b, lab = augment_example(img, b, lab, tf.stack([tf.cast(seed, tf.int64), i]), augment, size)
        return img, b, lab
    ds = ds.enumerate().map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.map(lambda x, b, lab: (x, *det.targets(x, b, lab)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class _ValMAP:
    """A Keras callback: COCO ``val_mAP`` / ``val_mAP50`` (pycocotools) every ``every`` epochs and
    after the last, added to the epoch logs and kept as ``points`` (epoch, mAP, mAP50)."""

    def __new__(cls, det, val, every: int, epochs: int, offset: int, verbose: int):
        import keras

        class ValMAP(keras.callbacks.Callback):
            points: list = []

            def on_epoch_end(self, epoch, logs=None):
                if logs is None or val is None or not every or ((epoch + 1) % every and epoch + 1 != epochs):
                    return
                t = time.perf_counter()
                r = det.evaluate(val, batch_size=32)
                logs["val_mAP"], logs["val_mAP50"] = r["mAP"], r["mAP50"]
                self.points.append((offset + epoch + 1, r["mAP"], r["mAP50"]))
                if verbose:
                    print(f"  val mAP {r['mAP']:.3f}, mAP50 {r['mAP50']:.3f} ({time.perf_counter() - t:.0f}s)",
                          flush=True)
        cb = ValMAP()
        cb.points = []
        return cb


def _fit_phase(det, tds, vds, steps, epochs, lr, cfg, val, verbose, out_dir, offset):
    """One phase of ``fit``; returns (Keras history without the mAP keys, [(epoch, mAP, mAP50)])."""
    import keras

    from zoo.training import Throughput, cosine_adamw, fit_callbacks, use_xla

    opt = cosine_adamw(lr, steps * epochs, cfg.weight_decay, cfg.warmup_fraction)
    opt.global_clipnorm = cfg.clipnorm  # read when gradients are applied
    det.keras_model.compile(opt, loss=det.losses(), jit_compile=use_xla())
    vmap = _ValMAP(det, val, cfg.eval_every, epochs, offset, verbose)
    cbs = [vmap, Throughput(steps * cfg.batch_size, verbose)]
    if val is not None and cfg.eval_every == 1:  # a score every epoch: keep the best (and stop early)
        if cfg.patience:
            cbs = fit_callbacks("val_mAP", cfg.patience, out_dir, cbs)
        elif out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            cbs.append(keras.callbacks.ModelCheckpoint(str(Path(out_dir) / "best.weights.h5"), monitor="val_mAP",
                                                       mode="max", save_best_only=True, save_weights_only=True))
    h = det.keras_model.fit(tds, validation_data=vds, epochs=epochs, steps_per_epoch=steps,
                            callbacks=cbs, verbose=verbose, shuffle=False)  # the dataset shuffles
    return {k: v for k, v in h.history.items() if k not in ("val_mAP", "val_mAP50")}, vmap.points


def train(train, val=None, backbone="efficientnet_lite0", epochs: int = 12, out_dir=None, **kwargs):
    """Train a :class:`zoo.tasks.detector.Detector` on ``train`` (validated on ``val``).

    ``train``/``val``: demo scenes, reader output or ``(images, boxes, labels[, names])``.
    ``backbone``: a registry name or a ZooModel (copied; never changed). Keyword arguments are
    the fields of :class:`DetectionConfig`. ``out_dir`` receives ``best.weights.h5``,
    ``curves.png`` and ``predictions.png`` (validation images, truth in green).
    """
    import keras

    import zoo
    from zoo.model import ZooModel
    from zoo.tasks.detector import Detector
    from zoo.training import Snapshot, copy_backbone, extend_history, keep_better, policy_for, unfreeze_backbone, verbosity

    cfg = DetectionConfig(epochs=epochs, **kwargs)
    verbose = verbosity(cfg.verbose)
    train = as_detection_data(train)
    val = as_detection_data(val) if val is not None else None
    if val is not None and list(val.class_names) != list(train.class_names):
        raise DetectionDataError(f"train and validation classes differ: {train.class_names[:4]}... vs "
                                 f"{val.class_names[:4]}...")
    size = _choose_size(train, cfg.input_size)
    augment = _augment_config(cfg.augment)
    keras.utils.set_random_seed(cfg.seed)
    policy = policy_for("float32")
    model = backbone if isinstance(backbone, ZooModel) else zoo.load(backbone, input_size=size)
    if model.input_size != size:
        model = _resized(model, size)
    det = Detector(copy_backbone(model, policy), train.class_names, cfg.head)
    t0 = time.perf_counter()
    canvases, boxes, labels = letterbox_set(train, size)
    steps = max(1, len(canvases) // cfg.batch_size)
    tds = training_dataset(det, canvases, boxes, labels, cfg.batch_size, augment, cfg.seed)
    vsub = val.take(np.arange(min(len(val), cfg.eval_images))) if val is not None else None
    vds = None
    if val is not None:
        vc, vb, vl = letterbox_set(val, size)
        vds = training_dataset(det, vc, vb, vl, cfg.batch_size, None, shuffle=False, repeat=False)
    history: dict = {"phase_starts": [], "val_mAP_epochs": [], "val_mAP": [], "val_mAP50": []}
    best_frozen, kept = None, "frozen"

    def record(h, points):
        extend_history(history, h)
        for e, m, m50 in points:
            history["val_mAP_epochs"].append(e)
            history["val_mAP"].append(float(m))
            history["val_mAP50"].append(float(m50))
    if cfg.epochs > 0:
        history["phase_starts"].append(0)
        det.feature_network.trainable = False
        h, points = _fit_phase(det, tds, vds, steps, cfg.epochs, cfg.lr, cfg, vsub, verbose, out_dir, 0)
        record(h, points)
        best_frozen = max((m for _, m, _ in points), default=None)
    if cfg.unfreeze_epochs > 0:
        start = len(history.get("loss", []))
        history["phase_starts"].append(start)
        snapshot = Snapshot(det.keras_model) if best_frozen is not None else None
        unfreeze_backbone(det, cfg.unfreeze, freeze_bn=True)
        h, points = _fit_phase(det, tds, vds, steps, cfg.unfreeze_epochs, cfg.unfreeze_lr, cfg, vsub, verbose,
                               out_dir, start)
        record(h, points)
        kept = keep_better(best_frozen, [m for _, m, _ in points], snapshot, out_dir, what="frozen-backbone")
        kept = "unfrozen" if kept == "finetuned" else "frozen"
    det.feature_network.trainable = True
    det.history = history
    det.training_config = {**{k: v for k, v in asdict(cfg).items() if k != "head"}, "input_size": size,
                           "augment": augment, "kept": kept, "n_train": len(canvases),
                           "train_seconds": round(time.perf_counter() - t0, 1)}
    if out_dir:
        out = Path(out_dir)
        plot_curves(history, out / "curves.png", f"{det.name} RetinaNet, {len(canvases)} training images")
        if val is not None:
            sheet(det, val.take(np.arange(min(len(val), 12))), out / "predictions.png")
    return det


def _resized(model, size: int):
    """The same backbone at another input size (weights are size-independent)."""
    from zoo.model import ZooModel

    other = ZooModel(model.entry, size, weights=None)
    other.feature_network.set_weights(model.feature_network.get_weights())
    return other


# ---- pictures ------------------------------------------------------------------------------
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def draw(image, detections: dict, truth=None, scale: int = 1) -> np.ndarray:
    """The image (array or file, as uint8) with ``detections`` drawn (class colours, "name score"), ground-truth
    boxes ``truth`` ((k, 4) array) thin green beneath; ``scale`` enlarges small images first."""
    from PIL import Image, ImageDraw

    from zoo.images import read_image, to_rgb

    img = read_image(image) if isinstance(image, (str, Path)) else to_rgb(image)
    img = np.clip(img, 0, 255).astype(np.uint8)
    im = Image.fromarray(img)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    lw = max(1, round(max(im.size) / 300))
    for b in (np.asarray(truth, np.float32).reshape(-1, 4) if truth is not None else []):
        d.rectangle([v * scale for v in b[:2]] + [v * scale - 1 for v in b[2:]], outline=(0, 255, 0), width=1)
    names = detections.get("names") or [str(c) for c in detections.get("labels", [])]
    for b, s, c, n in zip(detections["boxes"], detections["scores"], detections["labels"], names):
        color = PALETTE[int(c) % len(PALETTE)]
        x1, y1, x2, y2 = [float(v) * scale for v in b]
        d.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=color, width=lw)
        text = f"{n} {float(s):.2f}"
        tw, th = d.textbbox((0, 0), text)[2:]
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else y1 + 1
        d.rectangle([x1, ty, x1 + tw + 2, ty + th + 1], fill=color)
        d.text((x1 + 1, ty), text, fill=(0, 0, 0) if sum(color) > 400 else (255, 255, 255))
    return np.asarray(im)


def sheet(det, data, path, columns: int = 4, score_threshold: float = 0.3, scale: int = 2) -> Path:
    """A PNG grid of ``det``'s detections on ``data``'s images (truth in green)."""
    from PIL import Image

    from zoo.io import atomic_write

    data = as_detection_data(data)
    results = det.detect(data.images, score_threshold=score_threshold)
    tiles = [draw(img, r, t, scale) for img, r, t in zip(data.images, results, data.boxes)]
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * (h + 4), columns * (w + 4), 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * (h + 4):r * (h + 4) + t.shape[0], c * (w + 4):c * (w + 4) + t.shape[1]] = t
    buf = __import__("io").BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path


def plot_curves(history: dict, path, title: str = "") -> Path:
    """Loss (train, validation) and validation mAP per epoch; phases marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, name in ((axes[0], ("loss", "val_loss"), "loss"), (axes[1], ("val_mAP", "val_mAP50"), "validation mAP")):
        for key, style in zip(keys, ("-o", "--s")):
            if history.get(key):
                x = history.get("val_mAP_epochs") if key.startswith("val_mAP") else None
                x = x if x and len(x) == len(history[key]) else np.arange(1, len(history[key]) + 1)
                ax.plot(x, history[key], style, label=key, ms=3)
        for b in history.get("phase_starts", [])[1:]:
            ax.axvline(b + 0.5, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="epoch", title=name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    from zoo.plots import save_figure

    return save_figure(fig, path)
