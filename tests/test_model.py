"""The composer's network: dense heads, the pointer and the bass head (the step decoder: test_decoder.py)."""
from dataclasses import replace

import numpy as np
import pytest

from lstm_composer.presets import PRESETS, ModelConfig, preset

tf = pytest.importorskip("tensorflow")

SIZES = (14, 13, 8, 24)  # ioi, duration, velocity classes, beat phases


def small_config(**changes) -> ModelConfig:
    return replace(PRESETS["small"], sequence_length=10, lstm_units=(12, 12), dense_units=8, embedding_dim=6,
                   **changes)


def random_inputs(rng, vocab_size, steps):
    from lstm_composer.model import CHOSEN_TOKEN

    columns = {"token": vocab_size, "ioi": SIZES[0], "duration": SIZES[1], "velocity": SIZES[2], "bass": 128,
               "phase": SIZES[3], "bar_beat": 8, "phrase_bar": 4, "key": 24}
    inputs = {name: rng.integers(size, size=(1, steps)) for name, size in columns.items()}
    inputs[CHOSEN_TOKEN] = np.concatenate([inputs["token"][:, 1:], rng.integers(vocab_size, size=(1, 1))], 1)
    return inputs


def test_a_dense_network_predicts_every_position_and_its_pointer_copies_what_followed():
    from lstm_composer.model import MOTIF_LENGTH, build_model

    config = small_config()
    network = build_model(config, 7, expression_sizes=SIZES)
    outputs = network(random_inputs(np.random.default_rng(0), 7, 10))
    assert [tuple(o.shape) for o in outputs] == [(1, 10, 7), (1, 10, 14), (1, 10, 13), (1, 10, 8), (1, 10, 128)]
    assert [i.name for i in network.inputs] == ["token", "ioi", "duration", "velocity", "bass", "phase", "bar_beat",
                                                "phrase_bar", "key", "chosen_token"]
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
        assert preset(name).pointer and preset(name).bass and preset(name).phase and preset(name).metre
        assert preset(name).key
    for name in ("paper", "paper-alt"):
        assert not preset(name).dense_targets and preset(name).transpose == (0, 0) and preset(name).batch_norm
    assert preset("small").head_weights == {"next_token": 1.0, "next_ioi": 1.0, "next_duration": 1.0,
                                            "next_velocity": 1.0, "next_bass": 1.0}
    assert preset("small").attributes == ("token", "ioi", "duration", "velocity", "bass", "phase", "bar_beat",
                                          "phrase_bar", "key")


@pytest.mark.parametrize("imports", ["import lstm_composer, tensorflow as tf", "import tensorflow as tf, lstm_composer"],
                         ids=["the package first", "tensorflow first"])
def test_importing_the_package_lets_plain_keras_open_a_saved_network_in_a_fresh_process(tmp_path, imports):
    """What a user of the model directory does: no call into the project before loading."""
    import subprocess
    import sys

    from lstm_composer.model import build_model

    network = build_model(small_config(), 7, expression_sizes=SIZES)
    network.save(tmp_path / "model.keras")
    opened = subprocess.run(
        [sys.executable, "-c", f"{imports}; import sys; network = tf.keras.models.load_model(sys.argv[1]); "
                               f"print(type(network.get_layer('next_token')).__name__, len(network.get_weights()))",
         str(tmp_path / "model.keras")], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert opened.stdout.split() == ["Pointer", str(len(network.get_weights()))]
