"""The composer's network: dense heads, the pointer, the bass head, and the step decoder against Keras."""
from dataclasses import replace

import numpy as np
import pytest

from lstm_composer.presets import PRESETS, ModelConfig, preset

tf = pytest.importorskip("tensorflow")

SIZES = (14, 13, 8, 24)  # ioi, duration, velocity classes, beat phases


def small_config(**changes) -> ModelConfig:
    return replace(PRESETS["small"], sequence_length=10, lstm_units=(12, 12), dense_units=8, embedding_dim=6,
                   **changes)


def randomised(network, seed):
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return network


def random_inputs(rng, vocab_size, steps):
    from lstm_composer.model import CHOSEN_TOKEN

    columns = {"token": vocab_size, "ioi": SIZES[0], "duration": SIZES[1], "velocity": SIZES[2], "bass": 128,
               "phase": SIZES[3]}
    inputs = {name: rng.integers(size, size=(1, steps)) for name, size in columns.items()}
    inputs[CHOSEN_TOKEN] = np.concatenate([inputs["token"][:, 1:], rng.integers(vocab_size, size=(1, 1))], 1)
    return inputs


def without_distance_weights(network):
    """The network as a model saved before the pointer had its weights per distance."""
    from lstm_composer.model import pointer_class

    def clone(layer):
        if layer.name != "next_token":
            return layer.__class__.from_config(layer.get_config())
        settings = layer.get_config()
        del settings["lags"]  # not in an older model's saved configuration
        return pointer_class().from_config(settings)

    return tf.keras.models.clone_model(network, clone_function=clone)


@pytest.mark.parametrize("steps, older", [(10, False), (25, False), (25, True)])  # within the window, and
def test_the_decoder_gives_what_keras_gives_at_every_position(steps, older):  # well past the pointer's span
    from lstm_composer.model import CHOSEN_TOKEN, Decoder, build_model

    config = small_config()
    vocab = 5  # few tokens: many repeated motifs for the pointer to match
    network = build_model(config, vocab, expression_sizes=SIZES, window=None)
    network = randomised(without_distance_weights(network) if older else network, seed=1)
    assert len(network.get_layer("next_token").get_weights()) == (5 if older else 6)
    inputs = random_inputs(np.random.default_rng(2), vocab, steps)
    expected = [o.numpy()[0] for o in network(inputs, training=False)]
    decoder = Decoder(network, config, vocab)
    state = decoder.initial_state()
    for t in range(steps):
        probabilities, state = decoder.step([inputs[name][0, t] for name in config.attributes], state)
        for head, p in enumerate(probabilities):
            np.testing.assert_allclose(p, expected[head][t], atol=1e-5)
        np.testing.assert_allclose(decoder.bass_probabilities(state, inputs[CHOSEN_TOKEN][0, t]),
                                   expected[4][t], atol=1e-5)
        assert len(state.keys) == min(t, config.sequence_length - 1)


def test_a_dense_network_predicts_every_position_and_its_pointer_copies_what_followed():
    from lstm_composer.model import MOTIF_LENGTH, build_model

    config = small_config()
    network = build_model(config, 7, expression_sizes=SIZES)
    outputs = network(random_inputs(np.random.default_rng(0), 7, 10))
    assert [tuple(o.shape) for o in outputs] == [(1, 10, 7), (1, 10, 14), (1, 10, 13), (1, 10, 8), (1, 10, 128)]
    assert [i.name for i in network.inputs] == ["token", "ioi", "duration", "velocity", "bass", "phase",
                                                "chosen_token"]
    np.testing.assert_allclose(outputs[0].numpy().sum(-1), 1.0, atol=1e-5)

    # A pointer that trusts the copy completely: the sentinel far below every earlier position.
    pointer = network.get_layer("next_token")
    query, key, sentinel, bias, motif, lag = pointer.get_weights()
    assert lag.shape == (config.sequence_length - 1,)
    trust = [np.zeros_like(query), np.zeros_like(key), np.zeros_like(sentinel), np.float32(-50)]
    pointer.set_weights(trust + [np.full(MOTIF_LENGTH, 20.0, np.float32), np.zeros_like(lag)])
    inputs = random_inputs(np.random.default_rng(0), 7, 10)
    inputs["token"] = np.array([[3, 1, 4, 6, 5, 3, 1, 4, 2, 0]])
    probabilities = network(inputs)[0].numpy()[0]
    # After "3 1 4" at positions 5-7, the motif seen at 0-2 was followed by 6.
    assert probabilities[7].argmax() == 6 and probabilities[7, 6] > 0.99

    # A pointer that trusts one distance, whatever the tokens: three back, it copies what followed there.
    pointer.set_weights(trust + [np.zeros(MOTIF_LENGTH, np.float32), np.eye(len(lag), dtype=np.float32)[2] * 20])
    probabilities = network(inputs)[0].numpy()[0]
    assert [probabilities[t].argmax() for t in range(3, 10)] == list(inputs["token"][0, 1:8])


def test_the_composer_presets_learn_more_and_the_papers_stay_the_baseline():
    for name in ("fast", "expressive", "small"):
        assert preset(name).dense_targets and preset(name).transpose == (-5, 6)
    for name in ("expressive", "small"):
        assert preset(name).pointer and preset(name).bass and preset(name).phase
    for name in ("paper", "paper-alt"):
        assert not preset(name).dense_targets and preset(name).transpose == (0, 0) and preset(name).batch_norm
    assert preset("small").head_weights == {"next_token": 1.0, "next_ioi": 1.0, "next_duration": 1.0,
                                            "next_velocity": 1.0, "next_bass": 1.0}
    assert preset("small").attributes == ("token", "ioi", "duration", "velocity", "bass", "phase")
