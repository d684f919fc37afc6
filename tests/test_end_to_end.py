"""The README's three commands, run as a user runs them: parse → train (2 Horovod ranks) → generate."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from music21 import converter

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SONGS = ["schoenberg_op19_no2.mid", "joplin_maple_leaf_rag.mid", "bach_bwv1_6_chorale.mid"]


def run(*command, cwd):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
           "SPARK_CONF_DIR": str(ROOT / "cluster" / "conf"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_parse_train_generate(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in SONGS:
        shutil.copy(ROOT / "midi_songs" / name, songs / name)

    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/parse.py"),
              "--input", "songs", "--output", "data/corpus", cwd=tmp_path)
    assert "3 files: 3 parsed, 0 empty, 0 failed" in out

    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
              "--model-dir", "models/run1", "--preset", "tiny", "--epochs", "1", "--num-proc", "2", cwd=tmp_path)
    assert "trained 1 epochs" in out
    model_dir = tmp_path / "models" / "run1"
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "history.csv", "model.keras", "vocab.json"]
    assert len((model_dir / "history.csv").read_text().splitlines()) == 2  # header + one epoch

    for name in ("a.mid", "b.mid"):
        out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", "models/run1",
                  "--length", "32", "--seed", "7", "--output", name, cwd=tmp_path)
        assert f"wrote 32 tokens to {tmp_path / name}" in out
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()  # same seed, same piece

    score = converter.parse(tmp_path / "a.mid")
    assert len(score.flatten().notes) == 32


def test_saved_model_loads_with_plain_keras(tmp_path):
    """model.keras holds no Horovod wrapper: `tf.keras.models.load_model` opens it as is."""
    import tensorflow as tf

    from lstm_composer.model import build_model
    from lstm_composer.presets import preset
    from lstm_composer.training import best_loss_saver

    config = preset("tiny")
    network = build_model(config, vocab_size=5)
    saver = best_loss_saver(tmp_path / "model.keras", config, vocab_size=5)
    saver.set_model(network)
    saver.on_epoch_end(0, {"loss": 2.0})
    best_weights = [w.copy() for w in network.get_weights()]
    network.set_weights([w * 0 for w in best_weights])
    saver.on_epoch_end(1, {"loss": 3.0})  # worse: the file keeps epoch 0's weights

    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    assert saver.best_loss == 2.0
    assert [w.tolist() for w in loaded.get_weights()] == [w.tolist() for w in best_weights]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]

    saver.on_epoch_end(2, {"loss": 1.0})  # better: replaced
    assert all(not w.any() for w in tf.keras.models.load_model(tmp_path / "model.keras").get_weights())
