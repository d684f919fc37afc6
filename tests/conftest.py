import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MIDI = ROOT.parent / "shared" / "midi" / "piano-midi"
sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (midi_bytes)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession for the whole run: UI off, scratch space in a temp folder."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    scratch = tmp_path_factory.mktemp("spark")
    session = (SparkSession.builder.master("local[2]")
               .appName("lstm-composer tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.local.dir", str(scratch))
               .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
               .getOrCreate())
    yield session
    session.stop()


# Three short bundled pieces of different kinds: what the job tests parse and train on.
SONGS = ["schoenberg_op19_no2.mid", "joplin_maple_leaf_rag.mid", "bach_bwv1_6_chorale.mid"]


def copy_songs(folder: Path, names=SONGS) -> Path:
    """`folder`/songs holding copies of the named bundled MIDI files."""
    import shutil

    songs = folder / "songs"
    songs.mkdir()
    for name in names:
        shutil.copy(ROOT / "midi_songs" / name, songs / name)
    return songs


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server on 127.0.0.1 (moto's standalone server) for the whole run.
    Yields the AWS_* variables that point a client at it, the way a user points one at MinIO."""
    import subprocess
    import time
    import urllib.request

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto's S3 server did not start"
                time.sleep(0.2)
        yield {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "lstm-composer",
               "AWS_SECRET_ACCESS_KEY": "lstm-composer-secret", "AWS_REGION": "us-east-1"}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def bucket(s3_server, monkeypatch, request):
    """A new, empty bucket; this process's AWS_* variables point at the server. Yields (name, boto3 client):
    boto3 is the independent reader of what the project wrote."""
    import re

    import boto3

    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id=s3_server["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_server["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=name)
    yield name, client
