"""Print the keras.applications records of zoo/catalog.py from Keras' own source.

It builds each model twice: once with ``weights="imagenet"`` and keras' file fetcher
replaced by a recorder (nothing is downloaded) to learn the weight file, its URL and
hash; once with ``weights=None`` to count parameters and multiply-adds. Run it after a
Keras upgrade and paste the output over the table in zoo/catalog.py.
"""
import sys

import keras
from keras.src.utils import file_utils

from zoo.flops import count_macs

NAMES = sys.argv[1:] or [
    "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "VGG16", "VGG19", "InceptionV3", "Xception", "MobileNetV2", "MobileNetV3Small",
    "MobileNetV3Large", *[f"EfficientNetB{i}" for i in range(8)],
    *[f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")],
    *[f"ConvNeXt{s}" for s in ("Tiny", "Small", "Base", "Large")],
    "DenseNet121", "DenseNet169", "DenseNet201",
]


class _Captured(Exception):
    pass


def capture(fn):
    seen = {}

    def fake_get_file(fname=None, origin=None, file_hash=None, **kw):
        seen.update(fname=fname, origin=origin, file_hash=file_hash)
        raise _Captured

    real = file_utils.get_file
    file_utils.get_file = fake_get_file
    try:
        fn(weights="imagenet")
    except _Captured:
        pass
    finally:
        file_utils.get_file = real
    return seen


for name in NAMES:
    fn = getattr(keras.applications, name)
    w = capture(fn)
    model = fn(weights=None)
    if model.input_shape[1] is None:  # MobileNetV3 builds shape-agnostic by default
        model = fn(weights=None, input_shape=(224, 224, 3))
    size = model.input_shape[1]
    params = model.count_params() / 1e6
    gmacs = count_macs(model) / 1e9
    print(f'    ("{name}", {size}, {params:.2f}, {gmacs:.2f}, "{w["fname"]}", "{w["file_hash"]}", "{w["origin"]}"),', flush=True)
    keras.backend.clear_session()
