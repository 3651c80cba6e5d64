"""One worker of the MultiWorkerMirroredStrategy test (tests/test_distributed.py); also the
single-process baseline when ``TF_CONFIG`` is unset.

    TF_CONFIG='{"cluster": {"worker": ["localhost:P0", "localhost:P1"]}, "task": {"type": "worker", "index": 0}}' \\
        python tests/mwms_worker.py --result R --out-dir O [--backup-dir B] [--die-after-epoch 1]

Fine-tunes EfficientNet-Lite0 (real weights, 32 px) on 60 real Fashion-MNIST training images
(1 head epoch on cached features, then 3 unfrozen epochs; no dropout and no augmentation, so
that one worker and two see the same arithmetic up to the order of the gradient sums) and
writes ``R/worker-<task>.npz`` (final weights), ``R/start-<task>.npz`` (weights as the
unfrozen phase begins) and ``R/epochs-<task>.json`` ((phase, epoch) of
every epoch begun, appended as they begin).
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--result", required=True)
    p.add_argument("--out-dir")
    p.add_argument("--backup-dir")
    p.add_argument("--die-after-epoch", type=int, default=0, help="os._exit after this unfrozen epoch (1-based)")
    a = p.parse_args()

    import tensorflow as tf

    multi = bool(os.environ.get("TF_CONFIG"))
    # the strategy first: it must exist before any other TensorFlow op runs
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi else tf.distribute.get_strategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if multi else 0

    import keras
    import numpy as np

    keras.config.disable_traceback_filtering()  # full tracebacks in the test's failure report

    import zoo
    from zoo import data

    result = Path(a.result)
    result.mkdir(parents=True, exist_ok=True)
    epochs_file = result / f"epochs-{task}.json"
    seen = []

    class Record(keras.callbacks.Callback):
        phase = 0

        def on_train_begin(self, logs=None):
            Record.phase += 1
            if Record.phase == 2:  # the unfrozen phase starts from these weights (after any restore)
                np.savez(result / f"start-{task}.npz", *self.model.get_weights())

        def on_epoch_begin(self, epoch, logs=None):
            seen.append([Record.phase, epoch])
            epochs_file.write_text(json.dumps(seen))

        def on_epoch_end(self, epoch, logs=None):
            if Record.phase == 2 and a.die_after_epoch and epoch + 1 == a.die_after_epoch:
                os._exit(17)  # a crash: no clean-up, no later callbacks

    train = data.fashion_mnist("train").subset(per_class=6, seed=0)
    m = zoo.load("efficientnet_lite0", input_size=32)
    clf = m.finetune(train, epochs=3, head_epochs=1, batch_size=16, val_fraction=0.2, dropout=0.0, augment=None,
                     precision="float32", verbose=0, strategy=strategy, out_dir=a.out_dir,
                     backup_dir=a.backup_dir, callbacks=[Record()])
    weights = clf.classifier_model.get_weights()
    np.savez(result / f"worker-{task}.npz", *weights)
    print(f"worker {task}: done, kept {clf.training_config['kept']}", flush=True)


if __name__ == "__main__":
    main()
