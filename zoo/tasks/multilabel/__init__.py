"""Multi-label classifier: every class that appears in an image (a sigmoid head, per-class thresholds
chosen on validation; mAP and micro/macro F1).

```python
clf = zoo.load("efficientnet_lite0").finetune(train, val, multilabel=True)   # labels: (N, C) 0/1 or name lists
clf.predict(images)          # (N, C) probabilities
clf.predict_labels(images)   # per image, the class names above their thresholds
clf.evaluate(test)           # {"mAP", "f1_micro", "f1_macro", "per_class"}
```
"""
from zoo.kinds import lazy_exports

TITLE = "Multi-label classifier"
__getattr__ = lazy_exports(__name__, {"MultiLabelClassifier": "model", "train": "model",
                                      "MultiLabelImages": "data", "as_multilabel": "data"})
