"""Every failure explained on its last line, and a model directory that stands alone: real
training runs (one Horovod rank, the `tiny` preset) on the tests' SparkSession."""
import json
import shutil
import threading
from dataclasses import replace

import pytest

from conftest import copy_songs
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.evaluate import evaluate
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.model_dir import ModelDir
from lstm_composer.presets import preset
from lstm_composer.training import TrainConfig, TrainingStopped, advice, train
from midi_bytes import chords, midi_file


def trained_run(spark, folder, epochs=2):
    """Three bundled songs parsed into `folder`/corpus and a `tiny` model trained on them in `folder`/model."""
    parse_corpus(spark, ParseConfig(str(copy_songs(folder)), str(folder / "corpus")))
    config = TrainConfig(str(folder / "corpus"), str(folder / "model"), replace(preset("tiny"), batch_size=8),
                         epochs=epochs, num_proc=1, steps_per_epoch=4, val_steps=2)
    train(spark, config)
    return config


def test_a_damaged_checkpoint_is_named_on_the_last_line_with_the_way_back(spark, tmp_path):
    config = trained_run(spark, tmp_path, epochs=1)  # one checkpoint: the last is the best
    last = ModelDir(config.model_dir).checkpoint("last")
    data = next((tmp_path / "model" / "checkpoints" / last.directory).glob("state.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # as a full disk or a killed copy leaves it

    printed = []  # what Python would print as a thread's unhandled exception
    previous, threading.excepthook = threading.excepthook, printed.append
    try:
        with pytest.raises(TrainingStopped) as stopped:
            train(spark, replace(config, epochs=2, resume=True))
    finally:
        threading.excepthook = previous
    # Horovod's Spark thread dies of the job's cancellation: forty lines of Java stack, not printed.
    assert not printed, [str(args.exc_value)[:200] for args in printed]
    *_, last_line = str(stopped.value).splitlines()
    assert last_line.startswith(f"rank 0 failed: CheckpointDamaged: the checkpoint of epoch 1, {last.prefix}.*, "
                                f"cannot be restored into this network"), last_line
    assert last_line.endswith("No other checkpoint is kept: start again with --overwrite (model.keras is replaced)."), \
        last_line

    train(spark, replace(config, overwrite=True))  # the way out that the message gave
    assert [int(row["epoch"]) for row in ModelDir(config.model_dir).history()] == [0]


def test_the_advice_after_a_damaged_last_checkpoint_goes_back_to_the_best(tmp_path):
    directory = ModelDir(str(tmp_path))
    for which, epoch in (("best", 3), ("last", 5)):
        state = tmp_path / "checkpoints" / f"epoch-{epoch:04d}"
        state.mkdir(parents=True)
        (state / "state.index").write_bytes(b"")
        (tmp_path / "checkpoints" / f"{which}.json").write_text(json.dumps(
            {"epoch": epoch, "directory": state.name, "metrics": {}}))
    assert advice("checkpoint", directory).startswith("Go on from the best epoch (4) instead, with the same command "
                                                      "and --resume best")
    assert advice("setup", directory).startswith("Resuming would fail the same way")
    assert "--resume" in advice("error", directory) and "Free some space" in advice("disk", directory)


def test_a_model_keeps_generating_and_evaluating_after_its_corpus_grows_moves_or_goes(spark, tmp_path):
    (tmp_path / "first").mkdir()
    config = trained_run(spark, tmp_path / "first", epochs=1)
    vocabulary = ModelDir(config.model_dir).vocabulary()
    # The corpus grows by a piece whose chord the model never saw, as a user adding files and re-parsing.
    cluster = midi_file(chords([[60, 61, 62, 63, 64, 65, 66]] * 4))
    (tmp_path / "first" / "songs" / "cluster.mid").write_bytes(cluster)
    grown = parse_corpus(spark, ParseConfig(str(tmp_path / "first" / "songs"), config.corpus_path))
    assert grown.parsed == 1 and "0.1.2.3.4.5.6" not in vocabulary.index

    before = compose(GenerateConfig(config.model_dir, length=24, seed=3))
    assert len(before.events) > 0
    evaluate(config.model_dir, pieces=1, length=24)

    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(config.model_dir, moved)
    shutil.rmtree(tmp_path / "first")  # the corpus and the model directory where they were: gone
    after = compose(GenerateConfig(str(moved), length=24, seed=3))
    assert after.events == before.events  # the same piece: same windows, same seed
    result = evaluate(str(moved), pieces=1, length=24)
    assert result["validation_pieces"] == 1 and (moved / "evaluation.json").exists()


def test_each_failure_gets_the_advice_that_fits_it():
    import errno

    from lstm_composer.rank import CheckpointDamaged, failure_kind

    assert failure_kind(OSError(errno.ENOSPC, "No space left on device")) == "disk"
    assert failure_kind(RuntimeError("CreateSummaryFileWriter ...; No space left on device")) == "disk"  # TensorFlow's
    assert failure_kind(CheckpointDamaged("the checkpoint of epoch 3 cannot be restored")) == "checkpoint"
    assert failure_kind(ValueError("the notes table has tokens outside the vocabulary")) == "setup"
    assert failure_kind(RuntimeError("Gloo: connection closed by peer")) == "error"


def test_a_resumed_run_goes_on_from_a_grown_corpus_leaving_out_what_it_cannot_read(spark, tmp_path):
    import pyarrow.parquet as pq

    from lstm_composer.piece import piece_id
    from midi_bytes import melody

    config = trained_run(spark, tmp_path, epochs=1)
    known = midi_file(melody([60, 64, 65, 67, 65, 64] * 5))  # notes the three songs have (D4 is not among them)
    cluster = midi_file(chords([[60, 61, 62, 63, 64, 65, 66]] * 4))  # a chord none was trained on
    (tmp_path / "songs" / "known.mid").write_bytes(known)
    (tmp_path / "songs" / "cluster.mid").write_bytes(cluster)
    assert parse_corpus(spark, ParseConfig(str(tmp_path / "songs"), config.corpus_path)).parsed == 2

    summary = train(spark, replace(config, epochs=2, resume=True, update_corpus=True))
    assert summary.epochs == 1 and summary.left_out == (piece_id(cluster),)
    kept = set(pq.read_table(tmp_path / "model" / "corpus" / "notes", columns=["piece_id"])["piece_id"].to_pylist())
    assert piece_id(known) in kept and piece_id(cluster) not in kept
    assert [int(row["epoch"]) for row in ModelDir(config.model_dir).history()] == [0, 1]
