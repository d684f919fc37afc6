"""The step decoder against Keras: every layer of every preset's network, at every position.

The network is built from each preset (shrunk, its structure kept), every weight set at
random (BatchNorm's statistics included), and fed random positions; the decoder, stepping
through the same positions, must give every head's probabilities Keras gives, and must have
read every layer that has weights. A change to a layer that the decoder does not follow, or
a new layer it does not know, fails here.
"""
from dataclasses import replace

import numpy as np
import pytest

from lstm_composer.presets import PRESETS
from networks import randomised

tf = pytest.importorskip("tensorflow")

SIZES = (14, 13, 8, 24)  # ioi, duration, velocity classes, beat phases
VOCAB = 5  # few tokens: many repeated motifs for the pointer to match
WINDOW = 10


def shrunk(name: str, **changes):
    """The preset's network, small: the same layers, inputs and heads, fewer units."""
    config = PRESETS[name]
    return replace(config, sequence_length=WINDOW, lstm_units=(12,) * len(config.lstm_units), dense_units=8,
                   embedding_dim=6, precision="float32", **changes)


CONFIGS = {name: shrunk(name) for name in PRESETS}
# An expressive network without the composer's pointer, bass head, beat phase and dense targets.
CONFIGS["expressive-plain"] = shrunk("expressive", bass=False, given_token=False, pointer=False, dense_targets=False,
                                     phase=False, metre=False, key=False,
                                     transpose=(0, 0))
# `small` as saved before its heads saw the chosen token.
CONFIGS["small-side-by-side"] = shrunk("small", given_token=False)


def random_positions(config, rng, steps: int) -> np.ndarray:
    """(steps, attributes) ids: the token and each class the network reads."""
    if not config.expressive:
        return rng.integers(VOCAB, size=(steps, 1))
    counts = {"token": VOCAB, "ioi": SIZES[0], "duration": SIZES[1], "velocity": SIZES[2], "bass": 128,
              "phase": SIZES[3], "bar_beat": 8, "phrase_bar": 4, "key": 24}
    return np.stack([rng.integers(counts[name], size=steps) for name in config.attributes], axis=1)


def keras_inputs(config, positions: np.ndarray, chosen: np.ndarray):
    """The network's inputs for one window of positions; `chosen`: the tokens the heads that see one are given."""
    from lstm_composer.dataset import encode_windows
    from lstm_composer.model import CHOSEN_TOKEN

    if not config.expressive:
        return encode_windows(tf.constant(positions[None, :, 0]), config, VOCAB)
    inputs = {name: positions[None, :, i] for i, name in enumerate(config.attributes)}
    if config.chosen_input:
        inputs[CHOSEN_TOKEN] = chosen[None]
    return inputs


def without_distance_weights(network):
    """The network as a model saved before the pointer had its weights per distance."""
    from lstm_composer.model import Pointer

    def clone(layer):
        if not isinstance(layer, Pointer):
            return layer.__class__.from_config(layer.get_config())
        settings = layer.get_config()
        del settings["lags"]  # not in an older model's saved configuration
        return Pointer.from_config(settings)

    return tf.keras.models.clone_model(network, clone_function=clone)


CASES = [(name, False) for name in CONFIGS] + [("small", True)]  # and an older pointer


@pytest.mark.parametrize("name, older", CASES, ids=[f"{n}{'-older' if o else ''}" for n, o in CASES])
def test_the_decoder_gives_what_keras_gives_for_every_head_at_every_position(name, older):
    from lstm_composer.decoder import Decoder
    from lstm_composer.model import build_model

    config = CONFIGS[name]
    network = build_model(config, VOCAB, expression_sizes=SIZES if config.expressive else None, window=None)
    network = randomised(without_distance_weights(network) if older else network, seed=1)
    decoder = Decoder(network, config, VOCAB)
    assert decoder.read == {layer.name for layer in network.layers if layer.weights}
    rng = np.random.default_rng(2)
    # A dense network predicts every position: well past the pointer's span. The paper's
    # predicts after a window: a few windows.
    steps, windows = (2 * WINDOW + 5, 1) if config.dense_targets else (WINDOW, 3)
    for _ in range(windows):
        positions = random_positions(config, rng, steps)
        chosen = np.append(positions[1:, 0], rng.integers(VOCAB))  # the token given to the heads: the next one
        expected = network(keras_inputs(config, positions, chosen), training=False)
        expected = [o.numpy()[0] for o in (expected if isinstance(expected, list) else [expected])]
        if not config.dense_targets:
            probabilities, state = decoder.prime(positions)
            for head, p in enumerate(probabilities + decoder.given(state, chosen[-1])):
                np.testing.assert_allclose(p, expected[head], atol=1e-5)
            continue
        state = decoder.initial_state()
        for t in range(steps):
            probabilities, state = decoder.step(positions[t], state)
            probabilities += decoder.given(state, chosen[t])
            assert len(probabilities) == len(config.heads) - config.bass
            for head, p in enumerate(probabilities):
                np.testing.assert_allclose(p, expected[head][t], atol=1e-5)
            if config.bass:
                np.testing.assert_allclose(decoder.bass_probabilities(state, chosen[t]), expected[-1][t], atol=1e-5)
            if config.pointer:
                assert len(state.keys) == min(t, config.sequence_length - 1)
