"""One writer at a time per corpus and per model directory (locks.py), and the run a model
directory holds never trained over by accident."""
import json
import os
import threading
import time

import pyarrow.parquet as pq
import pytest

from conftest import copy_songs
from lstm_composer import storage
from lstm_composer.corpus import ParseConfig, commit, parse_corpus, parse_new, staged
from lstm_composer.locks import PREFIX, STALE_SECONDS, Busy, Lock
from lstm_composer.model_dir import ModelDir, ModelDirError
from lstm_composer.presets import preset
from lstm_composer.tables import Corpus, read_recorded
from lstm_composer.training import TrainConfig, prepare_run, train


def lock_files(target) -> list[str]:
    return [name for name in os.listdir(target) if name.startswith(PREFIX)]


def at_once(jobs):
    """Run the callables in threads that start together; each one's result or exception."""
    start, results = threading.Barrier(len(jobs)), [None] * len(jobs)

    def run(i, job):
        start.wait()
        try:
            results[i] = job()
        except Exception as error:  # noqa: BLE001 - what the test looks at
            results[i] = error

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_held_lock_refuses_a_second_writer_by_name_and_is_free_once_released(tmp_path):
    with Lock(str(tmp_path), "parse"):
        with pytest.raises(Busy, match=rf"is being written by a parse job \(process {os.getpid()} on "):
            Lock(str(tmp_path), "train").acquire()
        assert len(lock_files(tmp_path)) == 1  # the refused one left nothing
    assert lock_files(tmp_path) == []
    with Lock(str(tmp_path), "train"):
        pass


def test_writers_that_start_together_take_turns(tmp_path):
    inside, most = [0], [0]
    guard = threading.Lock()

    def write():
        with Lock(str(tmp_path), "parse", wait=60):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)
            with guard:
                inside[0] -= 1
        return True

    assert at_once([write] * 4) == [True] * 4
    assert most[0] == 1


@pytest.mark.parametrize("host, pid, age", [
    ("this host", 2 ** 22 + 7, 0.0),  # a process that is gone
    ("another-host.example", 1, STALE_SECONDS + 60)],  # no heartbeat for too long
    ids=["killed here", "silent elsewhere"])
def test_a_lock_left_by_a_killed_job_is_taken_over(tmp_path, host, pid, age):
    import socket

    host = socket.gethostname() if host == "this host" else host
    left = tmp_path / f"{PREFIX}0000000000001-dead.json"
    left.write_text(json.dumps({"job": "parse", "host": host, "pid": pid, "started": 1.0, "command": "parse.py",
                                "beat": time.time() - age}))
    with Lock(str(tmp_path), "parse"):
        assert not left.exists()


def test_a_live_lock_on_another_host_is_respected(tmp_path):
    (tmp_path / f"{PREFIX}0000000000001-live.json").write_text(json.dumps(
        {"job": "train", "host": "another-host.example", "pid": 1, "started": 1.0, "command": "train.py",
         "beat": time.time()}))
    with pytest.raises(Busy, match="a train job .* on another-host.example"):
        Lock(str(tmp_path), "train").acquire()


def test_locks_work_on_object_storage(bucket):
    name, client = bucket
    target = f"s3://{name}/corpus"
    with Lock(target, "parse"):
        with pytest.raises(Busy):
            Lock(target, "parse").acquire()
    assert storage.list_names(target) == []
    assert at_once([lambda: Lock(target, "parse", wait=30).acquire().release()] * 3) == [None] * 3


def notes_rows(output) -> list[tuple]:
    table = pq.read_table(output / "notes", columns=["piece_id", "position"])
    return list(zip(table["piece_id"].to_pylist(), table["position"].to_pylist()))


def test_two_parse_jobs_on_one_output_store_every_note_once(spark, tmp_path):
    songs, output = copy_songs(tmp_path), tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output), lock_wait=300)

    first, second = at_once([lambda: parse_corpus(spark, config)] * 2)

    assert sorted([first.parsed, second.parsed]) == [0, 3] and sorted([first.known, second.known]) == [0, 3]
    rows = notes_rows(output)
    assert len(rows) == len(set(rows)) == first.tokens + second.tokens
    assert lock_files(output) == []


def test_a_parse_refused_while_another_writes_names_it(spark, tmp_path):
    songs, output = copy_songs(tmp_path), tmp_path / "corpus"
    with Lock(str(output), "parse"):
        with pytest.raises(Busy, match=r"corpus is being written by a parse job"):
            parse_corpus(spark, ParseConfig(str(songs), str(output)))
    assert not (output / "pieces").exists()


def test_a_commit_leaves_out_content_another_run_committed_meanwhile(spark, tmp_path):
    """Two runs that bypassed the lock: the later commit stores none of the same pieces again."""
    songs, output = copy_songs(tmp_path), tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output))
    corpus = Corpus(f"file:{output}")
    from lstm_composer.midi_files import listing

    entries = listing(spark, str(songs))
    done = parse_corpus(spark, config)  # the other run commits first
    # The slow run read the tables before that commit: it knows nothing, stages every file, then commits.
    rows, _ = parse_new(spark, config, staged(corpus.notes, "slow"), entries, True, {})
    commit(corpus, "slow", rows)

    assert done.parsed == 3 and len(notes_rows(output)) == done.tokens
    statuses = [row["status"] for row in pq.read_table(output / "pieces").to_pylist()]
    assert sorted(statuses) == ["duplicate"] * 3 + ["ok"] * 3
    assert len(read_recorded(corpus).contents) == 3


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("writers")
    parse_corpus(spark, ParseConfig(str(copy_songs(folder)), str(folder / "corpus")))
    return str(folder / "corpus")


def tiny(corpus, model_dir, **options) -> TrainConfig:
    return TrainConfig(corpus, str(model_dir), preset("tiny"), epochs=1, num_proc=1, **options)


@pytest.mark.parametrize("left", ["model.keras", "history.csv", "config.json", "checkpoints/last.json"])
def test_a_directory_holding_any_part_of_a_run_is_not_trained_over(corpus, tmp_path, left):
    model_dir = tmp_path / "model"
    (model_dir / left).parent.mkdir(parents=True, exist_ok=True)
    (model_dir / left).write_text("kept")
    with pytest.raises(ModelDirError, match=rf"already holds a training run \({left.split('/')[0]}\): pass "
                                            r"--resume to continue it, --overwrite to replace it"):
        prepare_run(tiny(corpus, model_dir))
    assert (model_dir / left).read_text() == "kept"

    prepare_run(tiny(corpus, model_dir, overwrite=True))
    assert not (model_dir / left).exists() or (model_dir / left).read_text() != "kept"
    assert ModelDir(str(model_dir)).settings().model.name == "tiny"


def test_resume_refuses_a_directory_with_a_model_and_no_checkpoint(corpus, tmp_path):
    model_dir = tmp_path / "model"
    prepare_run(tiny(corpus, model_dir))
    (model_dir / "model.keras").write_text("a finished model whose checkpoints were cleaned away")
    with pytest.raises(ModelDirError, match="holds no last checkpoint to resume from: .* --overwrite"):
        prepare_run(tiny(corpus, model_dir, resume=True))
    assert (model_dir / "model.keras").read_text().startswith("a finished model")


def test_a_corpus_too_small_for_the_batch_is_refused_before_anything_is_written(corpus, tmp_path):
    model_dir = tmp_path / "model"
    config = TrainConfig(corpus, str(model_dir), preset("small"), epochs=1, num_proc=2)
    with pytest.raises(ValueError, match=r"the ranks' shards give \[\d+, \d+\] training windows of 128 tokens, and "
                                         r"every rank needs batch_size \d+: add MIDI files, lower --num-proc"):
        prepare_run(config)
    assert not model_dir.exists() or not os.listdir(model_dir)


def test_a_training_started_while_another_trains_the_same_directory_is_refused(spark, corpus, tmp_path):
    model_dir, refused = tmp_path / "model", []

    def second():
        while not (model_dir.exists() and lock_files(model_dir)):
            time.sleep(0.05)
        with pytest.raises(Busy, match="is being written by a train job") as raised:
            train(spark, tiny(corpus, model_dir))
        refused.append(raised.value)

    other = threading.Thread(target=second)
    other.start()
    summary = train(spark, tiny(corpus, model_dir))  # Horovod's runner wants the main thread
    other.join()
    assert summary.epochs == 1 and len(refused) == 1
    assert [int(row["epoch"]) for row in ModelDir(str(model_dir)).history()] == [0]
    assert lock_files(model_dir) == []
