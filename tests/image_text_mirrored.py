"""Run by tests/test_image_text.py in its own process: LiT under MirroredStrategy on two logical CPUs
(TensorFlow fixes its devices when it starts, so this cannot run inside the pytest process)."""
import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import zoo  # noqa: E402
from recipes import image_text as it  # noqa: E402

CLASSES = [0, 1, 7, 9]  # T-shirt, Trouser, Sneaker, Ankle boot
tower = zoo.load("efficientnet_lite0", input_size=96)
train = it.fashion_pairs("train", classes=CLASSES, per_class=30)
val = it.fashion_pairs("test", classes=CLASSES, per_class=5, seed=1)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
m = it.train(train, val, image_model=tower, epochs=6, batch_size=48, lr=1e-3, progress=False, seed=0,
             strategy=strategy)
test = it.fashion_pairs("test", classes=CLASSES, per_class=10, seed=2)
names = [it.FASHION_NAMES[c] for c in CLASSES]
pred = m.zero_shot(test.images, names).argmax(1)
truth = np.array([CLASSES.index(int(y)) for y in test.labels])
try:  # what a multi-replica strategy does not train is refused up front, with the reason
    it.train(train, val, image_model=tower, epochs=1, batch_size=48, queue=96, progress=False, strategy=strategy)
    refused = ""
except it.RecipeError as exc:
    refused = str(exc)
print(json.dumps({"loss": m.history["loss"], "accuracy": float((pred == truth).mean()), "refused": refused}))
