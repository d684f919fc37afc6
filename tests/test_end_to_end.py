"""The README's three commands, run as a user runs them: parse → train (2 Horovod ranks) → generate."""
import json
import os
import re
import shutil
import signal
import time
import subprocess
import sys
from pathlib import Path

from music21 import converter

from lstm_composer.model_dir import read_checkpoint, read_history

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SONGS = ["schoenberg_op19_no2.mid", "joplin_maple_leaf_rag.mid", "bach_bwv1_6_chorale.mid"]


ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
       "SPARK_CONF_DIR": str(ROOT / "cluster" / "conf"), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(*command, cwd):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def parse_songs(folder, names=SONGS):
    songs = folder / "songs"
    songs.mkdir()
    for name in names:
        shutil.copy(ROOT / "midi_songs" / name, songs / name)
    return run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/parse.py"),
               "--input", "songs", "--output", "data/corpus", cwd=folder)


def test_parse_train_generate(tmp_path):
    out = parse_songs(tmp_path)
    assert "3 files: 3 parsed, 0 empty, 0 failed" in out

    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
              "--model-dir", "models/run1", "--preset", "tiny", "--epochs", "1", "--num-proc", "2", cwd=tmp_path)
    assert "trained 1 epochs with 2 Horovod ranks" in out
    assert re.search(r"\[0\]<stdout>:\d+/\d+ - .* - loss: .* - val_loss: ", out)  # rank 0's progress line
    model_dir = tmp_path / "models" / "run1"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "checkpoints", "config.json", "history.csv", "logs", "loss.png", "model.keras", "vocab.json"]
    history = read_history(model_dir)
    assert len(history) == 1
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "sequences_per_second", "seconds"} <= set(history[0])
    assert float(history[0]["val_loss"]) > 0 and float(history[0]["sequences_per_second"]) > 0
    assert list((model_dir / "logs").rglob("events.out.tfevents.*"))
    assert (model_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((model_dir / "config.json").read_text())["validation_pieces"]) == 1

    for name in ("a.mid", "b.mid"):
        out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", "models/run1",
                  "--length", "32", "--seed", "7", "--output", name, cwd=tmp_path)
        assert f"wrote {tmp_path / name}, {tmp_path / name.replace('.mid', '.report.json')}" in out
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()  # same seed, same piece

    score = converter.parse(tmp_path / "a.mid")
    assert len(score.flatten().notes) == 32


TRAIN = [str(ROOT / "jobs/train.py"), "--corpus", "data/corpus", "--model-dir", "models/run",
         "--preset", "tiny", "--epochs", "8", "--num-proc", "2", "--batch-size", "4"]


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    parse_songs(tmp_path)
    model_dir = tmp_path / "models" / "run"
    driver = subprocess.Popen(["spark-submit", "--master", "local[2]", *TRAIN], cwd=tmp_path, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ((model_dir / "checkpoints" / "last.json").exists() and read_checkpoint(model_dir).epoch >= 1):
            assert driver.poll() is None and time.monotonic() < deadline, "training ended before its second epoch"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its JVM and the ranks: nothing says goodbye
        driver.wait()
    killed_after = read_checkpoint(model_dir).epoch
    assert killed_after < 7

    refused = subprocess.run(["spark-submit", "--master", "local[2]", *TRAIN], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "already holds a training run: pass --resume" in refused.stdout  # spark-submit merges the two

    out = run("spark-submit", "--master", "local[2]", *TRAIN, "--resume", cwd=tmp_path)
    assert f"trained {7 - killed_after} epochs" in out
    assert [int(row["epoch"]) for row in read_history(model_dir)] == list(range(8))
    assert read_checkpoint(model_dir).epoch == 7


def test_expressive_training_evaluation_and_generation(tmp_path):
    # Pieces longer than the preset's 100-token window, whichever is held out, each with several
    # velocities: each rank trains on a piece of its own, and a rank whose one piece had a single
    # velocity (a Bach chorale) teaches the head that velocity within three steps.
    parse_songs(tmp_path, ["clara_schumann_polonaise_op1_no4.mid", "chopin_mazurka_op6_no2.mid",
                           "beach_prayer_of_a_tired_child.mid"])
    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
              "--model-dir", "models/expressive", "--preset", "expressive", "--epochs", "1", "--num-proc", "2",
              "--batch-size", "8", "--steps-per-epoch", "3", "--val-steps", "2", cwd=tmp_path)
    assert "trained 1 epochs with 2 Horovod ranks" in out
    assert re.search(r"next_velocity_loss: [\d.]+", out)  # every head is trained
    vocab = json.loads((tmp_path / "models/expressive/vocab.json").read_text())
    assert set(vocab["expression"]) == {"ioi", "duration", "velocity"}
    history = read_history(tmp_path / "models/expressive")
    assert float(history[0]["val_token_loss"]) < float(history[0]["val_loss"])  # one head of four

    out = run(sys.executable, str(ROOT / "jobs/evaluate.py"), "--model-dir", "models/expressive", "--pieces", "1",
              "--length", "64", cwd=tmp_path)
    for head in ("token", "ioi", "duration", "velocity"):
        assert re.search(rf"\| {head} \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", out), out
    evaluation = json.loads((tmp_path / "models/expressive/evaluation.json").read_text())
    assert evaluation["validation"]["windows"] > 0

    out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", "models/expressive", "--length", "64",
              "--output", "expressive.mid", "--musicxml", cwd=tmp_path)
    report = json.loads((tmp_path / "expressive.report.json").read_text())
    assert report["distinct_onset_gaps"] > 1 and report["distinct_velocity_bins"] > 1
    assert (tmp_path / "expressive.musicxml").stat().st_size > 0
