"""The README's three commands, run as a user runs them: parse → train (2 Horovod ranks) → generate."""
import json
import os
import re
import signal
import time
import subprocess
import sys
from pathlib import Path

import pytest
from music21 import converter

from conftest import ROOT, SONGS, copy_songs
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.launch import job_environment
from lstm_composer.model_dir import ModelDir
from readers import SCORE_GRID, assert_hands_split, musicxml_title, read_midi_with_mido, read_musicxml, sounding



ENV = job_environment(ROOT / "cluster" / "conf")


def run(*command, cwd):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def parse_songs(folder, names=SONGS):
    """The README's parse command."""
    copy_songs(folder, names)
    return run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/parse.py"),
               "--input", "songs", "--output", "data/corpus", cwd=folder)


def parse_in_session(spark, folder, names=SONGS) -> None:
    """The same tables through the tests' SparkSession, where the test is about what comes after
    (test_parse_train_generate runs the command itself)."""
    parse_corpus(spark, ParseConfig(str(copy_songs(folder, names)), str(folder / "data" / "corpus")))


def checkpoint_value(model_dir: Path, name: str) -> float:
    """A variable of the last checkpoint, read with TensorFlow's checkpoint reader."""
    import tensorflow as tf

    return float(tf.train.load_checkpoint(ModelDir(str(model_dir)).checkpoint().prefix).get_tensor(
        f"optimizer/{name}/.ATTRIBUTES/VARIABLE_VALUE"))


def own_validation_losses(model_dir: Path, notes: Path, ranks: int) -> list[float]:
    """The validation loss each rank measured on its own, recomputed with model.keras in inference
    mode over the windows it validated: its share of the held-out windows, in whole batches of
    min(batch size, windows per rank). For a model with scalar inputs and one-hot targets."""
    import numpy as np

    from lstm_composer.dataset import rank_window_starts
    from lstm_composer.tables import Corpus, read_token_stream

    settings = json.loads((model_dir / "config.json").read_text())
    length, batch = settings["model"]["sequence_length"], settings["model"]["batch_size"]
    vocabulary, network = ModelDir(str(model_dir)).vocabulary(), ModelDir(str(model_dir)).load_network()
    stream = read_token_stream(Corpus(str(notes.parent)), vocabulary)
    shares = [rank_window_starts(stream, length, set(settings["validation_pieces"]), rank, ranks)
              for rank in range(ranks)]
    per_rank = sum(map(len, shares)) // ranks
    whole_batches = per_rank // min(batch, per_rank) * min(batch, per_rank)
    losses = []
    for starts in shares:
        starts = starts[:whole_batches]
        windows = stream.ids[starts[:, None] + np.arange(length)][..., None] / len(vocabulary)
        probabilities = network(windows, training=False).numpy()
        chosen = probabilities[np.arange(len(starts)), stream.ids[starts + length]]
        losses.append(float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean()))
    return losses


def test_parse_train_generate(tmp_path):
    out = parse_songs(tmp_path)
    assert "3 files: 3 parsed, 0 empty, 0 failed" in out

    # --max-minutes 0.001: every rank stops after the first epoch of three.
    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
              "--model-dir", "models/run1", "--preset", "tiny", "--epochs", "3", "--max-minutes", "0.001",
              "--num-proc", "2", cwd=tmp_path)
    assert "trained 1 epochs with 2 Horovod ranks" in out
    assert re.search(r"\[0\]<stdout>:\d+/\d+ - .* - loss: .* - val_loss: ", out)  # rank 0's progress line
    model_dir = tmp_path / "models" / "run1"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "checkpoints", "config.json", "corpus", "history.csv", "logs", "loss.png", "model.keras", "vocab.json",
        "voicings.json"]
    history = ModelDir(str(model_dir)).history()
    assert len(history) == 1
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "sequences_per_second", "seconds"} <= set(history[0])
    assert float(history[0]["val_loss"]) > 0 and float(history[0]["sequences_per_second"]) > 0
    assert list((model_dir / "logs").rglob("events.out.tfevents.*"))
    assert (model_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((model_dir / "config.json").read_text())["validation_pieces"]) == 1
    # The learning rate is the preset's 0.001 per rank, times 2 ranks; the metrics rank 0 writes
    # are the mean of what each rank measured on its own windows.
    assert checkpoint_value(model_dir, "_learning_rate") == pytest.approx(2 * 0.001)
    own = own_validation_losses(model_dir, tmp_path / "data/corpus/notes", ranks=2)
    assert abs(own[0] - own[1]) > 1e-3, own  # two different figures, or the mean proves nothing
    assert float(history[0]["val_loss"]) == pytest.approx(sum(own) / 2, rel=1e-4)

    for name in ("a.mid", "b.mid"):
        out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", "models/run1",
                  "--length", "32", "--seed", "7", "--output", name, cwd=tmp_path)
        assert f"wrote {tmp_path / name}, {tmp_path / name.replace('.mid', '.report.json')}" in out
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()  # same seed, same piece

    score = converter.parse(tmp_path / "a.mid")
    assert len(score.flatten().notes) == 32


TRAIN = [str(ROOT / "jobs/train.py"), "--corpus", "data/corpus", "--model-dir", "models/run",
         "--preset", "tiny", "--epochs", "8", "--num-proc", "2", "--batch-size", "4"]


def test_a_killed_training_resumes_from_its_last_checkpoint(spark, tmp_path):
    parse_in_session(spark, tmp_path)
    model_dir = tmp_path / "models" / "run"
    driver = subprocess.Popen(["spark-submit", "--master", "local[2]", *TRAIN], cwd=tmp_path, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ((model_dir / "checkpoints" / "last.json").exists() and ModelDir(str(model_dir)).checkpoint().epoch >= 1):
            assert driver.poll() is None and time.monotonic() < deadline, "training ended before its second epoch"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its JVM and the ranks: nothing says goodbye
        driver.wait()
    killed_after = ModelDir(str(model_dir)).checkpoint().epoch
    assert killed_after < 7
    steps_per_epoch = checkpoint_value(model_dir, "_iterations") / (killed_after + 1)
    assert steps_per_epoch == int(steps_per_epoch) > 0

    refused = subprocess.run(["spark-submit", "--master", "local[2]", *TRAIN], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert re.search(r"already holds a training run \(model\.keras, history\.csv, config\.json, .*\): pass --resume",
                     refused.stdout)  # spark-submit merges the two

    out = run("spark-submit", "--master", "local[2]", *TRAIN, "--resume", cwd=tmp_path)
    assert f"trained {7 - killed_after} epochs" in out
    assert [int(row["epoch"]) for row in ModelDir(str(model_dir)).history()] == list(range(8))
    assert ModelDir(str(model_dir)).checkpoint().epoch == 7
    # The optimizer went on from the saved state (its step count with it): a resumed run that
    # started from fresh weights and optimizer would have counted only the epochs after the kill.
    assert checkpoint_value(model_dir, "_iterations") == 8 * steps_per_epoch


def test_expressive_training_evaluation_and_generation(spark, tmp_path):
    # Pieces longer than the preset's 100-token window, whichever is held out, each with several
    # velocities: each rank trains on a piece of its own, and a rank whose one piece had a single
    # velocity (a Bach chorale) teaches the head that velocity within three steps.
    parse_in_session(spark, tmp_path, ["clara_schumann_polonaise_op1_no4.mid", "chopin_mazurka_op6_no2.mid",
                                       "beach_prayer_of_a_tired_child.mid"])
    out = run("spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
              "--model-dir", "models/expressive", "--preset", "expressive", "--epochs", "1", "--num-proc", "2",
              "--batch-size", "1", "--steps-per-epoch", "3", "--val-steps", "2", cwd=tmp_path)
    assert "trained 1 epochs with 2 Horovod ranks" in out
    assert re.search(r"next_velocity_loss: [\d.]+", out)  # every head is trained
    vocab = json.loads((tmp_path / "models/expressive/vocab.json").read_text())
    assert set(vocab["expression"]) == {"ioi", "duration", "velocity", "phases"} and vocab["expression"]["phases"] == 24
    history = ModelDir(str(tmp_path / "models/expressive")).history()
    assert float(history[0]["val_token_loss"]) < float(history[0]["val_loss"])  # one head of four

    out = run(sys.executable, str(ROOT / "jobs/evaluate.py"), "--model-dir", "models/expressive", "--pieces", "1",
              "--length", "64", cwd=tmp_path)
    evaluation = json.loads((tmp_path / "models/expressive/evaluation.json").read_text())
    assert evaluation["targets"] > 0 and evaluation["validation"]["targets"] == evaluation["targets"]
    assert set(evaluation["baselines"]) == {"unigram", "kneser_ney_2", "kneser_ney_3", "kneser_ney_4", "kneser_ney_5"}
    assert set(evaluation["context_curve"]) == {"1", "4", "16", "full", "targets"}
    printed = {cells[0]: cells[1:] for line in out.splitlines() if line.startswith("| ")
               for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}
    for head in ("token", "ioi", "duration", "velocity"):  # test_evaluate checks the figures themselves
        scores = evaluation["validation"][head]
        assert printed[head] == [f"{scores['cross_entropy']:.3f}", f"{scores['perplexity']:.1f}",
                                 f"{scores['accuracy']:.3f}"], out

    out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", "models/expressive", "--length", "64",
              "--output", "expressive.mid", "--musicxml", cwd=tmp_path)
    report = json.loads((tmp_path / "expressive.report.json").read_text())
    assert report["distinct_onset_gaps"] > 1 and report["distinct_velocity_bins"] > 1
    # The files hold the piece the library composes from this model (seed 0), read back by mido
    # and music21: every note where the model put it; in the score, on the nearest 1/24 quarter.
    events = compose(GenerateConfig(str(tmp_path / "models/expressive"), length=64)).events
    written = read_midi_with_mido(tmp_path / "expressive.mid").notes
    assert {(round(onset * 480), pitch) for onset, pitch, *_ in written} == {
        (round(e.offset * 480), pitch) for e in events for pitch in e.pitches}
    _, treble, bass = read_musicxml(tmp_path / "expressive.musicxml")  # two staves, every bar full
    assert musicxml_title(tmp_path / "expressive.musicxml") == "expressive"
    high, low = ({(pitch, onset) for pitch, onset, _ in sounding(staff)} for staff in (treble, bass))
    assert high | low == {(pitch, round(e.offset * SCORE_GRID)) for e in events for pitch in e.pitches}
    assert not high & low
    assert_hands_split(high, low)
