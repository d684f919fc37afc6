"""Model configurations: every preset valid, every bad value refused by name, JSON round trips."""
import json
from dataclasses import FrozenInstanceError, replace

import pytest

from lstm_composer.presets import PRESETS, ModelConfig, preset

TINY = PRESETS["tiny"]


@pytest.mark.parametrize("change, message", [
    ({"sequence_length": 0}, "sequence_length must be positive, got 0"),
    ({"lstm_units": ()}, r"lstm_units must be positive sizes, got \(\)"),
    ({"lstm_units": (16, 0)}, r"lstm_units must be positive sizes, got \(16, 0\)"),
    ({"recurrent_dropout": 1.0}, r"recurrent_dropout must be in \[0, 1\), got 1.0"),
    ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
    ({"weight_average": 1.0}, r"weight_average must be in \[0, 1\), got 1.0"),
    ({"precision": "float16"}, "precision must be one of .*'float16'"),
    ({"input_encoding": "one-hot"}, "input_encoding must be one of .*'one-hot'"),
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"dense_units": 0}, "dense_units and embedding_dim must be positive"),
    ({"embedding_dim": 0}, "dense_units and embedding_dim must be positive"),
    ({"loss_weights": (1.0, 1.0, 1.0)}, "loss_weights must be 4 or 5 weights >= 0"),
    ({"loss_weights": (1.0, -1.0, 1.0, 1.0)}, "loss_weights must be 4 or 5 weights >= 0"),
    ({"transpose": (-7, 6)}, r"transpose must be a range of semitones .*got \(-7, 6\)"),
    ({"transpose": (1, 6)}, "transpose must be a range of semitones around 0"),
    ({"transpose": (-6, 6)}, r"transpose must be .*at most 12 values, got \(-6, 6\)"),  # 13 values
    ({"pointer": True}, "a pointer head needs dense_targets"),
    ({"dense_targets": True}, "dense targets and transposition need embedding inputs"),  # tiny: scalar
    ({"transpose": (-5, 6)}, "dense targets and transposition need embedding inputs"),
    ({"dense_targets": True, "input_encoding": "embedding"}, "dense targets and transposition need .*sparse"),
    ({"bass": True}, "a bass head, and heads that see the chosen token, need an expressive model"),
    ({"given_token": True}, "a bass head, and heads that see the chosen token, need an expressive model"),
    ({"phase": True}, "a beat-phase input needs an expressive model"),
    ({"optimizer": "sgd"}, "optimizer must be one of .*'sgd'"),
    ({"expressive": True}, "an expressive model needs embedding inputs and sparse targets"),  # tiny: scalar, one-hot
    ({"expressive": True, "input_encoding": "embedding"}, "needs embedding inputs and sparse targets"),
    ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
])
def test_a_bad_value_is_refused_naming_it(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change)


def test_the_edges_of_the_valid_ranges_are_accepted():
    replace(TINY, sequence_length=1, lstm_units=(1,), recurrent_dropout=0.0, dropout=0.0, batch_size=1,
            dense_units=1, embedding_dim=1, loss_weights=(0.0, 0.0, 0.0, 0.0), learning_rate=1e-9)
    replace(TINY, expressive=True, input_encoding="embedding", sparse_targets=True)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_survives_config_json(name):
    config = preset(name)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(FrozenInstanceError):
        config.batch_size = 1


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of paper, paper-alt, fast"):
        preset("huge")
