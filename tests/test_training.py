"""What each Horovod rank runs around Keras: the time budget shared by all ranks, and resume:
rank 0 alone reads the checkpoint, the others get it by broadcast, and a checkpoint that does
not fit is refused."""
import sys
from dataclasses import replace

import cloudpickle
import numpy as np
import pytest
import tensorflow as tf

from lstm_composer.model import build_model
from lstm_composer.model_dir import ModelDir, ModelDirError
from lstm_composer.presets import preset
from lstm_composer.storage import Workspace

CONFIG = preset("tiny")  # scalar inputs, one-hot targets, BatchNorm
VOCAB_SIZE = 6
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the ranks cannot import this test module

def rank_epochs_under_a_time_budget(minutes: float) -> tuple[int, int]:
    """One Horovod rank: a small Keras fit of 5 epochs under `TimeBudget(minutes)`, where rank 0
    alone spends longer than the budget at the end of its first epoch. (rank, epochs trained)."""
    import time

    import horovod.tensorflow.keras as hvd

    from lstm_composer.callbacks import TimeBudget

    hvd.init()

    class SlowRankZero(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if hvd.rank() == 0:
                time.sleep(1.5 * 60 * minutes)

    network = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    network.compile(loss="mse", optimizer="sgd")
    history = network.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, verbose=0,
                          callbacks=[SlowRankZero(), TimeBudget(minutes, hvd)])
    return hvd.rank(), len(history.history["loss"])


def test_max_minutes_stops_every_rank_after_the_epoch_rank_0_ran_out_in():
    """Rank 1's own clock is far from the 3 s budget when its first epoch ends; rank 0's is past
    it. Both stop there: rank 0's clock decides for all (were each rank to decide, rank 1 would
    train 5 epochs alone, and in real training wait forever for rank 0's gradients)."""
    import horovod

    results = horovod.run(rank_epochs_under_a_time_budget, args=(0.05,), np=2, use_gloo=True)
    assert sorted(results) == [(0, 1), (1, 1)]


def compiled(optimizer):
    model = build_model(CONFIG, VOCAB_SIZE, for_training=True)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


def restore_on_a_rank(model_dir: str, averaged: bool = False) -> dict:
    """What `train_rank` does on resume; only rank 0 is told where the model directory is.
    With `averaged`, the network is trained with a weight average, whose state is restored too."""
    import horovod.tensorflow.keras as hvd

    from lstm_composer.callbacks import WeightAverage
    from lstm_composer.rank import restore, training_state

    hvd.init()
    tf.keras.utils.set_random_seed(100 + hvd.rank())  # each rank starts from other weights
    optimizer = hvd.DistributedOptimizer(tf.keras.optimizers.RMSprop(0.001))
    model = compiled(optimizer)
    averager = WeightAverage(0.5, model) if averaged else None
    state = training_state(model, optimizer, averager)
    workspace = Workspace(model_dir) if hvd.rank() == 0 else None
    carried = tf.Variable(10.0 + hvd.rank())  # as a weight average's variables are
    best = restore(state, optimizer, model, workspace, [carried] + (averager.variables if averager else []))
    return {"rank": hvd.rank(), "best": best, "weights": [w.tolist() for w in model.get_weights()],
            "optimizer": [v.numpy().tolist() for v in optimizer.variables()], "carried": float(carried.numpy()),
            "averaged_steps": int(averager.steps.numpy()) if averager else None}


@pytest.mark.parametrize("averaged", [False, True], ids=["plain", "checkpoint-without-the-average"])
def test_resume_restores_on_rank_0_and_broadcasts_weights_optimizer_state_and_the_rest(tmp_path, averaged):
    """With `averaged`: a run trained with a weight average resumes from a checkpoint written
    before the average was kept in it; the average starts again."""
    import horovod

    tf.keras.utils.set_random_seed(7)
    model = compiled(tf.keras.optimizers.RMSprop(0.001))
    inputs = np.random.default_rng(0).random((4, CONFIG.sequence_length, 1)).astype("float32")
    model.fit(inputs, tf.one_hot([1, 2, 3, 4], VOCAB_SIZE), epochs=2, verbose=0)  # optimizer slots and step count
    state = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    ModelDir(str(tmp_path)).save_checkpoint(Workspace(str(tmp_path)), state, epoch=1, metrics={"monitored": 1.25},
                                            is_best=True)

    results = sorted(horovod.run(restore_on_a_rank, args=(str(tmp_path), averaged), np=2, hosts="localhost:2",
                                 use_gloo=True, network_interfaces=["lo"]), key=lambda r: r["rank"])
    saved_weights = [w.tolist() for w in model.get_weights()]
    saved_optimizer = [v.numpy().tolist() for v in model.optimizer.variables]
    assert int(saved_optimizer[0]) == 2  # the step count, then RMSprop's slots
    for result in results:
        assert result["weights"] == saved_weights, result["rank"]
        assert result["optimizer"] == saved_optimizer, result["rank"]
    assert [r["best"] for r in results] == [1.25, float("inf")]  # rank 1 never read the directory
    assert [r["carried"] for r in results] == [10.0, 10.0]  # rank 0's
    assert [r["averaged_steps"] for r in results] == ([0, 0] if averaged else [None, None])


@pytest.mark.parametrize("other, with_optimizer", [
    (replace(CONFIG, dense_units=24), True),  # another shape
    (CONFIG, False),  # the same network, but no optimizer state to go on from
], ids=["other-shapes", "weights-alone"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_it(tmp_path, other, with_optimizer):
    import horovod.tensorflow.keras as hvd

    from lstm_composer.rank import restore

    hvd.init()  # one rank, in this process: restore broadcasts what it read
    network, optimizer = build_model(CONFIG, VOCAB_SIZE, for_training=True), tf.keras.optimizers.RMSprop()
    optimizer.build(network.trainable_variables)
    saved = tf.train.Checkpoint(model=network, optimizer=optimizer) if with_optimizer else tf.train.Checkpoint(
        model=network)
    ModelDir(str(tmp_path)).save_checkpoint(Workspace(str(tmp_path)), saved, epoch=0, metrics={"monitored": 2.0},
                                            is_best=True)
    other_network, other_optimizer = build_model(other, VOCAB_SIZE, for_training=True), tf.keras.optimizers.RMSprop()
    with pytest.raises(ModelDirError, match="epoch-0000/state.* cannot be restored into this network"):
        restore(tf.train.Checkpoint(model=other_network, optimizer=other_optimizer), other_optimizer, other_network,
                Workspace(str(tmp_path)))
