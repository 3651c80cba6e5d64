"""Instance masks (recipes.instances): COCO mask AP against hand-computed answers, masks from true
boxes and true class maps, and a trained detector with a trained segmenter on held-out scenes."""
import numpy as np
import pytest

from recipes.instances import InstanceSegmenter, fused_class_map, masks_for_boxes
from recipes.scenes import scenes
from zoo.errors import DataError
from zoo.tasks.detector import coco_metrics


def _truth_masks(s):
    return [np.stack([inst == j + 1 for j in range(len(b))]) for inst, b in zip(s.instances, s.boxes)]


def test_mask_ap_known_answers():
    gt = np.zeros((1, 20, 20), bool)
    gt[0, 0:10, 0:10] = True                      # 100 pixels
    pred = np.zeros_like(gt)
    pred[0, 0:10, 0:6] = True                     # 60 pixels inside: IoU 0.6
    box = np.array([[0, 0, 10, 10]], np.float32)
    det = [{"boxes": box, "scores": np.ones(1), "labels": np.zeros(1, int), "masks": pred}]
    r = coco_metrics([box], [np.zeros(1, int)], det, ["a"], gt_masks=[gt])
    # IoU 0.6 matches at thresholds .50, .55, .60 and misses the other seven: mAP 3/10
    assert r["mAP"] == pytest.approx(0.3, abs=1e-6) and r["mAP50"] == pytest.approx(1.0)
    assert r["mAP75"] == pytest.approx(0.0)
    same = [{**det[0], "masks": gt}]
    assert coco_metrics([box], [np.zeros(1, int)], same, ["a"], gt_masks=[gt])["mAP"] == pytest.approx(1.0)
    # the box metric on the same detections is unaffected by the masks
    assert coco_metrics([box], [np.zeros(1, int)], det, ["a"])["mAP"] == pytest.approx(1.0)


def test_true_boxes_and_true_class_maps_give_back_the_instances():
    s = scenes("test", n=40, size=128)
    truth = _truth_masks(s)
    dets = [{"boxes": b, "labels": lab, "scores": 1 - 0.01 * np.arange(len(b))} for b, lab in zip(s.boxes, s.labels)]
    out = [masks_for_boxes(d, m, list(range(1, 11))) for d, m in zip(dets, s.masks)]
    ious = [(a & b).sum() / (a | b).sum() for o, t in zip(out, truth) for a, b in zip(o, t)]
    assert np.mean(ious) > 0.97 and min(ious) > 0.5, (np.mean(ious), min(ious))  # measured 0.989, 0.73
    assert all((o.sum(0) <= 1).all() for o in out)    # no pixel in two instances
    for o, d in zip(out, dets):                        # each mask inside its box
        for m, (x1, y1, x2, y2) in zip(o, d["boxes"]):
            ys, xs = np.nonzero(m)
            assert xs.min() >= np.floor(x1) and xs.max() < np.ceil(x2) and ys.min() >= np.floor(y1) and ys.max() < np.ceil(y2)
    r = coco_metrics(s.boxes, s.labels, [{**d, "masks": o} for d, o in zip(dets, out)], s.class_names, gt_masks=truth)
    assert r["mAP"] > 0.95 and r["mAP50"] == pytest.approx(1.0)   # measured 0.977


def test_boxes_lend_their_classes_to_the_foreground_they_cover():
    probs = np.zeros((10, 10, 3), np.float32)       # classes: background, a, b
    probs[..., 0] = 1.0
    probs[2:8, 2:8] = [0.1, 0.5, 0.4]                # an item the segmenter calls a, just
    probs[4:6, 4:6] = [0.6, 0.2, 0.2]                # a hole it calls background
    dets = {"boxes": np.array([[2, 2, 6, 8], [0, 0, 10, 10]], np.float32), "scores": np.array([0.9, 0.2]),
            "labels": np.array([1, 0])}               # box 0: class b on the item's left part; box 1 below 0.3
    alone = probs.argmax(-1)
    np.testing.assert_array_equal(fused_class_map(probs, dets, [1, 2], weight=0.0), alone)
    fused = fused_class_map(probs, dets, [1, 2], weight=0.5)
    want = alone.copy()
    want[2:8, 2:6] = 2                                # log-mix 0.5: b (0.44 x 0.9) beats a (0.56 x 0.1)
    want[4:6, 4:6] = 0                                # background stays background
    np.testing.assert_array_equal(fused, want)
    dets["scores"] = np.array([0.9, 0.9])             # the big box says a at the same score: a mixture
    both = fused_class_map(probs, dets, [1, 2], weight=0.5)
    assert both[3, 3] == 1 and both[3, 7] == 1         # q = (0.5, 0.5) inside both, (0.9, 0.1) in the big one only
    with pytest.raises(DataError, match="weight"):
        fused_class_map(probs, dets, [1, 2], weight=1.5)


@pytest.mark.slow  # uses the session's trained detector and segmenter (conftest)
def test_trained_detector_and_segmenter_give_instance_masks(trained_detector, trained_segmenter):
    det, seg = trained_detector[0], trained_segmenter[0]
    inst = InstanceSegmenter(det, seg)
    test = scenes("test", n=48, size=96)
    out = inst.predict(test.images[:4], score_threshold=0.3)
    for o, img in zip(out, test.images[:4]):
        assert o["masks"].shape == (len(o["boxes"]), *img.shape[:2]) and o["masks"].dtype == bool
        assert (o["masks"].sum(0) <= 1).all()
    r = inst.evaluate(test)
    # a mask counts only where the box is right and the segmenter gives its pixels the box's class;
    # both models are trained for about a minute here, so the figures are low but far from zero
    assert r["mask"]["n_boxes"] == sum(len(b) for b in test.boxes)
    assert r["mask"]["mAP50"] > 0.02, r["mask"]
    assert r["mask"]["mAP50"] <= r["box"]["mAP50"] + 0.05, (r["mask"], r["box"])
    # class maps: without a second stage the boxes lend nothing by default; weight 0.3 changes only
    # foreground inside boxes
    assert inst.box_weight() == 0.0 and inst.box_weight(0.5) == 0.5
    alone = seg.segment(test.images[:8], progress=False)
    for a, b in zip(inst.segment(test.images[:8]), alone):
        np.testing.assert_array_equal(a, b)
    dets = det.detect(test.images[:8], score_threshold=0.3)
    for f, a, d in zip(inst.segment(test.images[:8], weight=0.3), alone, dets):
        inside = np.zeros(a.shape, bool)
        for x1, y1, x2, y2 in d["boxes"]:
            inside[int(np.floor(max(y1, 0))):int(np.ceil(y2)), int(np.floor(max(x1, 0))):int(np.ceil(x2))] = True
        changed = f != a
        assert not (changed & ~inside).any() and not (changed & (a == 0)).any() and (f[a == 0] == 0).all()
    m = inst.evaluate_maps(test, weight=0.3)
    assert m["fused"]["n"] == m["segmenter"]["n"] == 48
    assert m["segmenter"]["mIoU"] == pytest.approx(seg.evaluate(test, progress=False)["mIoU"], abs=0.01)
    mirrored = InstanceSegmenter(det, seg, tta="flip")   # the segmenter's test-time augmentation for every map
    maps = mirrored.segment(test.images[:4], weight=0.0)
    for a, b in zip(maps, seg.segment(test.images[:4], tta="flip", progress=False)):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(maps, alone))   # not the plain maps: the setting reached them


def test_mismatched_class_names_are_refused():
    import zoo
    from zoo.tasks.detector import Detector
    from zoo.tasks.segmenter import Segmenter

    body = zoo.load("efficientnet_lite0", input_size=64)
    det = Detector(body, ["cat", "bird"])
    with pytest.raises(DataError, match="no class 'bird'"):
        InstanceSegmenter(det, Segmenter(body, ["background", "cat", "dog"], "unet"))
