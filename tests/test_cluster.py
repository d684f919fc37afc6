"""The cluster section of cluster/README.md, run as written on a standalone cluster on 127.0.0.1:
a master and two one-core workers, `spark-submit --master spark://…` for parse and for training
with two Horovod ranks, and a training that asks for more ranks than there are task slots."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, copy_songs, free_port
from lstm_composer.launch import job_environment

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path):
    """(master URL, environment); the cluster is stopped however the test ends."""
    env = job_environment(ROOT / "cluster" / "conf", STANDALONE_DIR=str(tmp_path / "standalone"))
    script = str(ROOT / "cluster" / "standalone.sh")
    try:
        up = subprocess.run([script, "up", "2", "--cores", "1", "--memory", "2g", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr
        pids = [int(p.read_text()) for p in (tmp_path / "standalone").glob("*.pid")]
        assert len(pids) == 3
        yield up.stdout.strip().splitlines()[-1], env
    finally:
        subprocess.run([script, "down"], env=env, timeout=120)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "standalone").glob("*.pid"))


def submit(master: str, env: dict, cwd: Path, *job: str) -> subprocess.CompletedProcess:
    package = ROOT / "dist" / "lstm_composer.zip"
    return subprocess.run(["spark-submit", "--master", master, "--py-files", str(package), *job],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_parse_and_train_on_a_standalone_cluster(cluster, tmp_path):
    master, env = cluster
    assert master.startswith("spark://127.0.0.1:")
    made = subprocess.run(["make", "-s", "dist/lstm_composer.zip"], cwd=ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    copy_songs(tmp_path)

    parse = submit(master, env, tmp_path, str(ROOT / "jobs/parse.py"), "--input", "songs", "--output", "data/corpus")
    assert parse.returncode == 0, parse.stdout[-3000:] + parse.stderr[-3000:]
    assert "3 files: 3 parsed, 0 empty, 0 failed" in parse.stdout

    train = submit(master, env, tmp_path, str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
                   "--model-dir", "models/run1", "--preset", "tiny", "--epochs", "1", "--num-proc", "2")
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "trained 1 epochs with 2 Horovod ranks" in train.stdout
    assert (tmp_path / "models/run1/model.keras").is_file()

    too_many = submit(master, env, tmp_path, str(ROOT / "jobs/train.py"), "--corpus", "data/corpus",
                      "--model-dir", "models/run2", "--preset", "tiny", "--epochs", "1", "--num-proc", "3",
                      "--slot-wait", "15")  # executors need a few seconds to register, more on a busy machine
    assert too_many.returncode == 1
    # Two slots once both executors of this new application have registered; on a busy machine
    # that can take longer than the 5 s wait, so any count below 3 is the right refusal.
    assert "--num-proc 3 needs 3 free task slots" in too_many.stdout
    assert re.search(r"after \d+ s the cluster offers [012] \(", too_many.stdout), too_many.stdout
