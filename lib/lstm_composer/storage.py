"""One filesystem layer over URIs, for everything a run reads or writes.

A location is a plain path, `file://…`, `s3://…` (Hadoop's `s3a://` and `s3n://` mean the
same bucket), `gs://…` or `hdfs://…`; pyarrow's filesystems do the work. S3 takes its
endpoint and credentials the standard way, from `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) and `AWS_REGION`, so the same URI works
against AWS, MinIO or GCS's S3 interface.

Every write is atomic: a reader sees the old file or the new one, never half of one. Local
and HDFS files are written under a temporary name and renamed; on an object store (S3, GCS)
an object appears whole when its single put completes.

Keras and TensorBoard write local files only. `Workspace`, after Horovod's Store, gives them
a local folder: the model directory itself when it is local, otherwise a scratch folder in
the temporary directory whose changed files `sync` uploads.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pyarrow import fs

OBJECT_STORES = ("s3", "gcs")  # pyarrow's type names of filesystems whose single put is atomic
PARTIAL_PREFIX = ".partial-"  # a file being written; readers that skip names starting with . skip it


def scheme(uri: str) -> str:
    """'' for a plain local path; otherwise the URI's scheme, with Hadoop's S3 names as 's3'."""
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", uri)
    if not match:
        return "file" if uri.startswith("file:") else ""
    name = match[1].lower()
    return "s3" if name in ("s3a", "s3n") else name


def is_local(uri: str) -> bool:
    return scheme(uri) in ("", "file")


def local_path(uri: str) -> str | None:
    """The absolute local path of a plain path or file: URI; None for remote storage."""
    if not is_local(uri):
        return None
    return os.path.abspath(urlparse(uri).path if uri.startswith("file:") else uri)


def absolute(uri: str) -> str:
    """Ranks and executors run in other working directories: plain paths become absolute."""
    return os.path.abspath(uri) if scheme(uri) == "" else uri


def join(uri: str, *names: str) -> str:
    return "/".join([uri.rstrip("/"), *names])


def name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


@lru_cache(maxsize=None)
def _s3(endpoint: str | None, region: str | None) -> fs.S3FileSystem:
    options = {"endpoint_override": endpoint} if endpoint else {}
    return fs.S3FileSystem(region=region, **options) if region else fs.S3FileSystem(**options)


def resolve(uri: str) -> tuple[fs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for `uri`."""
    kind = scheme(uri)
    if kind in ("", "file"):
        return fs.LocalFileSystem(), local_path(uri)
    parts = urlparse(uri)
    if kind == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3(endpoint, region), f"{parts.netloc}{parts.path}".rstrip("/")
    return fs.FileSystem.from_uri(uri)  # gs://, hdfs://, and whatever else pyarrow knows


def _info(uri: str) -> fs.FileInfo:
    filesystem, path = resolve(uri)
    return filesystem.get_file_info(path)


def exists(uri: str) -> bool:
    return _info(uri).type != fs.FileType.NotFound


def is_file(uri: str) -> bool:
    return _info(uri).type == fs.FileType.File


def read_bytes(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    if filesystem.get_file_info(path).type != fs.FileType.File:
        raise FileNotFoundError(f"{uri} does not exist")
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def _write(filesystem: fs.FileSystem, path: str, write) -> None:
    """Call `write(stream)` so that `path` appears whole or not at all."""
    if filesystem.type_name in OBJECT_STORES:  # no folders to make; the object appears when the put completes
        with filesystem.open_output_stream(path) as stream:
            write(stream)
        return
    directory, file_name = path.rsplit("/", 1)
    filesystem.create_dir(directory, recursive=True)
    partial = f"{directory}/{PARTIAL_PREFIX}{file_name}"
    try:
        with filesystem.open_output_stream(partial) as stream:
            write(stream)
        if filesystem.type_name == "hdfs" and filesystem.get_file_info(path).type == fs.FileType.File:
            filesystem.delete_file(path)  # HDFS renames onto no existing file
        filesystem.move(partial, path)  # a rename: atomic on a local filesystem and on HDFS
    finally:
        if filesystem.get_file_info(partial).type != fs.FileType.NotFound:
            filesystem.delete_file(partial)


def write_bytes(uri: str, data: bytes) -> None:
    """The project's one atomic write."""
    filesystem, path = resolve(uri)
    _write(filesystem, path, lambda stream: stream.write(data))


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode())


def put_file(local: str | Path, uri: str) -> None:
    """Copy a local file to `uri`, atomically."""
    filesystem, path = resolve(uri)

    def copy(stream):
        with open(local, "rb") as source:
            shutil.copyfileobj(source, stream, 8 << 20)

    _write(filesystem, path, copy)


def get_file(uri: str, local: str | Path) -> None:
    filesystem, path = resolve(uri)
    Path(local).parent.mkdir(parents=True, exist_ok=True)
    with filesystem.open_input_stream(path) as stream, open(local, "wb") as target:
        shutil.copyfileobj(stream, target, 8 << 20)


def list_names(uri: str) -> list[str]:
    """The names directly inside the folder `uri` (none when it does not exist)."""
    filesystem, path = resolve(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)


def files_under(uri: str) -> dict[str, int]:
    """{path relative to `uri`: size} of every file below the folder `uri`."""
    filesystem, path = resolve(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    return {info.path[len(path):].lstrip("/"): info.size for info in infos if info.type == fs.FileType.File}


def delete(uri: str) -> None:
    """Remove a file or a whole folder; nothing happens when it is not there."""
    filesystem, path = resolve(uri)
    kind = filesystem.get_file_info(path).type
    if kind == fs.FileType.Directory:
        filesystem.delete_dir(path)
    elif kind == fs.FileType.File:
        filesystem.delete_file(path)


def rename(source: str, target: str) -> None:
    """Move a file or a whole folder to `target`, which must not exist yet (its parent is made).
    A rename where the filesystem has one (local, HDFS): atomic. On an object store (S3, GCS),
    a copy of each object, then the delete of the source: a reader may see both for a while."""
    filesystem, source_path = resolve(source)
    target_path = resolve(target)[1]
    if filesystem.type_name not in OBJECT_STORES:
        filesystem.create_dir(target_path.rsplit("/", 1)[0], recursive=True)
        filesystem.move(source_path, target_path)
        return
    if filesystem.get_file_info(source_path).type == fs.FileType.File:
        filesystem.copy_file(source_path, target_path)
    else:
        for relative in files_under(source):
            filesystem.copy_file(f"{source_path}/{relative}", f"{target_path}/{relative}")
    delete(source)


def get_folder(uri: str, local: str | Path) -> None:
    """Download every file below the folder `uri` into `local`."""
    for relative in files_under(uri):
        get_file(join(uri, relative), Path(local) / relative)


class Workspace:
    """A local folder for the files of the location `uri` that libraries must write locally.

    For a local `uri` the folder is `uri` itself and `sync` does nothing. Otherwise it is a
    scratch folder in the temporary directory; `sync` uploads the files that changed (by size
    and modification time) since the last sync, and `close` removes the folder.
    """

    def __init__(self, uri: str):
        self.uri = uri
        mirrored = local_path(uri)
        self.scratch = mirrored is None
        self.folder = tempfile.mkdtemp(prefix="lstm-composer-") if self.scratch else mirrored
        self._uploaded: dict[str, tuple[int, int]] = {}

    def path(self, *names: str) -> str:
        return os.path.join(self.folder, *names)

    def sync(self, *names: str) -> int:
        """Upload what changed below `names` (the whole folder without). Returns the files uploaded."""
        if not self.scratch:
            return 0
        root = Path(self.path(*names))
        uploaded = 0
        for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]:
            if not file.exists():
                continue
            relative = file.relative_to(self.folder).as_posix()
            stat = file.stat()
            if self._uploaded.get(relative) != (stat.st_size, stat.st_mtime_ns):
                put_file(file, join(self.uri, relative))
                self._uploaded[relative] = (stat.st_size, stat.st_mtime_ns)
                uploaded += 1
        return uploaded

    def fetch(self, *names: str) -> str:
        """The local path of `names` under the location, downloaded first when remote."""
        local = self.path(*names)
        if self.scratch:
            remote = join(self.uri, *names)
            if is_file(remote):
                get_file(remote, local)
            else:
                get_folder(remote, local)
        return local

    def forget(self, *names: str) -> None:
        """Drop `names` from the scratch folder (the location keeps them)."""
        if self.scratch:
            shutil.rmtree(self.path(*names), ignore_errors=True)
            prefix = "/".join(names)
            self._uploaded = {k: v for k, v in self._uploaded.items() if not k.startswith(prefix)}

    def close(self) -> None:
        if self.scratch:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
