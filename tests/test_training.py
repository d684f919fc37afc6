"""What each Horovod rank runs around Keras: the time budget shared by all ranks, and the
checkpoint a resumed run starts from."""
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from lstm_composer import model_dir as run_files
from lstm_composer.model import build_model, loss_name
from lstm_composer.presets import preset
from lstm_composer.training import restore

CONFIG = preset("tiny")  # scalar inputs, one-hot targets, BatchNorm
VOCAB = 12


def rank_epochs_under_a_time_budget(minutes: float) -> tuple[int, int]:
    """One Horovod rank: a small Keras fit of 5 epochs under `time_budget(minutes)`, where rank 0
    alone spends longer than the budget at the end of its first epoch. (rank, epochs trained)."""
    import time

    import horovod.tensorflow.keras as hvd

    from lstm_composer.training import time_budget

    hvd.init()

    class SlowRankZero(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if hvd.rank() == 0:
                time.sleep(1.5 * 60 * minutes)

    network = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    network.compile(loss="mse", optimizer="sgd")
    history = network.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, verbose=0,
                          callbacks=[SlowRankZero(), time_budget(minutes, hvd)])
    return hvd.rank(), len(history.history["loss"])


def test_max_minutes_stops_every_rank_after_the_epoch_rank_0_ran_out_in():
    """Rank 1's own clock is far from the 3 s budget when its first epoch ends; rank 0's is past
    it. Both stop there: rank 0's clock decides for all (were each rank to decide, rank 1 would
    train 5 epochs alone, and in real training wait forever for rank 0's gradients)."""
    import sys

    import cloudpickle
    import horovod

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the ranks cannot import this test module
    results = horovod.run(rank_epochs_under_a_time_budget, args=(0.05,), np=2, use_gloo=True)
    assert sorted(results) == [(0, 1), (1, 1)]


def fitted_network(seed: int):
    """The tiny network after a few RMSprop steps on seeded data, with its optimizer: weights,
    step count and RMSprop's moving averages all away from their initial values."""
    tf.keras.utils.set_random_seed(seed)
    network = build_model(CONFIG, VOCAB, for_training=True)
    optimizer = tf.keras.optimizers.RMSprop(learning_rate=0.01)
    network.compile(loss=loss_name(CONFIG), optimizer=optimizer)
    rng = np.random.default_rng(seed)
    windows = rng.integers(VOCAB, size=(64, CONFIG.sequence_length, 1)) / VOCAB
    targets = np.eye(VOCAB)[rng.integers(VOCAB, size=64)]
    network.fit(windows, targets, batch_size=16, epochs=1, verbose=0)
    return network, optimizer


def test_a_resumed_rank_starts_from_the_saved_weights_and_optimizer_state(tmp_path):
    network, optimizer = fitted_network(seed=1)
    run_files.save_checkpoint(tmp_path, tf.train.Checkpoint(model=network, optimizer=optimizer), epoch=3,
                              metrics={"monitored": 1.25}, is_best=True)
    saved_weights = [w.copy() for w in network.get_weights()]
    saved_optimizer = [v.numpy().copy() for v in optimizer.variables]  # the step count, then RMSprop's averages
    assert optimizer.variables[0].name == "iteration:0" and int(saved_optimizer[0]) == 4  # 64 windows, batches of 16
    assert len(saved_optimizer) == 1 + len(network.trainable_weights) and all(v.any() for v in saved_optimizer)

    # A new network and optimizer, as a resumed rank builds them: other weights until restored.
    fresh = build_model(CONFIG, VOCAB, for_training=True)
    fresh_optimizer = tf.keras.optimizers.RMSprop(learning_rate=0.01)
    fresh.compile(loss=loss_name(CONFIG), optimizer=fresh_optimizer)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.get_weights(), saved_weights))

    best = restore(tf.train.Checkpoint(model=fresh, optimizer=fresh_optimizer), fresh_optimizer, fresh,
                   str(tmp_path))
    assert best == 1.25
    for restored, saved in zip(fresh.get_weights(), saved_weights, strict=True):
        np.testing.assert_array_equal(restored, saved)
    for restored, saved in zip(fresh_optimizer.variables, saved_optimizer, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved, err_msg=restored.name)


@pytest.mark.parametrize("other, with_optimizer", [
    (replace(CONFIG, dense_units=24), True),  # another shape
    (CONFIG, False),  # the same network, but no optimizer state to go on from
], ids=["other-shapes", "weights-alone"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_it(tmp_path, other, with_optimizer):
    network, optimizer = build_model(CONFIG, VOCAB, for_training=True), tf.keras.optimizers.RMSprop()
    optimizer.build(network.trainable_variables)
    saved = tf.train.Checkpoint(model=network, optimizer=optimizer) if with_optimizer else tf.train.Checkpoint(
        model=network)
    run_files.save_checkpoint(tmp_path, saved, epoch=0, metrics={"monitored": 2.0}, is_best=True)
    other_network, other_optimizer = build_model(other, VOCAB, for_training=True), tf.keras.optimizers.RMSprop()
    with pytest.raises(run_files.ModelDirError, match="epoch-0000/state.* cannot be restored into this network"):
        restore(tf.train.Checkpoint(model=other_network, optimizer=other_optimizer), other_optimizer, other_network,
                str(tmp_path))
