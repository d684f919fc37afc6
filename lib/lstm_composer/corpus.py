"""The Spark parse job: MIDI files (any Hadoop path) → `pieces` and `notes` Parquet tables.

Files are read with Spark's `binaryFile` source, so local folders, HDFS and S3 work alike.
The job runs in two passes. The first, in the JVM only, lists every file with its size and
content hash; the driver then decides what to parse: content already in the tables, a second
copy of the same content, or a file over the size limit is not read again. The second pass
parses the chosen files on the executors and writes their tokens; each file's `pieces` row
comes back to the driver, which writes them next, and then commits both (`parse_corpus`).
A file that cannot be parsed becomes a row with status `error` and the reason, and never
stops the job.
"""
from __future__ import annotations

import gc
import hashlib
import re
import secrets
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lstm_composer.midi import MidiError, read_midi
from lstm_composer.tokens import Token, onset_tolerance, tokenize

NOTES_SCHEMA = T.StructType([
    T.StructField("piece_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("token", T.StringType(), False),
    T.StructField("pitches", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("offset", T.DoubleType(), False),
    T.StructField("duration", T.DoubleType(), False),
    T.StructField("velocity", T.IntegerType(), False),
    T.StructField("program", T.IntegerType(), False),
])

PIECES_SCHEMA = T.StructType([
    T.StructField("piece_id", T.StringType(), False),
    T.StructField("path", T.StringType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("error", T.StringType(), True),
    T.StructField("n_tokens", T.IntegerType(), False),
    T.StructField("ticks_per_quarter", T.IntegerType(), True),
    T.StructField("tempos", T.ArrayType(T.StructType([
        T.StructField("offset", T.DoubleType(), False),
        T.StructField("bpm", T.DoubleType(), False)])), True),
    T.StructField("time_signatures", T.ArrayType(T.StructType([
        T.StructField("offset", T.DoubleType(), False),
        T.StructField("signature", T.StringType(), False)])), True),
    # The onset grouping the tokens were made with: 0 (exact ticks) or the tolerance in real time.
    T.StructField("onset_tolerance_ms", T.DoubleType(), True),
])

MIDI_SUFFIX = r"(?i)\.midi?$"
MIB = 1 << 20
FILES_PER_ARROW_BATCH = 32  # bounds an executor's memory: at most this many files' bytes at once
FILE_OPEN_COST = 64 << 10  # what Spark should count per file when it packs files into tasks
STAGING_PREFIX = "_staging-"  # a run's output before its commit; readers skip names starting with _


@dataclass(frozen=True)
class ParseConfig:
    input_path: str
    output_path: str
    max_bytes: int = 16 * MIB  # larger files are reported, never read
    file_timeout: float = 60.0  # seconds of parsing one file may take on an executor
    # Notes starting within this many milliseconds form one token; 0: the same tick; None
    # ("auto"): tokens.PERFORMED_TOLERANCE_MS for files that look performed, else 0.
    onset_tolerance_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.input_path or not self.output_path:
            raise ValueError("both an input and an output path are needed")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")
        if self.file_timeout <= 0:
            raise ValueError(f"file_timeout must be positive, got {self.file_timeout}")
        if self.onset_tolerance_ms is not None and not 0 <= self.onset_tolerance_ms < 1000:
            raise ValueError(f"onset_tolerance_ms must be in [0, 1000) or None (auto), got {self.onset_tolerance_ms}")

    @property
    def pieces_path(self) -> str:
        return f"{self.output_path}/pieces"

    @property
    def notes_path(self) -> str:
        return f"{self.output_path}/notes"


@dataclass(frozen=True)
class ParseSummary:
    files: int  # MIDI files found under the input
    parsed: int
    empty: int
    failed: int
    known: int  # content already in the tables from an earlier run: not parsed again
    duplicates: int  # same content as another file of this run: counted once
    tokens: int
    grouped: int = 0  # pieces whose onsets were grouped within a tolerance in real time

    def __str__(self) -> str:
        grouped = f"; {self.grouped} with onsets grouped in real time" if self.grouped else ""
        return (f"{self.files} files: {self.parsed} parsed, {self.empty} empty, {self.failed} failed, "
                f"{self.known} already parsed, {self.duplicates} duplicates; {self.tokens} tokens{grouped}")


class FileTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise `FileTimeout` in this thread after `seconds` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise FileTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)  # inside the try: a short limit may expire at once
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def cyclic_gc_paused():
    """Parsing allocates a million small objects and no reference cycles: Python's cycle
    collector would spend a third of the time looking for some. Reference counting still
    frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def piece_id(content: bytes) -> str:
    """A piece is named by its content, so the same file under two names is one piece.
    (The first pass computes the same value in the JVM: `content_id`.)"""
    return hashlib.sha256(content).hexdigest()[:16]


def content_id(content_column: str) -> F.Column:
    return F.substring(F.sha2(F.col(content_column), 256), 1, 16)


def parse_piece(path: str, content: bytes, timeout: float | None = None,
                onset_tolerance_ms: float | None = None) -> tuple[tuple, list[Token]]:
    """One file's bytes → its `pieces` row and its tokens, with onsets grouped as
    `tokens.onset_tolerance` says for `onset_tolerance_ms` (None: auto). Never raises."""
    pid = piece_id(content)
    try:
        with time_limit(timeout) if timeout else nullcontext(), cyclic_gc_paused():
            song = read_midi(content)
            tolerance = onset_tolerance(song, onset_tolerance_ms)
            tokens = tokenize(song, tolerance)
    except MidiError as error:
        return failed_piece(pid, path, "error", str(error)), []
    except FileTimeout:
        return failed_piece(pid, path, "error", f"timeout: parsing took over {timeout:g} s (--file-timeout)"), []
    except Exception as error:  # a bug of ours must not cost the user the other files
        return failed_piece(pid, path, "error", f"internal error: {type(error).__name__}: {error}"), []
    tpq = float(song.ticks_per_quarter)
    if tokens:
        status, reason = "ok", None
    else:
        status, reason = "empty", "percussion only (channel 10)" if song.percussion_notes else "no notes"
    piece = (pid, path, status, reason, len(tokens), song.ticks_per_quarter,
             [(tick / tpq, bpm) for tick, bpm in song.tempos],
             [(tick / tpq, signature) for tick, signature in song.time_signatures], tolerance)
    return piece, tokens


def failed_piece(pid: str, path: str, status: str, reason: str) -> tuple:
    return (pid, path, status, reason, 0, None, None, None, None)


class _ListParam(AccumulatorParam):
    def zero(self, value):
        return []

    def addInPlace(self, left, right):
        left.extend(right)
        return left


def parse_to_notes(batches, pieces_accumulator, timeout: float, onset_tolerance_ms: float | None = None):
    """Executor side of `mapInArrow`: batches of (path, content) → batches of notes rows.

    Each file's `pieces` row goes to the driver through `pieces_accumulator`; a task that is
    run twice may send a row twice, which the driver drops.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(NOTES_SCHEMA)
    for batch in batches:
        pieces, columns = [], [[] for _ in schema]
        for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
            piece, tokens = parse_piece(path, content, timeout, onset_tolerance_ms)
            pieces.append(piece)
            columns[0].extend([piece[0]] * len(tokens))
            for column, values in zip(columns[1:], zip(*tokens)):
                column.extend(values)
        pieces_accumulator.add(pieces)
        yield pa.RecordBatch.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, schema)], schema=schema)


def list_midi_files(spark: SparkSession, input_path: str) -> DataFrame:
    """All `.mid`/`.midi` files (any case) under `input_path`, recursively: path, length, content.

    Content is read only for the rows a query keeps: Spark pushes filters on `length` down
    to the file listing.
    """
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.[mM][iI][dD]*")
            .load(input_path)
            .where(F.col("path").rlike(MIDI_SUFFIX))
            .select("path", "length", "content"))


def catalogue(files: DataFrame, max_bytes: int) -> list[tuple[str, int, str | None]]:
    """(path, size, content id) of every file; the id is None for files over `max_bytes`,
    which are never read. Zero-byte files, which Spark's scans skip, are added from its index."""
    readable = files.where(F.col("length") <= max_bytes).select("path", "length", content_id("content"))
    too_big = files.where(F.col("length") > max_bytes).select("path", "length", F.lit(None).cast("string"))
    entries = [tuple(row) for row in readable.union(too_big).collect()]
    scanned = {path for path, _, _ in entries}
    indexed = {unquote(re.sub(r"^file:///", "file:/", uri)) for uri in files.inputFiles()
               if re.search(MIDI_SUFFIX, uri)}  # URIs, where `path` has Hadoop's decoded form
    entries += [(path, 0, piece_id(b"")) for path in indexed - scanned]
    return sorted(entries)


def _filesystem(spark: SparkSession, path: str):
    """(Hadoop FileSystem, Path) for `path`: local, HDFS, S3, ..."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    filesystem, hadoop_path = _filesystem(spark, path)
    return filesystem.exists(hadoop_path)


def _children(spark: SparkSession, path: str) -> list[str]:
    filesystem, hadoop_path = _filesystem(spark, path)
    if not filesystem.exists(hadoop_path):
        return []
    return [status.getPath().getName() for status in filesystem.listStatus(hadoop_path)]


def _delete(spark: SparkSession, path: str) -> None:
    filesystem, hadoop_path = _filesystem(spark, path)
    filesystem.delete(hadoop_path, True)


def _rename(spark: SparkSession, source: str, target: str) -> None:
    filesystem, hadoop_source = _filesystem(spark, source)
    hadoop_target = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(target)
    filesystem.mkdirs(hadoop_target.getParent())
    if not filesystem.rename(hadoop_source, hadoop_target):
        raise OSError(f"could not rename {source} to {target}")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def discard_uncommitted(spark: SparkSession, config: ParseConfig) -> None:
    """Remove what a killed run left: staging folders, and notes of a run whose pieces never
    landed (its files are parsed again)."""
    committed = {name for name in _children(spark, config.pieces_path) if name.startswith("run=")}
    for table in (config.notes_path, config.pieces_path):
        for name in _children(spark, table):
            if name.startswith(STAGING_PREFIX) or (table == config.notes_path and name.startswith("run=")
                                                   and name not in committed):
                _delete(spark, f"{table}/{name}")


def known_piece_ids(spark: SparkSession, config: ParseConfig) -> frozenset[str]:
    if not path_exists(spark, config.pieces_path):  # first run: no table yet
        return frozenset()
    return frozenset(row.piece_id for row in spark.read.parquet(config.pieces_path).select("piece_id").collect())


def _size(n_bytes: int) -> str:
    return f"{n_bytes / MIB:.1f} MiB" if n_bytes >= MIB else f"{n_bytes} bytes"


@dataclass
class _Plan:
    """What the driver decided from the catalogue."""

    to_parse: dict[str, int]  # path → size, one path per new content
    rows: list[tuple]  # `pieces` rows decided without reading the file
    known: int = 0
    duplicates: int = 0


def plan(entries: list[tuple[str, int, str | None]], known: frozenset[str], max_bytes: int) -> _Plan:
    decided = _Plan(to_parse={}, rows=[])
    seen: set[str] = set()
    for path, size, pid in entries:
        reason = None
        if pid is None:  # over the size limit: named by path and size instead of content
            pid = "size-" + hashlib.sha256(f"{path}:{size}".encode()).hexdigest()[:11]
            reason = f"file is {_size(size)}, over the {_size(max_bytes)} limit (--max-bytes)"
        if pid in known:
            decided.known += 1
        elif pid in seen:
            decided.duplicates += 1
        elif reason:
            decided.rows.append(failed_piece(pid, path, "error", reason))
        elif size == 0:
            decided.rows.append(parse_piece(path, b"")[0])
        else:
            decided.to_parse[path] = size
        seen.add(pid)
    return decided


def task_bytes(spark: SparkSession, sizes: dict[str, int]) -> int:
    """Input bytes per parse task, which is also one notes file: about four tasks per core,
    so fast cores take over from slow ones, and 1 to 64 MiB each, so a corpus of 100,000
    files gives a few hundred Parquet files, not 100,000."""
    total = sum(sizes.values()) + FILE_OPEN_COST * len(sizes)
    return min(max(total // (4 * spark.sparkContext.defaultParallelism), MIB), 64 * MIB)


def parse_corpus(spark: SparkSession, config: ParseConfig) -> ParseSummary:
    """Parse every MIDI file under the input not parsed before; add them to `pieces` and `notes`.

    Each run writes both tables' rows to staging folders, then commits by renaming them to
    `run=<id>` folders: notes first, pieces last. A run is in the tables once its pieces
    folder is; whatever a killed run left is removed by the next one, which parses its files
    again. (Staging names start with `_`, which Spark and pyarrow readers skip.) One parse job
    at a time per output.
    """
    discard_uncommitted(spark, config)
    run = new_run_id()
    staged_notes = f"{config.notes_path}/{STAGING_PREFIX}{run}"
    staged_pieces = f"{config.pieces_path}/{STAGING_PREFIX}{run}"
    files = list_midi_files(spark, config.input_path)
    entries = catalogue(files, config.max_bytes)
    decided = plan(entries, known_piece_ids(spark, config), config.max_bytes)

    pieces_accumulator = spark.sparkContext.accumulator([], _ListParam())
    if decided.to_parse:
        timeout, tolerance = config.file_timeout, config.onset_tolerance_ms
        to_read = files
        if len(decided.to_parse) < sum(1 for _, size, _ in entries if size > 0):  # not all are new
            chosen = spark.createDataFrame([(path,) for path in decided.to_parse], "path string")
            to_read = to_read.join(F.broadcast(chosen), "path", "left_semi")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(FILES_PER_ARROW_BATCH))
        spark.conf.set("spark.sql.files.openCostInBytes", str(FILE_OPEN_COST))
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(task_bytes(spark, decided.to_parse)))
        (to_read.select("path", "content")
         .mapInArrow(lambda batches: parse_to_notes(batches, pieces_accumulator, timeout, tolerance), NOTES_SCHEMA)
         .write.parquet(staged_notes))
    parsed = {piece[1]: piece for piece in pieces_accumulator.value}  # by path: drops re-sent rows
    rows = sorted(decided.rows + list(parsed.values()), key=lambda piece: piece[1])
    if rows:
        # The rows are built here to the schema; checking 300,000 tempo changes again costs 0.4 s.
        (spark.createDataFrame(rows, PIECES_SCHEMA, verifySchema=False)
         .coalesce(1).write.parquet(staged_pieces))
        if path_exists(spark, staged_notes):
            _rename(spark, staged_notes, f"{config.notes_path}/run={run}")
        _rename(spark, staged_pieces, f"{config.pieces_path}/run={run}")  # the commit

    statuses = [piece[2] for piece in rows]
    return ParseSummary(files=len(entries), parsed=statuses.count("ok"), empty=statuses.count("empty"),
                        failed=statuses.count("error"), known=decided.known, duplicates=decided.duplicates,
                        tokens=sum(piece[4] for piece in rows), grouped=sum(1 for piece in rows if piece[8]))
