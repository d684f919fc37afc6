"""The weight average: validation and saving see it, the next epoch trains on from its own
weights, and a run resumed from a checkpoint goes on as if it had not stopped."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from lstm_composer.callbacks import WeightAverage
from lstm_composer.rank import training_state


def test_validation_sees_the_average_and_training_goes_on_from_its_own_weights():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.ones((8, 1))
    trained, validated, started = [], [], []

    class Watch(tf.keras.callbacks.Callback):  # after the average in the list, as in training
        def on_train_batch_end(self, batch, logs=None):
            trained.append(model.get_weights())

        def on_test_begin(self, logs=None):
            validated.append(model.get_weights())

        def on_epoch_begin(self, epoch, logs=None):
            started.append(model.get_weights())

    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, validation_data=(x, y), verbose=0,
              callbacks=[WeightAverage(0.5, model), Watch()])
    # the average starts at the first step's weights: after two steps, half of each
    first = [0.5 * a + 0.5 * b for a, b in zip(trained[0], trained[1])]
    for got, expected in zip(validated[0], first):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(validated[0][0], trained[1][0])
    for got, expected in zip(started[1], trained[1]):  # epoch 2 starts from the trained weights
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    second = [0.5 * (0.5 * m + 0.5 * a) + 0.5 * b for m, a, b in zip(first, trained[2], trained[3])]
    for got, expected in zip(validated[1], second):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_resumed_run_trains_on_from_its_own_weights_and_keeps_averaging(tmp_path):
    """Two epochs in one go, against one epoch, a checkpoint (written while the model holds
    the average, as the epoch saver writes it), a fresh model and callback restored from it,
    and the second epoch: the same weights trained, validated and left at the end."""
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.random.default_rng(1).normal(size=(8, 1))

    def fresh():
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
        model.optimizer.build(model.trainable_variables)
        average = WeightAverage(0.5, model)
        state = training_state(model, model.optimizer, average)
        return model, average, state

    def fit(model, average, epochs, initial_epoch=0):
        validated = []

        class Watch(tf.keras.callbacks.Callback):
            def on_test_end(self, logs=None):
                validated.append(model.get_weights())

        model.fit(x, y, batch_size=4, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                  validation_data=(x, y), verbose=0, callbacks=[average, Watch()])
        return validated

    model, average, _ = fresh()
    straight = fit(model, average, 2)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[average])  # a third epoch
    straight_third = model.get_weights()

    model, average, state = fresh()
    fit(model, average, 1)
    prefix = state.write(str(tmp_path / "checkpoint"))
    model, average, state = fresh()
    state.read(prefix).assert_existing_objects_matched()
    resumed = fit(model, average, 2, initial_epoch=1)
    for got, expected in zip(resumed[0], straight[1]):  # the second epoch's average
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[average])
    for got, expected in zip(model.get_weights(), straight_third):  # trained on from its own weights
        np.testing.assert_allclose(got, expected, rtol=1e-6)
