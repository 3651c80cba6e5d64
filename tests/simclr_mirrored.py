"""Run by tests/test_simclr.py in its own process: SimCLR under MirroredStrategy on two logical CPUs
(TensorFlow fixes its devices when it starts, so this cannot run inside the pytest process)."""
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import zoo  # noqa: E402
from recipes import simclr  # noqa: E402
from zoo.data import fashion_mnist  # noqa: E402

x = fashion_mnist("train").subset(per_class=4, seed=7).images
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
ssl = simclr.pretrain(x, backbone=zoo.load("efficientnet_lite0", input_size=96), epochs=4, batch_size=20, lr=1e-3,
                      seed=0, progress=False, strategy=strategy, out_dir=sys.argv[1])
print(json.dumps({"replicas": ssl.pretraining["replicas"], "loss": ssl.pretraining["history"]["loss"]}))
