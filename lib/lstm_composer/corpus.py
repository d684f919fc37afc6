"""The Spark parse job: MIDI files (any Hadoop path) → the corpus's `pieces` and `notes` tables.

The driver lists every file with its size and modification time (`midi_files`), without
reading it; a file whose (path, size, modification time) is recorded in `pieces` is not read
again. The new files are read by Spark and hashed in the JVM; the driver decides what to
parse (`plan`): content already in the tables or a second copy of the same content becomes a
`duplicate` row, a file over the size limit an `error` row. The executors parse the chosen
files (`piece.parse_piece`) and write their notes, each file sorted by piece in small row
groups; the `pieces` rows come back to the driver, which writes them and commits both
(`parse_corpus`). A re-run that finds only a few new files reads and parses them on the
driver instead, quicker than starting Spark jobs (`driver_max_files`). A file that cannot be
parsed becomes a row with status `error` and the reason, and never stops the job.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lstm_composer import storage
from lstm_composer.locks import Lock
from lstm_composer.midi_files import (FILE_OPEN_COST, Unread, content_ids, listing, qualified,
                                      read_on_driver, read_with_spark)
from lstm_composer.piece import PieceRow, parse_piece, piece_id
from lstm_composer.tables import (NOTES_SCHEMA, Corpus, notes_batch, read_recorded, write_notes, write_parquet,
                                  write_pieces)

MIB = 1 << 20
FILES_PER_ARROW_BATCH = 32  # bounds an executor's memory: at most this many files' bytes at once
STAGING_PREFIX = "_staging-"  # a run's output before its commit; readers skip names starting with _
NOTES_ROW_GROUP_BYTES = 8 * MIB  # a rank reading a range of pieces skips the others' row groups
DRIVER_MAX_BYTES = 64 * MIB  # the most new content a re-run parses on the driver (`driver_max_files`)
UNREAD_PREFIX = "path-"  # the piece id of a file whose bytes could not be read: named by its path


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
    lock_wait: float = 0.0  # seconds to wait for another parse job writing the same output

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
        failed = (f" ({self.failed} failed: their reasons are in the pieces table's `error` column; files that "
                  f"could not be read are tried again by the next run, the others with --retry-failed)"
                  if self.failed else "")
        return (f"{self.files} files: {self.parsed} parsed, {self.empty} empty, {self.failed} failed, "
                f"{self.known} already parsed, {self.duplicates} duplicates; {self.tokens} tokens{grouped}{failed}")


def spark_schema(schema) -> T.StructType:
    """A pyarrow schema of `tables` as Spark's, nullability of list elements included."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type

    def spark_type(kind):
        if pa.types.is_list(kind):
            return T.ArrayType(spark_type(kind.value_type), kind.value_field.nullable)
        if pa.types.is_struct(kind):
            return T.StructType([T.StructField(f.name, spark_type(f.type), f.nullable) for f in kind])
        return from_arrow_type(kind)

    return T.StructType([T.StructField(f.name, spark_type(f.type), f.nullable) for f in schema])


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
    parsed = [parse_piece(path, content, timeout, onset_tolerance_ms) for path, content in files]
    return [row for row, _ in parsed], notes_batch(parsed)


def parse_on_driver(contents: dict[str, bytes], config: ParseConfig, folder: str) -> list[PieceRow]:
    """A small re-run's parse, on the driver, as the executors parse: the notes written by
    pyarrow as one Parquet file in `folder`. Returns the files' `pieces` rows."""
    pieces, notes = parse_files(sorted(contents.items()), config.file_timeout, config.onset_tolerance_ms)
    if notes.num_rows:
        write_notes(notes, folder)
    return pieces


def new_run_id() -> str:
    """UTC time to the millisecond, then a random part: the runs sort in the order they began
    (a re-run parsed on the driver can begin in the same second as the run before it)."""
    now = time.time()
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}{int(now * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def discard_uncommitted(corpus: Corpus) -> None:
    """Remove what a killed run left: staging folders, and notes of a run whose pieces never
    landed (its files are parsed again)."""
    committed = {name for name in storage.list_names(corpus.pieces) if name.startswith("run=")}
    for table in (corpus.notes, corpus.pieces):
        for name in storage.list_names(table):
            if name.startswith(STAGING_PREFIX) or (table == corpus.notes and name.startswith("run=")
                                                   and name not in committed):
                storage.delete(storage.join(table, name))


def staged(table: str, run: str) -> str:
    """Where a run writes its rows of `table` before the commit."""
    return storage.join(table, STAGING_PREFIX + run)


def drop_notes(folder: str, pieces: set[str]) -> None:
    """Rewrite the staged notes in `folder` without those of `pieces`."""
    filesystem, path = storage.resolve(folder)
    kept = ds.dataset(path, filesystem=filesystem, format="parquet").to_table(
        filter=~pc.field("piece_id").isin(sorted(pieces)))
    storage.delete(folder)
    if kept.num_rows:
        write_parquet(kept.sort_by([("piece_id", "ascending"), ("position", "ascending")]), folder)


def spark_can_read(path: str) -> bool:
    """Hadoop takes a colon in a file's name for a URI scheme, and Spark's whole read fails."""
    return ":" not in urlparse(path).path


def _size(n_bytes: int) -> str:
    return f"{n_bytes / MIB:.1f} MiB" if n_bytes >= MIB else f"{n_bytes} bytes"


@dataclass
class _Plan:
    """What the driver decided for the files it had not seen."""

    to_parse: dict[str, int]  # path → size, one path per new content
    rows: list[PieceRow]  # decided without parsing the file
    duplicates: int = 0


def plan(entries: list[tuple[str, int, str | Unread | None]], known: dict[str, str], max_bytes: int) -> _Plan:
    """`entries`: (path, size, content id, Unread, or None for a file over `max_bytes`) of new files;
    `known`: content id → its first path, of the content already in the tables."""
    decided = _Plan(to_parse={}, rows=[])
    seen = dict(known)
    for path, size, pid in entries:
        reason = None
        if isinstance(pid, Unread):  # listed, but its bytes never came: named by path
            pid, reason = UNREAD_PREFIX + hashlib.sha256(path.encode()).hexdigest()[:11], pid.reason
        elif pid is None:  # over the size limit: named by path and size instead of content
            pid = "size-" + hashlib.sha256(f"{path}:{size}".encode()).hexdigest()[:11]
            reason = f"file is {_size(size)}, over the {_size(max_bytes)} limit (--max-bytes)"
        if pid in seen:
            decided.duplicates += 1
            decided.rows.append(PieceRow.duplicate(pid, path, seen[pid]))
        elif reason:
            decided.rows.append(PieceRow.failed(pid, path, reason))
        elif size == 0:
            decided.rows.append(parse_piece(path, b"")[0])
        else:
            decided.to_parse[path] = size
        seen.setdefault(pid, path)
    return decided


def task_bytes(spark: SparkSession, sizes: dict[str, int]) -> int:
    """Input bytes per parse task, which is also one notes file: about four tasks per core,
    so fast cores take over from slow ones, and 1 to 64 MiB each, so a corpus of 100,000
    files gives a few hundred Parquet files, not 100,000."""
    total = sum(sizes.values()) + FILE_OPEN_COST * len(sizes)
    return min(max(total // (4 * spark.sparkContext.defaultParallelism), MIB), 64 * MIB)


class ParseInputError(ValueError):
    """The input holds nothing to parse; the message names the path."""


def parse_corpus(spark: SparkSession, config: ParseConfig) -> ParseSummary:
    """Parse every MIDI file under the input not seen before; add them to `pieces` and `notes`.

    A file is seen when `pieces` records its path with its size and modification time (with
    `retry_failed`, unless its status was `error`); no byte of it is read again. Each run
    writes both tables' rows to staging folders, then commits by renaming them to `run=<id>`
    folders: notes first, pieces last. A run is in the tables once its pieces folder is;
    whatever a killed run left is removed by the next one, which parses its files again.
    (Staging names start with `_`, which Spark and pyarrow readers skip.) One parse job at a
    time per output holds its lock (`locks.Lock`); another waits `config.lock_wait` seconds for
    it, then is refused.
    """
    corpus = Corpus(qualified(spark, config.output_path))
    entries = listing(spark, config.input_path)
    if not entries:
        raise ParseInputError(nothing_to_parse(qualified(spark, config.input_path), config.input_path))
    with Lock(corpus.root, "parse", config.lock_wait) as lock:
        discard_uncommitted(corpus)
        run = new_run_id()
        seen = read_recorded(corpus, config.retry_failed)
        new = [entry for entry in entries if entry not in seen.files]
        every = not seen.files.intersection(entries)
        rows, duplicates = parse_new(spark, config, staged(corpus.notes, run), new, every, seen.contents)
        if rows:
            lock.check()
            commit(corpus, run, rows)
    statuses = [row.status for row in rows]
    return ParseSummary(files=len(entries), parsed=statuses.count("ok"), empty=statuses.count("empty"),
                        failed=statuses.count("error"), known=len(entries) - len(new),
                        duplicates=duplicates, tokens=sum(row.n_tokens for row in rows),
                        grouped=sum(1 for row in rows if row.onset_tolerance_ms))


def nothing_to_parse(root: str, given: str) -> str:
    if not storage.exists(root):
        return f"--input {given} does not exist"
    if storage.is_file(root):
        return f"--input {given} is a file: give the folder (or bucket prefix) that holds the MIDI files"
    return f"--input {given} holds no .mid or .midi file (searched recursively; names starting with _ or . are skipped)"


def parse_new(spark: SparkSession, config: ParseConfig, staged_notes: str, new: list[tuple[str, int, int]],
              every: bool, known: dict[str, str]) -> tuple[list[PieceRow], int]:
    """The `pieces` rows of the `new` files (their notes staged in `staged_notes`), and how many
    of them were duplicates of each other or of `known` content. `every`: no file under the
    input was seen before. Files Spark cannot take or did not return (a name with a colon, a
    file that vanished or may not be read) are read on the driver, which parses them or records
    the true reason."""
    readable = {path: size for path, size, _ in new if 0 < size <= config.max_bytes}
    on_driver = not every and len(readable) <= config.driver_max_files and \
        sum(readable.values()) <= DRIVER_MAX_BYTES  # a small re-run: no Spark job
    by_spark = {} if on_driver else {path: size for path, size in readable.items() if spark_can_read(path)}
    files, hashed = None, {}
    if by_spark:
        files = read_with_spark(spark, config.input_path, config.max_bytes, by_spark,
                                every and len(by_spark) == len(readable))
        hashed = content_ids(files)
    contents, driver_hashed = read_on_driver({path: size for path, size in readable.items() if path not in hashed})
    hashed.update(driver_hashed)
    decided = plan([(path, size, piece_id(b"") if size == 0 else None if size > config.max_bytes
                     else hashed[path]) for path, size, _ in new], known, config.max_bytes)
    spark_part = {path: size for path, size in decided.to_parse.items() if path not in contents}
    parsed = parse_with_spark(spark, files, spark_part, len(by_spark), config, staged_notes) if spark_part else []
    driver_part = {path: contents[path] for path in decided.to_parse if path in contents}
    parsed += parse_on_driver(driver_part, config, staged_notes) if driver_part else []
    parsed = {row.path: row for row in parsed}  # by path: drops rows a task run twice sent twice
    file_columns = {path: (size, datetime.fromtimestamp(modified / 1000, timezone.utc)) for path, size, modified in new}
    rows = [row if unreadable(row) else row._replace(**dict(zip(("size", "modified"),
                                                                file_columns.get(row.path, (None, None)))))
            for row in decided.rows + list(parsed.values())]
    return sorted(rows, key=lambda row: row.path), decided.duplicates


def unreadable(row: PieceRow) -> bool:
    """A file whose bytes never came is recorded without its size and time, so that the next
    run tries it again (a permission put right changes neither)."""
    return row.status == "error" and row.piece_id.startswith(UNREAD_PREFIX)


def parse_with_spark(spark: SparkSession, files: DataFrame, to_parse: dict[str, int], read: int,
                     config: ParseConfig, folder: str) -> list[PieceRow]:
    """Parse `to_parse` (of the `read` files in `files`) on the executors, their notes written
    by Spark into `folder`, each task's file sorted by piece in small row groups; their
    `pieces` rows come back through an accumulator."""
    pieces = spark.sparkContext.accumulator([], _ListParam())
    timeout, tolerance = config.file_timeout, config.onset_tolerance_ms
    if len(to_parse) < read:  # leave out copies (their content is read once more)
        chosen = spark.createDataFrame([(path,) for path in to_parse], "path string")
        files = files.join(F.broadcast(chosen), "path", "left_semi")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(FILES_PER_ARROW_BATCH))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(task_bytes(spark, to_parse)))
    (files.select("path", "content")
     .mapInArrow(lambda batches: parse_to_notes(batches, pieces, timeout, tolerance), spark_schema(NOTES_SCHEMA))
     .sortWithinPartitions("piece_id", "position")
     .write.option("parquet.block.size", NOTES_ROW_GROUP_BYTES).parquet(folder))
    return pieces.value


def commit(corpus: Corpus, run: str, rows: list[PieceRow]) -> None:
    """The run's `pieces` rows staged, then both tables' staging folders renamed to `run=<id>`:
    notes first, pieces last (the commit). Content another job committed meanwhile (two jobs
    that bypassed the lock) is left out, so that no piece is stored twice."""
    staged_notes = staged(corpus.notes, run)
    committed = read_recorded(corpus).contents
    ours = {row.piece_id for row in rows if row.status == "ok"}
    taken = ours & committed.keys()
    if taken:
        rows = [PieceRow.duplicate(row.piece_id, row.path, committed[row.piece_id])._replace(
                    size=row.size, modified=row.modified) if row.piece_id in taken and row.status == "ok" else row
                for row in rows]
        drop_notes(staged_notes, taken)
    staged_pieces = staged(corpus.pieces, run)
    write_pieces(rows, staged_pieces)
    if storage.exists(staged_notes):
        storage.rename(staged_notes, storage.join(corpus.notes, f"run={run}"))
    storage.rename(staged_pieces, storage.join(corpus.pieces, f"run={run}"))
