"""Few-shot: k-NN or nearest-prototype classification over a frozen backbone's embeddings (no training)."""
from zoo.kinds import lazy_exports

TITLE = "Few-shot classifier"
__getattr__ = lazy_exports(__name__, {"KNNClassifier": "model", "MODES": "model"})
