"""Every use of another library's private API, in one place.

Each is capped in pyproject.toml below the library's next minor release, because any release may
change it. Checked on: TensorFlow 2.21.0, Keras 3.15.1, keras-hub 0.32.0 (constraints.txt).
Before raising a cap, run the tests named here on the new version.

- Keras ``keras.src.backend.tensorflow.trainer.reduce_per_replica`` and
  ``Model._maybe_symbolic_build`` / ``_symbolic_build`` (:func:`multi_worker_fit_fix`): without
  them ``fit`` under MultiWorkerMirroredStrategy fails before its first step
  (keras-team/keras#20585). What breaks otherwise: multi-worker fine-tuning
  (tests/test_distributed.py). Single-process training never touches them.
- Keras ``keras.src.utils.tracking.no_automatic_dependency_tracking`` (:func:`untracked`), the
  optimizer's ``_update_model_variables_moving_average`` and ``SwapEMAWeights``'
  ``_swap_variables`` / ``_finalize_ema_values`` (``zoo.training.AdamW`` and ``EMAWeights``): the
  moving average of the weights that also averages BatchNorm statistics, and its swap. What breaks
  otherwise: training with ``ema`` (tests/test_training.py).
- keras-hub ``keras_hub.src.models.retinanet`` (:func:`retinanet_parts`): the FPN, prediction head
  and label encoder of its RetinaNet, which keras-hub does not export publicly. What breaks
  otherwise: building any detector (tests/test_detection.py).
- TensorFlow ``tensorflow.python.framework.convert_to_constants`` (:func:`convert_variables_to_constants_v2`):
  freezes weights into constants before the TFLite and ONNX converters, 2x faster than a
  SavedModel round trip. What breaks otherwise: export to TFLite and ONNX and the TFLite runtime
  (tests/test_export.py, tests/test_runtimes*).
"""
from __future__ import annotations

from zoo.errors import MissingDependencyError


def convert_variables_to_constants_v2(concrete_function):
    """TensorFlow's private freezer (see the module docstring)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2 as freeze,
    )

    return freeze(concrete_function)


def untracked(method):
    """Keras's decorator for an optimizer's ``build``: the variables it keeps in attributes are
    not tracked a second time (see the module docstring)."""
    from keras.src.utils.tracking import no_automatic_dependency_tracking

    return no_automatic_dependency_tracking(method)


def retinanet_parts():
    """(AnchorGenerator, NonMaxSuppression, FeaturePyramid, PredictionHead, RetinaNetLabelEncoder) from keras-hub."""
    try:
        from keras_hub.layers import AnchorGenerator, NonMaxSuppression
        from keras_hub.src.models.retinanet.feature_pyramid import FeaturePyramid
        from keras_hub.src.models.retinanet.prediction_head import PredictionHead
        from keras_hub.src.models.retinanet.retinanet_label_encoder import (
            RetinaNetLabelEncoder,
        )
    except ImportError as exc:  # pragma: no cover - keras-hub is a requirement
        raise MissingDependencyError("detection needs keras-hub 0.32 (pip install 'keras-hub>=0.32,<0.33')") from exc
    return AnchorGenerator, NonMaxSuppression, FeaturePyramid, PredictionHead, RetinaNetLabelEncoder


def _fix_keras_multi_worker_reduce():
    """Keras 3 (3.15 here) averages each step's metrics across workers with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails for the scalar loss and accuracy
    ("Invalid reduction dimension 0 for input with 0 dimensions"). This wraps its
    ``reduce_per_replica`` so that scalars are averaged across workers only (``axis=None``);
    every other case goes to the original unchanged. Installed once, by :func:`multi_worker_fit_fix`."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as kt

    original = kt.reduce_per_replica
    if getattr(original, "zoo_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not kt._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def mean(v):
            local = strategy.experimental_local_results(v)[0] if kt._is_per_replica_instance(v) else v
            return strategy.reduce("MEAN", v, axis=0 if local.shape.rank else None)

        return tree.map_structure(mean, values)

    reduce_per_replica.zoo_fixed = True
    kt.reduce_per_replica = reduce_per_replica


def multi_worker_fit_fix(model, strategy):
    """Let ``model.fit`` run under MultiWorkerMirroredStrategy; Keras 3 fails there before
    the first step (keras-team/keras#20585, tensorflow/tensorflow#72388):

    - fit builds the model from its first batch with ``strategy.reduce("MEAN", batch)``, which
      the collective strategy cannot do for an (x, y) tuple ("Attempt to convert a value
      (PerReplica...)"); this model builds from the dataset's element spec instead, without
      opening an iterator (a second iterator would start a different shuffle order than a
      one-worker run sees);
    - the per-step metrics are reduced along an axis that scalars lack
      (:func:`_fix_keras_multi_worker_reduce`).

    A no-op outside multi-worker training."""
    if not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return model
    _fix_keras_multi_worker_reduce()

    def build(iterator=None, data_batch=None):
        if iterator is not None:  # shapes and dtypes only: opening an iterator here would use up a reshuffle
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    return model
