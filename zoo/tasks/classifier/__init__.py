"""Classifier: one class per image, a softmax head on the backbone's pooled embedding."""
from zoo.kinds import lazy_exports

TITLE = "Classifier"
__getattr__ = lazy_exports(__name__, {"FineTunedClassifier": "model", "ClassifierTraining": "train",
                                      "ClassifierOptions": "train"})
