"""The parse job's input: every MIDI file under a folder or bucket, listed without reading it,
then read (only the new ones) by Spark or, for a small re-run, on the driver.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lstm_composer import storage
from lstm_composer.piece import piece_id

MIDI_SUFFIX = r"(?i)\.midi?$"
# A MIDI file's path below the input folder, none of its names starting with `_` or `.` (which
# Spark's file sources skip).
_LISTED = re.compile(r"(?i)[^/_.][^/]*(?:/[^/_.][^/]*)*\.midi?")
FILE_OPEN_COST = 64 << 10  # what Spark should count per file when it packs files into tasks
DRIVER_READERS = 16  # files read at once on the driver: on object storage each read is a request


@dataclass(frozen=True)
class Unread:
    """In place of the content id of a new file that the job listed but could not read: its
    `error` row gives the reason."""

    reason: str


def list_midi_files(spark: SparkSession, input_path: str) -> DataFrame:
    """All `.mid`/`.midi` files (any case) under `input_path`, recursively: path, length,
    modification time, content.

    Content is read only for the rows a query keeps: Spark pushes filters on `length` down
    to the file listing.
    """
    # Spark lists big folders in a parallel job: a few tasks per core, not one per folder.
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                   str(4 * spark.sparkContext.defaultParallelism))
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.[mM][iI][dD]*")
            .load(input_path)
            .where(F.col("path").rlike(MIDI_SUFFIX))
            .select("path", "length", "modificationTime", "content"))


def qualified(spark: SparkSession, path: str) -> str:
    """`path` as Hadoop resolves it (`file:/…`, `hdfs://namenode:8020/…`, `s3a://…`): a relative
    path means the same folder to Spark and to `storage`."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    filesystem = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return str(filesystem.makeQualified(hadoop_path).toString())


def listing(spark: SparkSession, input_path: str) -> list[tuple[str, int, int]]:
    """(path, size, modified in ms since 1970) of every `.mid`/`.midi` file under the input,
    recursively and sorted, without reading any: one listing through `storage`, no Spark job.
    Paths have the form Spark's binaryFile source gives them, and names Spark skips (starting
    with `_` or `.`) are skipped too."""
    from pyarrow import fs

    root = qualified(spark, input_path).rstrip("/")
    filesystem, base = storage.resolve(root)
    base = base.rstrip("/")
    entries, below, file = [], len(base) + 1, fs.FileType.File
    if filesystem.get_file_info(base).type == file:  # not a folder: nothing under it
        return []
    for info in filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True)):
        path = info.path  # one property read each: on a million files they add up
        if _LISTED.fullmatch(path, below) and info.type == file:
            entries.append((f"{root}/{path[below:]}", info.size, info.mtime_ns // 1_000_000))
    return sorted(entries)


def _glob_escaped(path: str) -> str:
    """A path Spark's `load` takes literally: it expands glob characters."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", path)


def read_files(spark: SparkSession, files: DataFrame, paths, every: bool) -> DataFrame:
    """The binaryFile rows of `paths` only: `files` when `every` file of it is meant, otherwise a
    new read of just these paths, so that no other file's content is read."""
    if every:
        return files
    paths = sorted(paths)
    if paths and paths[0].startswith("file:"):  # a local stat takes microseconds, Spark's parallel listing job seconds
        spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.threshold", str(len(paths) + 1))

    def load(names: list[str]) -> DataFrame:
        if not names:
            return spark.createDataFrame([], "path string, length long, content binary")
        return spark.read.format("binaryFile").load([_glob_escaped(n) for n in names]).select("path", "length", "content")

    try:
        return load(paths)
    except AnalysisException:  # a file deleted since the listing: read the others (it gets an error row)
        return load([path for path in paths if storage.exists(path)])


def content_id(content_column: str) -> F.Column:
    """`piece.piece_id`, computed in the JVM."""
    return F.substring(F.sha2(F.col(content_column), 256), 1, 16)


def content_ids(files: DataFrame) -> dict[str, str]:
    """{path: content id}, hashed in the JVM."""
    return {row[0]: row[1] for row in files.select("path", content_id("content")).collect()}


def read_or_why(uri: str) -> bytes | Unread:
    """A file's bytes, read on the driver, or why they could not be read."""
    try:
        return storage.read_bytes(uri)
    except OSError as error:  # deleted since the listing, no permission...
        return Unread(f"could not be read: {error}")


def read_on_driver(sizes: dict[str, int]) -> tuple[dict[str, bytes], dict[str, str | Unread]]:
    """The files' bytes, read on the driver a few at a time, and each file's content id (or why
    it could not be read)."""
    with ThreadPoolExecutor(DRIVER_READERS) as pool:
        read = dict(zip(sizes, pool.map(read_or_why, sizes)))
    contents = {path: content for path, content in read.items() if isinstance(content, bytes)}
    return contents, {path: piece_id(content) if isinstance(content, bytes) else content
                      for path, content in read.items()}


def read_with_spark(spark: SparkSession, input_path: str, max_bytes: int, sizes: dict[str, int],
                    every: bool) -> DataFrame:
    """The new files as binaryFile rows: the whole input through Spark's own listing when every
    file is new (files over the limit are never read), otherwise the new ones by name."""
    candidates = (list_midi_files(spark, input_path).where(F.col("length") <= max_bytes)
                  if every else None)
    spark.conf.set("spark.sql.files.openCostInBytes", str(FILE_OPEN_COST))
    spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")  # deleted while read: an error row
    return read_files(spark, candidates, sizes, every)
