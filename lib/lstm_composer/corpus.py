"""The Spark parse job: MIDI files (any Hadoop path) → `pieces` and `notes` Parquet tables.

Files are read with Spark's `binaryFile` source, so local folders, HDFS and S3 work alike.
The driver lists every file with its size and modification time through `storage`, without
reading it; a file whose (path, size, modification time) is recorded in `pieces` is not read
again. Then two passes over the new files only, which Spark reads by name (or, on a first
run, as the whole input). The first, in the JVM only, hashes their content; the driver
decides what to parse: content already in the tables or a second copy of the same content
becomes a `duplicate` row, a file over the size limit an `error` row, without parsing. The
second pass parses the chosen files on the executors and writes their tokens, each notes
file sorted by piece in small row groups (so a training rank reads only the row groups of
its pieces); each file's `pieces` row comes back to the driver, which writes them (pyarrow), and
then commits both (`parse_corpus`). A re-run that finds only a few new files reads, hashes and
parses them on the driver instead, quicker than starting Spark jobs (`driver_max_files`). A
file that cannot be parsed becomes a row with status `error` and the reason, and never stops
the job; `retry_failed` parses such files again.
"""
from __future__ import annotations

import gc
import hashlib
import re
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.accumulators import AccumulatorParam
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lstm_composer import storage
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
    T.StructField("size", T.LongType(), True),  # the file at `path`: bytes, and when it was last modified
    T.StructField("modified", T.TimestampType(), True),
])

MIDI_SUFFIX = r"(?i)\.midi?$"
# A MIDI file's path below the input folder, none of its names starting with `_` or `.` (which
# Spark's file sources skip).
_LISTED = re.compile(r"(?i)[^/_.][^/]*(?:/[^/_.][^/]*)*\.midi?")
MIB = 1 << 20
FILES_PER_ARROW_BATCH = 32  # bounds an executor's memory: at most this many files' bytes at once
FILE_OPEN_COST = 64 << 10  # what Spark should count per file when it packs files into tasks
STAGING_PREFIX = "_staging-"  # a run's output before its commit; readers skip names starting with _
NOTES_ROW_GROUP_BYTES = 8 * MIB  # a rank reading a range of pieces skips the others' row groups
DRIVER_MAX_BYTES = 64 * MIB  # the most new content a re-run parses on the driver (`driver_max_files`)
DRIVER_READERS = 16  # files read at once on the driver: on object storage each read is a request


@dataclass(frozen=True)
class Unread:
    """In place of the content id of a new file that the job listed but could not read: its
    `error` row gives the reason."""

    reason: str


NOT_RETURNED = Unread("listed, but not returned when Spark read the files (deleted or renamed since the "
                  "listing, or a name Spark's binaryFile source cannot take)")


@dataclass(frozen=True)
class ParseConfig:
    input_path: str
    output_path: str
    max_bytes: int = 16 * MIB  # larger files are reported, never read
    file_timeout: float = 60.0  # seconds of parsing one file may take on an executor
    # Notes starting within this many milliseconds form one token; 0: the same tick; None
    # ("auto"): tokens.PERFORMED_TOLERANCE_MS for files that look performed, else 0.
    onset_tolerance_ms: float | None = None
    retry_failed: bool = False  # read files recorded with status `error` again
    # A re-run that finds at most this many new files to read (holding at most
    # DRIVER_MAX_BYTES) parses them on the driver, without a Spark job: the first Spark jobs of
    # a session spend about five seconds starting up, about what the driver takes to parse a
    # thousand files. 0: always a Spark job.
    driver_max_files: int = 1000

    def __post_init__(self) -> None:
        if not self.input_path or not self.output_path:
            raise ValueError("both an input and an output path are needed")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")
        if self.file_timeout <= 0:
            raise ValueError(f"file_timeout must be positive, got {self.file_timeout}")
        if self.onset_tolerance_ms is not None and not 0 <= self.onset_tolerance_ms < 1000:
            raise ValueError(f"onset_tolerance_ms must be in [0, 1000) or None (auto), got {self.onset_tolerance_ms}")
        if self.driver_max_files < 0:
            raise ValueError(f"driver_max_files must be 0 or more, got {self.driver_max_files}")

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
    known: int  # recorded by an earlier run with the same size and modification time: not read
    duplicates: int  # content already in the tables, or in another file of this run: counted once
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
    for batch in batches:
        files = zip(batch.column("path").to_pylist(), batch.column("content").to_pylist())
        pieces, notes = parse_files(files, timeout, onset_tolerance_ms)
        pieces_accumulator.add(pieces)
        yield notes


def parse_files(files, timeout: float, onset_tolerance_ms: float | None):
    """(path, content) pairs → (their `pieces` rows, an Arrow record batch of their notes)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(NOTES_SCHEMA)
    pieces, columns = [], [[] for _ in schema]
    for path, content in files:
        piece, tokens = parse_piece(path, content, timeout, onset_tolerance_ms)
        pieces.append(piece)
        columns[0].extend([piece[0]] * len(tokens))
        for column, values in zip(columns[1:], zip(*tokens)):
            column.extend(values)
    return pieces, pa.RecordBatch.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, schema)], schema=schema)


def read_or_why(uri: str) -> bytes | Unread:
    """A file's bytes, read on the driver, or why they could not be read."""
    try:
        return storage.read_bytes(uri)
    except OSError as error:  # deleted since the listing, no permission...
        return Unread(f"could not be read: {error}")


def parse_on_driver(spark: SparkSession, contents: dict[str, bytes], config: ParseConfig, folder: str) -> list[tuple]:
    """A small re-run's parse, on the driver, as the executors parse: the notes written by
    pyarrow as one Parquet file in `folder`, sorted by piece and position as the Spark job
    sorts its files (pyarrow's row groups of a million rows are about the 8 MiB of the job's).
    Returns the files' `pieces` rows."""
    import pyarrow as pa

    pieces, notes = parse_files(sorted(contents.items()), config.file_timeout, config.onset_tolerance_ms)
    if notes.num_rows:
        write_table(spark, pa.Table.from_batches([notes]).sort_by([("piece_id", "ascending"),
                                                                   ("position", "ascending")]), folder)
    return pieces


def write_table(spark: SparkSession, table, folder: str, **options) -> None:
    """An Arrow table as the one Parquet file of `folder`, written by pyarrow through `storage`."""
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(qualified(spark, folder))
    filesystem.create_dir(path, recursive=True)
    pq.write_table(table, f"{path}/part-00000.parquet", filesystem=filesystem, **options)


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
    filesystem, hadoop_path = _filesystem(spark, path)
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


def content_ids(files: DataFrame) -> dict[str, str]:
    """{path: content id}, hashed in the JVM."""
    return {row[0]: row[1] for row in files.select("path", content_id("content")).collect()}


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
    """UTC time to the millisecond, then a random part: the runs sort in the order they began
    (a re-run parsed on the driver can begin in the same second as the run before it)."""
    now = time.time()
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}{int(now * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def discard_uncommitted(spark: SparkSession, config: ParseConfig) -> None:
    """Remove what a killed run left: staging folders, and notes of a run whose pieces never
    landed (its files are parsed again)."""
    committed = {name for name in _children(spark, config.pieces_path) if name.startswith("run=")}
    for table in (config.notes_path, config.pieces_path):
        for name in _children(spark, table):
            if name.startswith(STAGING_PREFIX) or (table == config.notes_path and name.startswith("run=")
                                                   and name not in committed):
                _delete(spark, f"{table}/{name}")


@dataclass(frozen=True)
class _Recorded:
    """What the `pieces` table says about files seen before."""

    files: frozenset[tuple[str, int, int]]  # (path, size, modified ms) not to read again
    contents: dict[str, str]  # content id → the first path it was parsed from


def recorded(spark: SparkSession, config: ParseConfig) -> _Recorded:
    """Read through `storage` (a small table: a row per file). Rows of `duplicate` files name
    content recorded elsewhere; with `retry_failed`, files and content that failed are not
    counted as seen."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not path_exists(spark, config.pieces_path):  # first run: no table yet
        return _Recorded(frozenset(), {})
    filesystem, base = storage.resolve(qualified(spark, config.pieces_path))
    columns = pa.schema([("path", pa.string()), ("piece_id", pa.string()), ("status", pa.string()),
                         ("size", pa.int64()), ("modified", pa.timestamp("ms", tz="UTC"))])
    table = ds.dataset(base, filesystem=filesystem, format="parquet", schema=columns).to_table()  # older rows: null
    retried = pa.array(["error"] if config.retry_failed else [], pa.string())
    counted = table.filter(pc.invert(pc.is_in(table["status"], retried)))
    known = counted.filter(pc.is_valid(counted["size"]))
    files = frozenset(zip(known["path"].to_pylist(), known["size"].to_pylist(),
                          known["modified"].cast(pa.int64()).to_pylist()))
    first = counted.filter(pc.not_equal(counted["status"], "duplicate")).sort_by([("path", "descending")])
    contents = dict(zip(first["piece_id"].to_pylist(), first["path"].to_pylist()))  # the first path wins
    return _Recorded(files, contents)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / MIB:.1f} MiB" if n_bytes >= MIB else f"{n_bytes} bytes"


@dataclass
class _Plan:
    """What the driver decided for the files it had not seen."""

    to_parse: dict[str, int]  # path → size, one path per new content
    rows: list[tuple]  # `pieces` rows decided without parsing the file
    duplicates: int = 0


def duplicate_piece(pid: str, path: str, first: str) -> tuple:
    return (pid, path, "duplicate", f"same content as {first}", 0, None, None, None, None)


def plan(entries: list[tuple[str, int, str | Unread | None]], known: dict[str, str], max_bytes: int) -> _Plan:
    """`entries`: (path, size, content id, Unread, or None for a file over `max_bytes`) of new files;
    `known`: content id → its first path, of the content already in the tables."""
    decided = _Plan(to_parse={}, rows=[])
    seen = dict(known)
    for path, size, pid in entries:
        reason = None
        if isinstance(pid, Unread):  # listed, but its bytes never came: named by path
            pid, reason = "path-" + hashlib.sha256(path.encode()).hexdigest()[:11], pid.reason
        elif pid is None:  # over the size limit: named by path and size instead of content
            pid = "size-" + hashlib.sha256(f"{path}:{size}".encode()).hexdigest()[:11]
            reason = f"file is {_size(size)}, over the {_size(max_bytes)} limit (--max-bytes)"
        if pid in seen:
            decided.duplicates += 1
            decided.rows.append(duplicate_piece(pid, path, seen[pid]))
        elif reason:
            decided.rows.append(failed_piece(pid, path, "error", reason))
        elif size == 0:
            decided.rows.append(parse_piece(path, b"")[0])
        else:
            decided.to_parse[path] = size
        seen.setdefault(pid, path)
    return decided


def write_pieces(spark: SparkSession, rows: list[tuple], folder: str) -> None:
    """The run's `pieces` rows, which the driver holds, as one Parquet file in `folder`, written
    by pyarrow through `storage` (where `recorded` reads them): a Spark job would first carry
    every row to the JVM and start a Python worker, about a second for a small table."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(PIECES_SCHEMA)
    table = pa.Table.from_arrays([pa.array(list(column), type=field.type)
                                  for column, field in zip(zip(*rows), schema)], schema=schema)
    write_table(spark, table, folder, use_deprecated_int96_timestamps=True)  # as Spark writes timestamps


def task_bytes(spark: SparkSession, sizes: dict[str, int]) -> int:
    """Input bytes per parse task, which is also one notes file: about four tasks per core,
    so fast cores take over from slow ones, and 1 to 64 MiB each, so a corpus of 100,000
    files gives a few hundred Parquet files, not 100,000."""
    total = sum(sizes.values()) + FILE_OPEN_COST * len(sizes)
    return min(max(total // (4 * spark.sparkContext.defaultParallelism), MIB), 64 * MIB)


def parse_corpus(spark: SparkSession, config: ParseConfig) -> ParseSummary:
    """Parse every MIDI file under the input not seen before; add them to `pieces` and `notes`.

    A file is seen when `pieces` records its path with its size and modification time (with
    `retry_failed`, unless its status was `error`); no byte of it is read again. Each run
    writes both tables' rows to staging folders, then commits by renaming them to `run=<id>`
    folders: notes first, pieces last. A run is in the tables once its pieces folder is;
    whatever a killed run left is removed by the next one, which parses its files again.
    (Staging names start with `_`, which Spark and pyarrow readers skip.) One parse job at a
    time per output.
    """
    discard_uncommitted(spark, config)
    run = new_run_id()
    staged_notes = f"{config.notes_path}/{STAGING_PREFIX}{run}"
    staged_pieces = f"{config.pieces_path}/{STAGING_PREFIX}{run}"
    entries = listing(spark, config.input_path)
    seen = recorded(spark, config)
    new = [(path, size, modified) for path, size, modified in entries if (path, size, modified) not in seen.files]
    readable = {path: size for path, size, _ in new if 0 < size <= config.max_bytes}
    every_readable = len(readable) == sum(1 for _, size, _ in entries if 0 < size <= config.max_bytes)
    on_driver = bool(seen.files) and len(readable) <= config.driver_max_files and \
        sum(readable.values()) <= DRIVER_MAX_BYTES  # a small re-run: no Spark job
    if on_driver:
        with ThreadPoolExecutor(DRIVER_READERS) as pool:
            read = dict(zip(readable, pool.map(read_or_why, readable)))
        contents = {path: content for path, content in read.items() if isinstance(content, bytes)}
        hashed = {path: piece_id(content) if isinstance(content, bytes) else content for path, content in read.items()}
    else:
        # The whole input through Spark's own listing when every file is new; otherwise the new ones by name.
        candidates = (list_midi_files(spark, config.input_path).where(F.col("length") <= config.max_bytes)
                      if readable and every_readable else None)  # files over the limit are never read
        spark.conf.set("spark.sql.files.openCostInBytes", str(FILE_OPEN_COST))
        spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")  # deleted while read: an error row
        new_files = read_files(spark, candidates, readable, every_readable) if readable else None
        hashed = content_ids(new_files) if readable else {}
    decided = plan([(path, size, piece_id(b"") if size == 0 else None if size > config.max_bytes
                     else hashed.get(path, NOT_RETURNED)) for path, size, _ in new], seen.contents, config.max_bytes)

    pieces_accumulator = spark.sparkContext.accumulator([], _ListParam())
    if decided.to_parse and on_driver:
        pieces_accumulator.add(parse_on_driver(spark, {path: contents[path] for path in decided.to_parse},
                                               config, staged_notes))
    elif decided.to_parse:
        timeout, tolerance = config.file_timeout, config.onset_tolerance_ms
        to_read = new_files
        if len(decided.to_parse) < len(readable):  # leave out copies (their content is read once more)
            chosen = spark.createDataFrame([(path,) for path in decided.to_parse], "path string")
            to_read = to_read.join(F.broadcast(chosen), "path", "left_semi")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(FILES_PER_ARROW_BATCH))
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(task_bytes(spark, decided.to_parse)))
        (to_read.select("path", "content")
         .mapInArrow(lambda batches: parse_to_notes(batches, pieces_accumulator, timeout, tolerance), NOTES_SCHEMA)
         .sortWithinPartitions("piece_id", "position")
         .write.option("parquet.block.size", NOTES_ROW_GROUP_BYTES).parquet(staged_notes))
    parsed = {piece[1]: piece for piece in pieces_accumulator.value}  # by path: drops re-sent rows
    file_columns = {path: (size, datetime.fromtimestamp(modified / 1000, timezone.utc)) for path, size, modified in new}
    rows = sorted((piece + file_columns.get(piece[1], (None, None))
                   for piece in decided.rows + list(parsed.values())), key=lambda piece: piece[1])
    if rows:
        write_pieces(spark, rows, staged_pieces)
        if path_exists(spark, staged_notes):
            _rename(spark, staged_notes, f"{config.notes_path}/run={run}")
        _rename(spark, staged_pieces, f"{config.pieces_path}/run={run}")  # the commit

    statuses = [piece[2] for piece in rows]
    return ParseSummary(files=len(entries), parsed=statuses.count("ok"), empty=statuses.count("empty"),
                        failed=statuses.count("error"), known=len(entries) - len(new),
                        duplicates=decided.duplicates, tokens=sum(piece[4] for piece in rows),
                        grouped=sum(1 for piece in rows if piece[8]))
