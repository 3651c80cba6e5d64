"""Verifier: are two images of the same thing? Cosine of embeddings against a calibrated threshold."""
from zoo.kinds import lazy_exports

TITLE = "Verifier"
__getattr__ = lazy_exports(__name__, {"Verifier": "model", "FaceCropper": "model", "FaceNotFoundError": "model",
                                      "eer": "model", "calibrate_scores": "model", "LOSSES": "model",
                                      "train_linear_head": "metric_head"})
