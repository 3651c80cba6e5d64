"""Object detection (zoo.tasks.detector, recipes.detection): COCO metrics against known answers,
reader round trips and bad input, augmentation geometry, NMS, a short training run on demo scenes
that must converge, boxes mapped back from resized and padded inputs, save/load, MTCNN faces, the
CLI and the app page."""
import json
import logging

import numpy as np
import pytest

import zoo
from recipes import detection
from zoo.tasks import detector as zdet

from conftest import DETECTOR_TRAIN as TRAIN  # noqa: E402


# ---- COCO metrics (pycocotools) against hand-computed answers -------------------------------
def test_coco_metrics_known_answers():
    gt_b = [np.array([[10, 10, 50, 50], [60, 60, 90, 100]], np.float32), np.array([[5, 5, 20, 30]], np.float32)]
    gt_l = [np.array([0, 1]), np.array([1])]
    perfect = [{"boxes": b, "scores": np.ones(len(b)), "labels": lab} for b, lab in zip(gt_b, gt_l)]
    r = zdet.coco_metrics(gt_b, gt_l, perfect, ["a", "b"])
    assert r["mAP"] == pytest.approx(1.0) and r["mAP50"] == pytest.approx(1.0)
    assert r["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}

    # one of two objects found, exactly: precision 1 up to recall 0.5, nothing after; COCO's
    # 101-point interpolation gives 51/101 at every IoU threshold
    one = [{"boxes": gt_b[0][:1], "scores": np.ones(1), "labels": np.array([0])},
           {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}]
    r = zdet.coco_metrics([gt_b[0], np.zeros((0, 4))], [np.array([0, 0]), np.zeros(0, int)], one, ["a", "b"])
    assert r["mAP"] == pytest.approx(51 / 101) and r["mAP50"] == pytest.approx(51 / 101)
    assert r["per_class"]["b"] is None  # no ground truth: left out of the mean, as COCO does
    assert r["AR100"] == pytest.approx(0.5)

    # a box shifted to IoU 0.6 counts at thresholds 0.50-0.60 only: 3 of 10
    shifted = [{"boxes": np.array([[10, 10, 50, 50]], np.float32) + [0, 10, 0, 10], "scores": np.ones(1),
                "labels": np.array([0])}]
    r = zdet.coco_metrics([np.array([[10, 10, 50, 50]], np.float32)], [np.array([0])], shifted, ["a"])
    assert r["mAP50"] == pytest.approx(1.0) and r["mAP75"] == 0.0 and r["mAP"] == pytest.approx(0.3)

    # a confident false positive of another class costs nothing here; the wrong class finds nothing
    wrong = [{"boxes": gt_b[1], "scores": np.ones(1), "labels": np.array([0])}]
    r = zdet.coco_metrics([gt_b[1]], [np.array([1])], wrong, ["a", "b"])
    assert r["mAP"] == 0.0 and r["per_class"]["b"] == 0.0


# ---- readers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def few_scenes():
    return detection.scenes("val", n=6, size=64)


def _same(a, b, atol):
    a, b = detection.as_detection_data(a), detection.as_detection_data(b)
    assert len(a) == len(b)
    for i in range(len(a)):
        np.testing.assert_allclose(a.boxes[i], b.boxes[i], atol=atol)
        np.testing.assert_array_equal(a.labels[i], b.labels[i])


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_reader_round_trips(tmp_path, few_scenes, fmt):
    data = detection.as_detection_data(few_scenes)
    if fmt == "coco":
        back = detection.read_coco(detection.write_coco(data, tmp_path / "ann.json", tmp_path / "images"),
                                   tmp_path / "images")
    elif fmt == "voc":
        back = detection.read_voc(detection.write_voc(data, tmp_path / "voc"), class_names=data.class_names)
    else:
        detection.write_yolo(data, tmp_path / "yolo")
        back = detection.read_yolo(tmp_path / "yolo", tmp_path / "yolo" / "names.txt")
    assert back.class_names == data.class_names
    _same(data, back, atol=1e-3 if fmt == "yolo" else 1e-5)
    from zoo.images import read_image

    np.testing.assert_array_equal(read_image(back.images[2]).astype(np.uint8), data.images[2])


def test_coco_reader_bad_input(tmp_path, caplog):
    from PIL import Image

    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "images" / name)
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40},
                      {"id": 2, "file_name": "b.png", "width": 60, "height": 40},
                      {"id": 3, "file_name": "missing.png", "width": 60, "height": 40}],
           "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}],
           "annotations": [
               {"id": 10, "image_id": 1, "category_id": 7, "bbox": [50, 30, 20, 20]},   # reaches outside: clipped
               {"id": 11, "image_id": 1, "category_id": 9, "bbox": [5, 5, 0, 10]},     # zero area: skipped
               {"id": 12, "image_id": 1, "category_id": 9, "bbox": [5, 5, -4, 10]},    # inverted: skipped
               {"id": 13, "image_id": 1, "category_id": 3, "bbox": [5, 5, 10, 10]},    # unknown class: skipped
               {"id": 14, "image_id": 99, "category_id": 7, "bbox": [5, 5, 10, 10]},   # unknown image: skipped
               {"id": 15, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 4]},      # fine
               {"id": 16, "image_id": 3, "category_id": 9, "bbox": [1, 2, 3, 4]}]}     # its file is missing
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="recipes.detection"):
        d = detection.read_coco(path, tmp_path / "images")
    assert d.class_names == ["cat", "dog"]
    assert [len(b) for b in d.boxes] == [2, 0]          # b.png has no boxes: kept as a negative
    np.testing.assert_allclose(d.boxes[0], [[50, 30, 60, 40], [1, 2, 4, 6]])
    np.testing.assert_array_equal(d.labels[0], [0, 1])
    text = caplog.text
    for record, why in (("annotation 10", "clipped"), ("annotation 11", "zero area"), ("annotation 12", "inverted"),
                        ("annotation 13", "category_id 3"), ("annotation 14", "image_id 99"), ("missing.png", "missing")):
        assert record in text and why in text, (record, why)
    assert str(path) in text

    path.write_text('{"images": [')
    with pytest.raises(detection.DetectionDataError, match="ann.json is not valid JSON"):
        detection.read_coco(path, tmp_path / "images")
    path.write_text('{"images": []}')
    with pytest.raises(detection.DetectionDataError, match="not a COCO detection file"):
        detection.read_coco(path)


def test_yolo_and_voc_readers_bad_input(tmp_path, caplog):
    from PIL import Image

    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(root / "images" / name)
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n5 0.5 0.5 0.1 0.1\nnot a line\n1 0.95 0.5 0.2 0.2\n")
    with caplog.at_level(logging.WARNING, logger="recipes.detection"):
        d = detection.read_yolo(root, ["x", "y"])
    np.testing.assert_allclose(d.boxes[0], [[40, 15, 60, 35], [85, 20, 100, 30]], atol=1e-4)
    assert len(d.boxes[1]) == 0
    assert "a.txt:2: class id 5" in caplog.text and "a.txt:3" in caplog.text and "a.txt:4" in caplog.text

    voc = tmp_path / "voc"
    voc.mkdir()
    Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(voc / "p.png")
    (voc / "p.xml").write_text("<annotation><filename>p.png</filename><object><name>tree</name><bndbox>"
                               "<xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>"
                               "<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
                               "<ymax>5</ymax></bndbox></object></annotation>")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recipes.detection"):
        d = detection.read_voc(voc, class_names=["tree"])
    np.testing.assert_allclose(d.boxes[0], [[10, 5, 30, 25]])
    assert "p.xml object 1: class 'car'" in caplog.text
    (voc / "p.xml").write_text("<annotation><object>")
    with pytest.raises(detection.DetectionDataError, match="p.xml is not valid XML"):
        detection.read_voc(voc)


def test_voc_reader_and_tiles_on_real_tree_crowns():
    """The deepforest wheel's NEON aerial images with their VOC crowns (bench/detect_trees.py's data)."""
    import importlib.util
    from pathlib import Path

    from zoo.images import read_image

    spec = importlib.util.find_spec("deepforest")
    if spec is None:
        pytest.skip("deepforest is not installed (scripts/setup.sh installs it --no-deps)")
    d = detection.read_voc(Path(spec.origin).parent / "data")
    count = {Path(s).stem: len(b) for s, b in zip(d.sources, d.boxes)}
    assert count == {"OSBS_029": 61, "SOAP_061": 37, "2019_YELL_2_541000_4977000_image_crop": 279,
                     "2019_YELL_2_528000_4978000_image_crop2": 574}
    assert d.class_names == ["Alive", "Dead", "Tree"]   # SOAP_061 marks its crowns alive (9) or dead (28)
    assert np.bincount(d.labels[[Path(s).stem for s in d.sources].index("SOAP_061")]).tolist() == [9, 28]
    i = [Path(s).stem for s in d.sources].index("OSBS_029")
    np.testing.assert_allclose(d.boxes[i][0], [202, 66, 227, 90])   # <xmin>203 <ymin>67 <xmax>227 <ymax>90, 1-based

    big = d.take([[Path(s).stem for s in d.sources].index("2019_YELL_2_541000_4977000_image_crop")])  # 1249 x 1035
    t = detection.tiles(big, size=400, overlap=0.25)
    assert len(t) == 4 * 4 and all(np.shape(x) == (400, 400, 3) for x in t.images)  # x: 0,300,600,849; y: 0,300,600,635
    origin = {s.rsplit("@", 1)[1] for s in t.sources}
    assert {"0,0", "849,635", "849,0", "0,635"} <= origin
    for b in t.boxes:
        assert ((b >= 0) & (b <= 400)).all() and (b[:, 2] > b[:, 0]).all()
    # every crown lies whole in at least one tile (all are under 100 px; tiles overlap by 100)
    whole = 0
    for box in big.boxes[0]:
        whole += any(np.isclose(tb, box - [int(x), int(y)] * 2, atol=1e-4).all(1).any()
                     for tb, (x, y) in zip(t.boxes, (s.rsplit("@", 1)[1].split(",") for s in t.sources)))
    assert whole == len(big.boxes[0])
    image = read_image(big.images[0])
    np.testing.assert_array_equal(t.images[-1], np.clip(np.round(image[635:, 849:]), 0, 255).astype(np.uint8))


# ---- augmentation moves boxes with pixels --------------------------------------------------
def test_augmentation_moves_boxes_with_pixels():
    import tensorflow as tf

    size = 96
    img = np.zeros((size, size, 3), np.float32)
    img[20:50, 30:70] = 255.0                      # a white block: its box is (30, 20, 70, 50)
    boxes = np.array([[30, 20, 70, 50], [-1, -1, -1, -1]], np.float32)
    labels = np.array([3, -1], np.int32)
    checked, turned = 0, 0
    for i in range(48):
        cfg = {"flip": True, "scale": (0.6, 1.6), **({"vflip": True, "transpose": True} if i >= 24 else {})}
        x, b, lab = detection.augment_example(tf.constant(img), tf.constant(boxes), tf.constant(labels),
                                              tf.constant([7, i], tf.int64), cfg, size)
        x, b, lab = x.numpy(), b.numpy(), lab.numpy()
        assert lab[1] == -1
        white = np.argwhere(x[..., 0] > 127)
        if lab[0] == -1:   # mostly cut away by the crop: no longer an object
            continue
        y0, x0 = white.min(0)
        y1, x1 = white.max(0) + 1
        np.testing.assert_allclose(b[0], [x0, y0, x1, y1], atol=1.01)
        checked += 1
        turned += (y1 - y0) > (x1 - x0)            # the 40x30 block stands upright after a quarter turn
    assert checked >= 36 and turned >= 6


def test_cli_augment_choices_are_the_library_presets():
    """The CLI lists the presets itself (reading AUGMENT would load TensorFlow to build the parser)."""
    import argparse

    from zoo.tasks.detector.cli import add_commands
    from zoo.tasks.detector.train import AUGMENT

    sub = argparse.ArgumentParser().add_subparsers()
    add_commands(sub)
    augment = next(a for a in sub.choices["train-detector"]._actions if a.dest == "augment")
    assert sorted(augment.choices) == sorted(AUGMENT) and augment.default in AUGMENT


def test_detector_trains_with_ema_and_every_orientation():
    """``ema`` and the "overhead" preset reach the detector through the one trainer: the epochs are
    scored on the averaged weights, and training ends with them (not the last step's)."""
    tr, va = detection.scenes(("train", "val"), n={"train": 64, "val": 16}, size=64)
    kw = dict(input_size=64, head_epochs=1, epochs=1, unfreeze=1, batch_size=16, verbose=0)
    det = detection.train(tr, va, ema=0.9, augment="overhead", **kw)
    assert det.training_config["ema"] == 0.9
    assert det.training_config["augment"]["vflip"] and det.training_config["augment"]["transpose"]
    scored = det.history["val_mAP"]   # one per phase here: the kept phase's is the returned model's
    assert det.evaluate(va)["mAP"] == pytest.approx(scored[-1 if det.training_config["kept"] == "finetuned" else 0],
                                                   abs=1e-6), (det.training_config["kept"], scored)
    plain = detection.train(tr, va, augment="overhead", **kw)
    head = lambda d: d.keras_model.get_layer("box_head").get_weights()[0]  # noqa: E731
    assert not np.allclose(head(det), head(plain))


# ---- NMS and decoding -----------------------------------------
def test_postprocess_nms_keeps_the_best_of_overlapping_boxes():
    import tensorflow as tf

    anchors = tf.constant([[10, 10, 50, 50], [12, 12, 52, 52], [60, 60, 90, 90], [0, 0, 8, 8]], tf.float32)
    logits = np.full((1, 4, 3), -9.0, np.float32)
    logits[0, 0, 1], logits[0, 1, 1], logits[0, 2, 2] = 2.0, 3.0, 1.0     # anchors 0 and 1 overlap (IoU 0.82)
    deltas = np.zeros((1, 4, 4), np.float32)
    deltas[0, 2] = [0.5, 0, 0, 0]                     # x shifted by 0.5 * 0.1 * width 30 = 1.5 px
    out = {"cls_logits": tf.constant(logits), "bbox_regression": tf.constant(deltas)}
    boxes, scores, labels, n = (t.numpy() for t in zdet.postprocess(out, anchors, [0.1, 0.1, 0.2, 0.2],
                                                                      0.3, 0.5, 10))
    assert int(n[0]) == 2
    np.testing.assert_allclose(boxes[0, :2], [[12, 12, 52, 52], [61.5, 60, 91.5, 90]], atol=1e-4)
    np.testing.assert_array_equal(labels[0, :2], [1, 2])
    np.testing.assert_allclose(scores[0, :2], 1 / (1 + np.exp([-3.0, -1.0])), rtol=1e-5)
    _, _, _, n = zdet.postprocess(out, anchors, [0.1, 0.1, 0.2, 0.2], 0.3, 0.9, 10)
    assert int(n[0]) == 3  # a looser IoU threshold keeps both overlapping boxes

    # per-class NMS (COCO evaluation): anchor 0's runner-up class 0 is not suppressed by class 1's box
    logits[0, 0, 0] = 1.5
    out["cls_logits"] = tf.constant(logits)
    boxes, scores, labels, n = (t.numpy() for t in zdet.postprocess(
        out, anchors, [0.1, 0.1, 0.2, 0.2], 0.3, 0.5, 10, class_agnostic=False))
    assert int(n[0]) == 3
    np.testing.assert_array_equal(labels[0, :3], [1, 0, 2])
    np.testing.assert_allclose(boxes[0, 1], [10, 10, 50, 50], atol=1e-4)
    _, _, labels, n = zdet.postprocess(out, anchors, [0.1, 0.1, 0.2, 0.2], 0.3, 0.5, 10)
    assert int(n[0]) == 2 and labels.numpy()[0, 0] == 1   # class-agnostic: the overlapping box is gone


# ---- an untrained detector: shapes, input kinds, save/load (fast) ---------------------------
def test_untrained_detector_outputs_and_folder(tmp_path, photos):
    import tensorflow as tf

    import zoo

    det = zdet.Detector(zoo.load("efficientnet_lite0", input_size=64), ["a", "b"], {"filters": 32, "convs": 1})
    assert det.anchors.shape == ((8 * 8 + 4 * 4 + 2 * 2) * 9, 4)
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((3, 50, 70, 3), np.uint8))
    for images in ([photos["camera"], photos["coffee"]], ds, np.zeros((2, 30, 90), np.float32)):
        r = det.detect(images, score_threshold=0.0, max_detections=5, batch_size=2)
        assert all(d["boxes"].shape[1] == 4 and len(d["boxes"]) == len(d["scores"]) == len(d["names"]) <= 5
                   for d in r)
    with pytest.raises(Exception, match="score_threshold"):
        det.detect(photos["camera"], score_threshold=1.5)
    det.save(tmp_path / "d")
    back = zoo.load(tmp_path / "d")
    assert back.class_names == ["a", "b"] and back.head_config["filters"] == 32
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    for k, v in det.keras_model(x).items():
        np.testing.assert_allclose(back.keras_model(x)[k], v, atol=1e-5)


# ---- training converges; boxes map back; save/load -----------------------------------------
@pytest.fixture
def trained(trained_detector):
    return trained_detector   # conftest: trained once per session (tests/test_instances.py uses it too)


@pytest.mark.slow  # shares the trained fixture: about 70 s of training
def test_training_converges_on_held_out_scenes(trained):
    det, out = trained
    test = detection.scenes("test", n=48, size=TRAIN["size"])
    r = det.evaluate(test)
    # chance (boxes anywhere, any class) is about 0; the untrained network finds nothing
    assert r["mAP50"] > 0.12, r     # measured 0.20 (and mAP 0.10) on 2 busy cores
    assert r["mAP"] > 0.05, r
    assert (out / "curves.png").stat().st_size > 1000 and (out / "predictions.png").stat().st_size > 1000
    assert det.history["loss"][-1] < det.history["loss"][0]


@pytest.mark.slow  # shares the trained fixture: about 70 s of training
def test_boxes_map_back_from_resized_and_padded_inputs(trained):
    """Scenes enlarged 3x, padded (wider, taller) and mixed in one call: scored against their
    ground truth moved the same way, boxes must come back in each image's own pixels."""
    det, size = trained[0], TRAIN["size"]
    s = detection.scenes("test", n=16, size=size)
    base = det.evaluate((s.images, s.boxes, s.labels))["mAP50"]
    assert base > 0.15

    def pad(img, h, w, dy, dx):
        out = np.full((h, w, 3), 114, np.uint8)
        out[dy:dy + size, dx:dx + size] = img
        return out
    big = ([np.repeat(np.repeat(im, 3, 0), 3, 1) for im in s.images], [b * 3 for b in s.boxes])
    wide = ([pad(im, size, size + 40, 0, 30) for im in s.images], [b + [30, 0, 30, 0] for b in s.boxes])
    tall = ([pad(im, size + 50, size, 12, 0) for im in s.images], [b + [0, 12, 0, 12] for b in s.boxes])
    mixed = tuple([v[i] for i, v in zip(range(16), [big[k], wide[k], tall[k]] * 6)] for k in (0, 1))
    for name, (imgs, boxes) in {"enlarged": big, "wider": wide, "taller": tall, "mixed": mixed}.items():
        r = det.evaluate((imgs, boxes, s.labels))
        assert r["mAP50"] > 0.6 * base, (name, r["mAP50"], base)
        for img, d in zip(imgs, det.detect(imgs, score_threshold=0.2)):
            h, w = img.shape[:2]
            assert d["boxes"].size == 0 or (d["boxes"][:, [0, 2]].max() <= w and d["boxes"][:, [1, 3]].max() <= h)


@pytest.mark.slow  # shares the trained fixture: about 70 s of training
def test_save_load_round_trip(trained, tmp_path):
    import zoo
    from zoo.io import read_config

    det = trained[0]
    imgs = detection.scenes("test", n=3, size=TRAIN["size"]).images
    det.save(tmp_path / "det")
    cfg = read_config(tmp_path / "det")
    assert cfg["kind"] == "detector" and cfg["labels"] == det.class_names
    back = zoo.load(tmp_path / "det")
    assert isinstance(back, zdet.Detector) and back.head_config == det.head_config
    for a, b in zip(det.detect(imgs, score_threshold=0.2), back.detect(imgs, score_threshold=0.2)):
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-3)
        np.testing.assert_array_equal(a["labels"], b["labels"])
        assert a["names"] == b["names"]


@pytest.mark.slow  # shares the trained fixture: about 70 s of training
def test_cli_detect_draws(trained, tmp_path, capsys):
    from PIL import Image

    from zoo.tasks.detector.cli import add_commands
    from zoo.cli import main

    det = trained[0]
    det.save(tmp_path / "model")
    img = detection.scenes("test", n=1, size=TRAIN["size"]).images[0]
    Image.fromarray(img).save(tmp_path / "scene.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rc = main(["detect", str(tmp_path / "scene.png"), str(tmp_path / "broken.png"), "--model", str(tmp_path / "model"),
               "--draw", str(tmp_path / "drawn"), "--json"], plugins=[add_commands])
    out = capsys.readouterr()
    assert rc == 1 and "broken.png" in out.err      # one unreadable input: reported, the rest done
    found = json.loads(out.out)
    assert found[0]["image"].endswith("scene.png") and found[0]["detections"]
    assert Image.open(tmp_path / "drawn" / "scene.png").size == (TRAIN["size"], TRAIN["size"])
    assert main(["detect", str(tmp_path / "scene.png"), "--model", str(tmp_path / "nowhere")],
                plugins=[add_commands]) == 1
    assert main(["train-detector", str(tmp_path / "ann.json"), "--out", str(tmp_path / "run")],
                plugins=[add_commands]) == 1
    assert "ann.json: no such file" in capsys.readouterr().err


# ---- MTCNN faces through the same interface ------------------------------------------------
def test_mtcnn_faces(photos):
    pytest.importorskip("mtcnn")
    faces = zoo.load("mtcnn_faces")
    r = faces.detect([photos["astronaut"], photos["coffee"]], score_threshold=0.9)
    assert len(r[0]["boxes"]) == 1 and r[0]["names"] == ["face"] and len(r[1]["boxes"]) == 0
    x1, y1, x2, y2 = r[0]["boxes"][0]
    assert 170 < x1 < 200 and 50 < y1 < 80 and 250 < x2 < 280 and 160 < y2 < 190   # Eileen Collins' face
    with pytest.raises(zoo.UnknownModelError, match="unknown model 'mtcnn_face'.*mtcnn_faces"):
        zoo.load("mtcnn_face")


# ---- the app page --------------------------------------------------------------------------
@pytest.mark.slow  # shares the trained fixture: about 70 s of training
def test_detect_page(trained, tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    trained[0].save(tmp_path / "model")
    monkeypatch.setenv("ZOO_DETECTOR", str(tmp_path / "model"))  # the folder the server was started with
    page = Path(__file__).resolve().parent.parent / "apps" / "pages_" / "detect.py"
    at = AppTest.from_file(str(page), default_timeout=240)
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert len(at.dataframe) == 1     # the demo scene's detections, with the model's class names
    assert set(at.dataframe[0].value["label"]) <= set(trained[0].class_names)
    at.sidebar.slider[0].set_value(0.95).run()
    assert not at.exception and not at.error
    if __import__("importlib").util.find_spec("mtcnn"):
        at.sidebar.radio[0].set_value("MTCNN faces").run()
        assert not at.exception and not at.error
        assert at.dataframe[0].value["label"].tolist() == ["face"]


@pytest.mark.slow  # shares the trained fixture
def test_export_saved_model_and_onnx_match_detect(trained, tmp_path):
    """Issue 12: the detector exports with preprocessing, decoding and NMS inside; SavedModel and
    ONNX Runtime give detect()'s boxes on images at the input size. TFLite is refused (no NMS op)."""
    import tensorflow as tf

    from zoo.export import ExportError
    from zoo.runtimes import open_runner

    det = trained[0]
    s = detection.scenes("test", n=8, size=det.input_size)
    want = det.detect(s.images, score_threshold=0.3)
    served = tf.saved_model.load(str(det.export(tmp_path / "sm", format="saved_model"))).signatures["serving_default"]
    got_sm = {k: v.numpy() for k, v in served(images=tf.constant(s.images)).items()}
    got_onnx = open_runner(det.export(tmp_path / "det.onnx", format="onnx"))(images=s.images)
    for got in (got_sm, got_onnx):
        for i, w in enumerate(want):
            n = int(got["count"][i])
            assert n == len(w["boxes"]), (i, n, len(w["boxes"]))
            np.testing.assert_allclose(got["boxes"][i, :n], w["boxes"], atol=0.05)
            np.testing.assert_allclose(got["scores"][i, :n], w["scores"], atol=1e-4)
            np.testing.assert_array_equal(got["labels"][i, :n], w["labels"])
    assert sum(len(w["boxes"]) for w in want) > 0  # something was detected to compare
    with pytest.raises(ExportError, match="non-max suppression"):
        det.export(tmp_path / "det.tflite", format="tflite")
