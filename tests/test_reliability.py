"""Nothing lost, nothing twice: parse runs killed part-way, and what they leave behind."""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq

from conftest import ROOT
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.launch import job_environment

ENV = job_environment(ROOT / "cluster" / "conf")
SONGS = sorted((ROOT / "midi_songs").glob("*.mid"))


def check_tables(output: Path, files: int) -> None:
    """Every file once in `pieces`, every piece's notes once, both readable by pyarrow."""
    pieces = pq.read_table(output / "pieces").to_pylist()
    assert len(pieces) == files and len({p["path"] for p in pieces}) == files
    notes = pq.read_table(output / "notes", columns=["piece_id", "position"]).to_pylist()
    keys = [(n["piece_id"], n["position"]) for n in notes]
    assert len(keys) == len(set(keys)), "a piece's notes were written twice"
    for piece in pieces:
        assert sum(1 for pid, _ in keys if pid == piece["piece_id"]) == piece["n_tokens"], piece["path"]
    assert not [p for table in ("notes", "pieces") for p in (output / table).glob("_staging-*")]


def test_a_parse_killed_while_writing_leaves_nothing_and_the_rerun_parses_everything(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for path in SONGS:
        shutil.copy(path, songs / path.name)
    command = ["spark-submit", "--master", "local[2]", str(ROOT / "jobs/parse.py"), "--input", str(songs),
               "--output", str(tmp_path / "corpus")]
    driver = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "corpus" / "notes").glob("_staging-*")):
            assert driver.poll() is None and time.monotonic() < deadline, "the job ended before writing notes"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # mid-way through the notes write
        driver.wait()
    assert not (tmp_path / "corpus" / "pieces").exists() or not list((tmp_path / "corpus" / "pieces").glob("run=*"))

    rerun = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"{len(SONGS)} files: {len(SONGS)} parsed" in rerun.stdout
    check_tables(tmp_path / "corpus", len(SONGS))


def test_notes_committed_without_their_pieces_are_discarded_and_parsed_again(spark, tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for path in SONGS[:6]:
        shutil.copy(path, songs / path.name)
    output = tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output))
    parse_corpus(spark, config)
    for path in SONGS[6:9]:
        shutil.copy(path, songs / path.name)
    parse_corpus(spark, config)
    # The state a driver killed between the two renames of the second run's commit leaves.
    second = sorted((output / "pieces").glob("run=*"))[-1]
    shutil.rmtree(second)
    assert (output / "notes" / second.name).is_dir()

    summary = parse_corpus(spark, config)
    assert (summary.parsed, summary.known) == (3, 6)
    assert not (output / "notes" / second.name).exists()
    check_tables(output, 9)


def rank_processes(driver: int, rank: int) -> list:
    """The processes of one Horovod rank among the job's (Horovod starts each rank in a
    session of its own, so they are found as the driver's descendants)."""
    import psutil

    found = []
    for process in psutil.Process(driver).children(recursive=True):
        try:
            if process.environ().get("HOROVOD_RANK") == str(rank):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_lost_rank_stops_training_with_the_resume_command_and_resume_completes(spark, tmp_path):
    from lstm_composer.model_dir import ModelDir

    songs = tmp_path / "songs"
    songs.mkdir()
    for path in SONGS[:3]:
        shutil.copy(path, songs / path.name)
    parse_corpus(spark, ParseConfig(str(songs), str(tmp_path / "corpus")))
    model_dir = tmp_path / "model"
    train = ["spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", str(tmp_path / "corpus"),
             "--model-dir", str(model_dir), "--preset", "tiny", "--epochs", "8", "--num-proc", "2",
             "--batch-size", "4"]
    driver = subprocess.Popen(train, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ((model_dir / "checkpoints" / "last.json").exists() and ModelDir(str(model_dir)).checkpoint().epoch >= 1):
            assert driver.poll() is None and time.monotonic() < deadline, "training ended before its second epoch"
            time.sleep(0.2)
        victims = rank_processes(driver.pid, rank=1)
        assert victims, "found no process of rank 1"
        for process in victims:
            process.kill()
        output, _ = driver.communicate(timeout=180)  # a hang fails here
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode != 0
    # Horovod names the first rank it saw stop: the one killed, or rank 0 failing on losing it.
    named = re.search(r"Horovod rank (\d) stopped first: its process (was killed \(signal 9\)|exited with code \d+ "
                      r"\(a rank also stops when it loses another)", output)
    assert named and "--resume" in output, output[-3000:]

    resumed = subprocess.run(train + ["--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert [int(row["epoch"]) for row in ModelDir(str(model_dir)).history()] == list(range(8))


def test_the_stop_message_names_the_first_rank_horovod_saw_stop_and_when_it_may_not_be_the_lost_one(tmp_path):
    from lstm_composer.presets import preset
    from lstm_composer.progress import Failure
    from lstm_composer.training import TrainConfig, stopped_message

    config = TrainConfig(str(tmp_path / "corpus"), str(tmp_path / "model"), preset("tiny"), epochs=2, num_proc=2)

    def horovod_error(rank, code):  # as horovod.runner.gloo_run words it
        return RuntimeError("Horovod detected that one or more processes exited with non-zero status, thus causing "
                            f"the job to be terminated. The first process to do so was:\nProcess name: {rank}\n"
                            f"Exit code: {code}\n")

    killed = stopped_message(horovod_error(1, 137), config)
    assert killed.startswith("Horovod rank 1 stopped first: its process was killed (signal 9), and Horovod stopped "
                             "the other ranks;") and "may be the one" not in killed
    assert "no epoch finished, nothing is saved" in killed
    failed = stopped_message(horovod_error(0, 1), config)
    assert failed.startswith("Horovod rank 0 stopped first: its process exited with code 1") and "loses another" in failed
    # Rank 0 told the driver why it stopped, but only that it lost its peer: the killed rank said nothing.
    lost_peer = Failure("0", "error", "HorovodInternalError: Horovod has been shut down. This was caused by an "
                                      "exception on one of the ranks")
    failed = stopped_message(horovod_error(0, 1), config, [lost_peer])
    assert failed.startswith("Horovod rank 0 stopped first: its process exited with code 1") and "loses another" in failed
    assert failed.splitlines()[-1].startswith("rank 0 failed: HorovodInternalError")
    own = Failure("1", "setup", "ValueError: the corpus has no notes")
    failed = stopped_message(horovod_error(0, 1), config, [lost_peer, own])
    assert "loses another" not in failed and failed.splitlines()[-1].startswith("rank 1 failed: ValueError")
