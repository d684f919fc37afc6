"""A run whose model directory and corpus live on S3 (a real S3 server on 127.0.0.1): train,
resume, generate and evaluate from s3://, as a user would with MinIO or AWS; nothing of the run
lands in a local folder. The corpus is parsed from and to file:// URIs (Spark's s3a needs the
hadoop-aws jars, which cluster/README.md names) and uploaded."""
import json
import subprocess
import sys

import tensorflow as tf

from conftest import ROOT, copy_songs
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.launch import job_environment



def run(*command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def read_object(client, bucket, key) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_train_resume_generate_and_evaluate_with_everything_on_s3(spark, bucket, s3_server, tmp_path):
    name, client = bucket
    scratch = tmp_path / "tmp"  # the runs' temporary directory: scratch folders must be gone after
    work = tmp_path / "work"  # where the user runs the commands: must stay empty
    for folder in (scratch, work):
        folder.mkdir()
    env = job_environment(ROOT / "cluster" / "conf", **s3_server, TMPDIR=str(scratch))
    summary = parse_corpus(spark, ParseConfig(f"file://{copy_songs(tmp_path)}", f"file://{tmp_path}/corpus"))
    assert summary.parsed == 3
    for file in (tmp_path / "corpus").rglob("*.parquet"):  # the corpus goes to the bucket
        client.upload_file(str(file), name, f"corpus/{file.relative_to(tmp_path / 'corpus').as_posix()}")

    train = ["spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", f"s3a://{name}/corpus",
             "--model-dir", f"s3://{name}/models/run1", "--preset", "tiny", "--num-proc", "2"]
    out = run(*train, "--epochs", "1", cwd=work, env=env)
    assert "trained 1 epochs with 2 Horovod ranks" in out and f"model in s3://{name}/models/run1" in out
    out = run(*train, "--epochs", "2", "--resume", cwd=work, env=env)
    assert "trained 1 epochs with 2 Horovod ranks" in out

    keys = {item["Key"] for item in client.list_objects_v2(Bucket=name, Prefix="models/run1/")["Contents"]}
    files = {key.removeprefix("models/run1/") for key in keys if not key.endswith("/")}
    assert {"config.json", "vocab.json", "model.keras", "history.csv", "loss.png",
            "checkpoints/last.json", "checkpoints/best.json"} <= files
    assert any(f.startswith("logs/train/events.out.tfevents.") for f in files)
    assert not [f for f in files if ".partial-" in f]
    history = read_object(client, name, "models/run1/history.csv").decode().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]
    last = json.loads(read_object(client, name, "models/run1/checkpoints/last.json"))
    assert last["epoch"] == 1 and f"checkpoints/{last['directory']}/state.index" in files
    assert read_object(client, name, "models/run1/loss.png")[:4] == b"\x89PNG"
    local_model = tmp_path / "downloaded.keras"
    local_model.write_bytes(read_object(client, name, "models/run1/model.keras"))
    assert tf.keras.models.load_model(local_model, compile=False).output_shape[-1] == len(
        json.loads(read_object(client, name, "models/run1/vocab.json"))["tokens"])

    out = run(sys.executable, str(ROOT / "jobs/generate.py"), "--model-dir", f"s3://{name}/models/run1",
              "--length", "24", "--seed", "3", "--output", str(tmp_path / "out" / "piece.mid"), cwd=work, env=env)
    assert (tmp_path / "out" / "piece.mid").read_bytes()[:4] == b"MThd"
    run(sys.executable, str(ROOT / "jobs/evaluate.py"), "--model-dir", f"s3://{name}/models/run1",
        "--pieces", "1", "--length", "24", cwd=work, env=env)
    evaluation = json.loads(read_object(client, name, "models/run1/evaluation.json"))
    assert evaluation["validation"]["targets"] > 0 and "kneser_ney_4" in evaluation["baselines"]

    assert sorted(p.name for p in work.iterdir()) == []  # no s3a:/… folder, no model files
    assert not list(scratch.glob("lstm-composer-*"))  # scratch folders removed
