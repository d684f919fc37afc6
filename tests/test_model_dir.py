"""The model directory: checkpoints, the exported network, and clear errors for damaged files."""
import json

import pytest
import tensorflow as tf

from lstm_composer.callbacks import EpochSaver, export_network
from lstm_composer.model import build_model
from lstm_composer.model_dir import ModelDir, ModelDirError
from lstm_composer.presets import preset
from lstm_composer.tokens import Vocabulary

CONFIG = preset("tiny")
TOKENS = ["0.4.7", "C4", "D4", "E4", "G4"]


def write_model_dir(directory, tokens=TOKENS):
    network = build_model(CONFIG, len(tokens))
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model": CONFIG.to_dict(), "corpus_path": "nowhere"}))
    (directory / "vocab.json").write_text(Vocabulary(tokens).to_json())
    export_network(network, ModelDir(str(directory)), CONFIG, len(tokens))
    return network


def test_a_complete_model_dir_loads(tmp_path):
    network = write_model_dir(tmp_path)
    model = ModelDir(str(tmp_path)).load()
    assert model.vocabulary.tokens == TOKENS
    assert [w.tolist() for w in model.network.get_weights()] == [w.tolist() for w in network.get_weights()]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.keras").unlink(), "model.keras is missing"),
    (lambda d: (d / "model.keras").write_bytes(b"PK\x03\x04 not really a zip"), "model.keras is corrupt"),
    (lambda d: (d / "config.json").write_text("{'model':"), "config.json is corrupt"),
    (lambda d: (d / "vocab.json").unlink(), "vocab.json is missing"),
    (lambda d: (d / "vocab.json").write_text(Vocabulary(TOKENS + ["A4"]).to_json()), "different runs"),
])
def test_a_damaged_model_dir_is_refused_naming_the_file(tmp_path, damage, message):
    write_model_dir(tmp_path)
    damage(tmp_path)
    with pytest.raises(ModelDirError, match=message):
        ModelDir(str(tmp_path)).load()


def test_epoch_saver_keeps_the_best_network_and_the_last_state(tmp_path):
    network = build_model(CONFIG, len(TOKENS))
    state = tf.train.Checkpoint(model=network)
    saver = EpochSaver(str(tmp_path), state, CONFIG, len(TOKENS), float("inf"), sequences_per_epoch=100)
    directory = ModelDir(str(tmp_path))
    saver.set_model(network)

    saver.on_epoch_begin(0)
    saver.on_epoch_end(0, {"loss": 3.0, "val_loss": 2.0})
    best_weights = [w.copy() for w in network.get_weights()]
    network.set_weights([w * 0 for w in best_weights])
    logs = {"loss": 1.0, "val_loss": 2.5}  # training improves, validation does not
    saver.on_epoch_begin(1)
    saver.on_epoch_end(1, logs)

    assert logs["sequences_per_second"] > 0 and logs["seconds"] > 0
    exported = directory.load_network()
    assert [w.tolist() for w in exported.get_weights()] == [w.tolist() for w in best_weights]
    last, best = directory.checkpoint("last"), directory.checkpoint("best")
    assert (last.epoch, best.epoch, saver.best_val_loss) == (1, 0, 2.0)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.json", "epoch-0000", "epoch-0001", "last.json"]

    saver.on_epoch_end(2, {"loss": 0.5, "val_loss": 1.0})  # better: epoch 0's state is no longer needed
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.json", "epoch-0002", "last.json"]
    restored = build_model(CONFIG, len(TOKENS))
    tf.train.Checkpoint(model=restored).read(directory.checkpoint().prefix).assert_consumed()
    assert all(not w.any() for w in restored.get_weights() if w.ndim > 1)


def test_a_checkpoint_pointer_to_a_missing_state_is_reported(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.json").write_text('{"epoch": 3, "directory": "epoch-0003", "metrics": {}}')
    with pytest.raises(ModelDirError, match="epoch-0003/state.index, which is missing"):
        ModelDir(str(tmp_path)).checkpoint()


def test_history_is_trimmed_to_the_checkpointed_epochs(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,3.0\n1,2.0\n2,1.5\n")
    ModelDir(str(tmp_path)).trim_history(2)
    assert (tmp_path / "history.csv").read_text() == "epoch,loss\n0,3.0\n1,2.0\n"


def test_a_network_trained_in_bfloat16_is_saved_in_float32(tmp_path):
    from dataclasses import replace

    config = replace(CONFIG, input_encoding="embedding", sparse_targets=True, precision="mixed_bfloat16")
    training = build_model(config, len(TOKENS), for_training=True)
    assert training.get_layer("lstm_1").compute_dtype == "bfloat16"
    assert training.get_layer("next_token").compute_dtype == "float32"
    export_network(training, ModelDir(str(tmp_path)), config, len(TOKENS))
    saved = ModelDir(str(tmp_path)).load_network()
    assert {layer.compute_dtype for layer in saved.layers if layer.weights} == {"float32"}
    assert [w.tolist() for w in saved.get_weights()] == [w.tolist() for w in training.get_weights()]
