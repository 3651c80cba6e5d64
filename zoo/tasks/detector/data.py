"""Detection data: images with boxes and class labels, read from COCO JSON, Pascal VOC XML, YOLO
folders or tensorflow-datasets, written back to those formats, cut into tiles.

Readers check every record: boxes reaching outside the image are clipped (warning), zero-area or
inverted boxes and unknown classes are skipped (warning naming the file and record), images
without boxes are kept as negatives, missing image files are skipped (warning), and a file that
does not parse raises :class:`DetectionDataError` naming it.
"""
from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET  # expat >= 2.4.1 refuses entity expansion bombs; no external entities
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo import tfds as ztfds
from zoo.errors import DataError, RecipeError

log = logging.getLogger(__name__)
# tfds name -> how its boxes count pixels ("voc": 1-based inclusive indices, "coco": edges)
TFDS_DATASETS = {"voc/2007": "voc", "voc/2012": "voc", "coco/2014": "coco", "coco/2017": "coco"}


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

    def split(self, fraction: float = 0.1, seed: int = 0) -> tuple["DetectionData", "DetectionData"]:
        """(rest, held-out) at random."""
        order = np.random.default_rng(seed).permutation(len(self))
        k = max(1, int(round(fraction * len(self))))
        return self.take(order[k:]), self.take(order[:k])

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
        px = zimages.rgb(img)
        px = zimages.as_uint8(px)
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


def read_data(spec: str, images=None, names=None):
    """Training data from a CLI argument: a COCO JSON, a VOC folder or a YOLO folder (None: a named
    demo dataset)."""
    from zoo.data import named_datasets

    if spec in named_datasets():
        return None
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix.lower() == ".json":
        return read_coco(p, images)
    if not p.exists():
        raise DataError(f"{spec}: no such file or folder (give 'scenes', a COCO .json, a VOC or a YOLO folder)")
    if names:
        return read_yolo(p, names.split(",") if "," in names or not Path(names).is_file() else names)
    if p.is_dir() and ((p / "Annotations").is_dir() or any(p.rglob("*.xml"))):
        return read_voc(p)
    raise DataError(f"{spec}: not a COCO .json or a VOC folder; for a YOLO folder give --names")


def tfds_boxes(bbox, width: int, height: int, style: str = "coco") -> tuple[np.ndarray, np.ndarray]:
    """(boxes (k,4) float32 xyxy pixel edges clipped to the image, kept (n,) bool) from tfds's
    normalised (n,4) ``(ymin, xmin, ymax, xmax)``. ``style="voc"``: 1-based inclusive indices."""
    b = np.asarray(bbox, np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height
    if style == "voc":
        x1, y1 = x1 - 1, y1 - 1
    xyxy = np.stack([x1, y1, x2, y2], axis=1)
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    kept = np.isfinite(xyxy).all(axis=1) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return xyxy[kept].astype(np.float32), kept


def read_tfds(name: str, split: str = "train", data_dir=None, limit: int | None = None,
                        download: bool = True):
    """A tfds detection dataset as :class:`DetectionData` of uint8 (H,W,3) arrays.

    ``name``: "voc/2007", "voc/2012", "coco/2014" or "coco/2017" ("voc" = "voc/2007",
    "coco" = "coco/2017"; a ":version" suffix is passed on). ``split``: any tfds split string
    ("train", "validation", "test", "train[:10%]"). ``limit``: the first ``limit`` examples.
    Class names are tfds's. Images keep their own sizes; images without boxes are kept.
    """
    base, full = ztfds.split_name(name)
    if base not in TFDS_DATASETS:
        raise DataError(f"detection_from_tfds supports {', '.join(TFDS_DATASETS)} (not {name!r}); "
                        "for other data use zoo.tasks.detector.read_voc/read_coco/read_yolo on local files")
    style = TFDS_DATASETS[base]
    examples, info = ztfds.load(full, split, data_dir, limit, download,
                           "zoo.tasks.detector.read_voc/read_coco")
    class_names = list(info.features["objects"]["label"].names)
    images, boxes, labels, sources = [], [], [], []
    dropped = crowd = 0
    for i, ex in enumerate(examples):
        img = np.asarray(ex["image"], np.uint8)
        h, w = img.shape[:2]
        obj = ex["objects"]
        bbox = np.asarray(obj["bbox"], np.float32).reshape(-1, 4)
        lab = np.asarray(obj["label"], np.int64).reshape(-1)
        if len(bbox) != len(lab) or ("is_crowd" in obj and len(obj["is_crowd"]) != len(lab)):
            raise DataError(f"{full}:{split} example {i}: objects have {len(bbox)} boxes but {len(lab)} labels")
        keep = np.ones(len(lab), bool)
        if "is_crowd" in obj:
            is_crowd = np.asarray(obj["is_crowd"], bool).reshape(-1)
            crowd += int(is_crowd.sum())
            keep &= ~is_crowd
        b, ok = tfds_boxes(bbox[keep], w, h, style)
        dropped += int((~ok).sum())
        images.append(img)
        boxes.append(b)
        labels.append(lab[keep][ok])
        sources.append(f"{full}:{split}:{ztfds.text(ex.get('image/filename'), str(i))}")
    if not images:
        raise DataError(f"tensorflow-datasets {full!r} split {split!r} has no examples")
    if dropped or crowd:
        log.info("%s %s: dropped %d crowd and %d empty or inverted boxes", full, split, crowd, dropped)
    return DetectionData(images, boxes, labels, class_names, sources)
