"""storage: the one filesystem layer, on local paths, file:// URIs and a real S3 server on 127.0.0.1."""
import os
from pathlib import Path

import pytest

from lstm_composer import storage


def objects(client, bucket: str) -> dict[str, bytes]:
    """The bucket's files, read by boto3 (folder markers, which pyarrow leaves, left out)."""
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listed if not item["Key"].endswith("/")}


@pytest.mark.parametrize("form", ["plain", "file://"])
def test_local_writes_replace_whole_files_and_leave_no_partial(tmp_path, form):
    root = str(tmp_path) if form == "plain" else f"file://{tmp_path}"
    target = storage.join(root, "a", "b.json")
    storage.write_text(target, "first")
    storage.write_bytes(target, b"second")
    assert (tmp_path / "a" / "b.json").read_bytes() == b"second"
    assert os.listdir(tmp_path / "a") == ["b.json"]
    assert storage.read_text(target) == "second" and storage.is_file(target) and storage.exists(storage.join(root, "a"))
    assert storage.list_names(storage.join(root, "a")) == ["b.json"]
    storage.delete(storage.join(root, "a"))
    assert not (tmp_path / "a").exists() and storage.list_names(storage.join(root, "a")) == []
    with pytest.raises(FileNotFoundError, match="b.json does not exist"):
        storage.read_bytes(target)


def test_a_write_that_fails_part_way_leaves_the_old_file(tmp_path):
    target = str(tmp_path / "model.keras")
    storage.write_bytes(target, b"old")
    source = tmp_path / "missing-source"
    with pytest.raises(FileNotFoundError):
        storage.put_file(source, target)
    assert Path(target).read_bytes() == b"old" and os.listdir(tmp_path) == ["model.keras"]


def test_uri_forms():
    assert storage.scheme("models/run1") == "" and storage.scheme("s3a://b/k") == "s3"
    assert storage.local_path("file:///tmp/x") == "/tmp/x" and storage.local_path("s3://b/k") is None
    assert storage.absolute("s3a://b/k") == "s3a://b/k" and storage.absolute("x").startswith("/")
    assert storage.join("s3://b/run/", "logs", "a") == "s3://b/run/logs/a"
    assert storage.resolve("s3a://bucket/run/x.json")[1] == "bucket/run/x.json"


def test_s3_reads_writes_and_lists_through_the_aws_variables(bucket):
    name, client = bucket
    root = f"s3a://{name}/run"  # Hadoop's scheme is the same bucket
    storage.write_text(f"{root}/config.json", "{}")
    with storage.Workspace(root) as workspace:  # a scratch folder for a remote location
        local = Path(workspace.folder)
        (local / "model.keras").write_bytes(b"PK")
        storage.put_file(local / "model.keras", f"s3://{name}/run/model.keras")
    assert objects(client, name) == {"run/config.json": b"{}", "run/model.keras": b"PK"}
    assert storage.list_names(root) == ["config.json", "model.keras"]
    assert storage.files_under(root) == {"config.json": 2, "model.keras": 2}
    storage.delete(f"{root}/model.keras")
    assert list(objects(client, name)) == ["run/config.json"]
    assert not storage.exists(f"{root}/model.keras")


def test_a_workspace_uploads_what_changed_and_leaves_nothing_behind(bucket):
    name, client = bucket
    with storage.Workspace(f"s3://{name}/run") as workspace:
        folder = Path(workspace.folder)
        assert workspace.scratch and folder.is_dir() and Path(workspace.path("logs")).parent == folder
        Path(workspace.path("logs")).mkdir()
        Path(workspace.path("logs", "events.1")).write_bytes(b"epoch 1")
        assert workspace.sync("logs") == 1 and workspace.sync("logs") == 0  # unchanged: not sent again
        Path(workspace.path("logs", "events.1")).write_bytes(b"epoch 1, epoch 2")
        Path(workspace.path("logs", "events.2")).write_bytes(b"other")
        assert workspace.sync() == 2
        assert objects(client, name) == {"run/logs/events.1": b"epoch 1, epoch 2", "run/logs/events.2": b"other"}
        workspace.forget("logs")
        assert not Path(workspace.path("logs")).exists()
        assert Path(workspace.fetch("logs")).joinpath("events.2").read_bytes() == b"other"
    assert not folder.exists()


def test_a_local_workspace_is_the_folder_itself(tmp_path):
    workspace = storage.Workspace(str(tmp_path / "run"))
    assert workspace.folder == str(tmp_path / "run") and not workspace.scratch
    Path(tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    assert workspace.sync() == 0
    workspace.close()
    assert (tmp_path / "run" / "x").exists()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_rename_moves_a_whole_folder_and_makes_the_targets_parent(tmp_path, request, where):
    """What the parse job's commit does with its staging folders, on every storage it supports."""
    if where == "s3":
        name, client = request.getfixturevalue("bucket")
        root = f"s3a://{name}/corpus"
    else:
        root = f"file://{tmp_path}/corpus"
    staged = storage.join(root, "notes", "_staging-1")
    storage.write_bytes(storage.join(staged, "part-0.parquet"), b"rows")
    storage.write_bytes(storage.join(staged, "deep", "part-1.parquet"), b"more")
    storage.rename(staged, storage.join(root, "notes", "run=1"))
    assert storage.list_names(storage.join(root, "notes")) == ["run=1"]
    assert storage.files_under(storage.join(root, "notes")) == {"run=1/deep/part-1.parquet": 4, "run=1/part-0.parquet": 4}
    storage.rename(storage.join(root, "notes", "run=1", "part-0.parquet"), storage.join(root, "new", "a.parquet"))
    assert storage.read_bytes(storage.join(root, "new", "a.parquet")) == b"rows"
    assert not storage.exists(storage.join(root, "notes", "run=1", "part-0.parquet"))
    if where == "s3":
        assert sorted(objects(client, name)) == ["corpus/new/a.parquet", "corpus/notes/run=1/deep/part-1.parquet"]
