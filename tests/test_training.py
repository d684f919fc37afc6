"""Resume on real Horovod ranks: rank 0 alone reads the checkpoint, the others get it by broadcast."""
import sys

import cloudpickle
import numpy as np
import tensorflow as tf

from lstm_composer import model_dir as run_files
from lstm_composer.model import build_model
from lstm_composer.presets import preset
from lstm_composer.storage import Workspace

CONFIG = preset("tiny")
VOCAB_SIZE = 6
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the ranks cannot import this test module


def compiled(optimizer):
    model = build_model(CONFIG, VOCAB_SIZE, for_training=True)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


def restore_on_a_rank(model_dir: str) -> dict:
    """What `train_rank` does on resume; only rank 0 is told where the model directory is."""
    import horovod.tensorflow.keras as hvd

    from lstm_composer.training import restore

    hvd.init()
    tf.keras.utils.set_random_seed(100 + hvd.rank())  # each rank starts from other weights
    optimizer = hvd.DistributedOptimizer(tf.keras.optimizers.RMSprop(0.001))
    model = compiled(optimizer)
    state = tf.train.Checkpoint(model=model, optimizer=optimizer)
    workspace = Workspace(model_dir) if hvd.rank() == 0 else None
    best = restore(state, optimizer, model, workspace)
    return {"rank": hvd.rank(), "best": best, "weights": [w.tolist() for w in model.get_weights()],
            "optimizer": [v.numpy().tolist() for v in optimizer.variables()]}


def test_resume_restores_on_rank_0_and_broadcasts_weights_and_optimizer_state(tmp_path):
    import horovod

    tf.keras.utils.set_random_seed(7)
    model = compiled(tf.keras.optimizers.RMSprop(0.001))
    inputs = np.random.default_rng(0).random((4, CONFIG.sequence_length, 1)).astype("float32")
    model.fit(inputs, tf.one_hot([1, 2, 3, 4], VOCAB_SIZE), epochs=2, verbose=0)  # optimizer slots and step count
    state = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    run_files.save_checkpoint(Workspace(str(tmp_path)), state, epoch=1, metrics={"monitored": 1.25}, is_best=True)

    results = sorted(horovod.run(restore_on_a_rank, args=(str(tmp_path),), np=2, hosts="localhost:2",
                                 use_gloo=True, network_interfaces=["lo"]), key=lambda r: r["rank"])
    saved_weights = [w.tolist() for w in model.get_weights()]
    saved_optimizer = [v.numpy().tolist() for v in model.optimizer.variables]
    assert int(saved_optimizer[0]) == 2  # the step count, then RMSprop's slots
    for result in results:
        assert result["weights"] == saved_weights, result["rank"]
        assert result["optimizer"] == saved_optimizer, result["rank"]
    assert [r["best"] for r in results] == [1.25, float("inf")]  # rank 1 never read the directory
