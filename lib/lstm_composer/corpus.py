"""The Spark parse job: MIDI files (any Hadoop path) → `pieces` and `notes` Parquet tables.

Files are read with Spark's `binaryFile` source, so local folders, HDFS and S3 work alike;
each file is parsed on an executor. A file that cannot be parsed becomes a `pieces` row
with status `error` and the reason, and never stops the job.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lstm_composer.midi import MidiError, read_midi
from lstm_composer.tokens import tokenize

TOKEN_STRUCT = T.StructType([
    T.StructField("position", T.IntegerType(), False),
    T.StructField("token", T.StringType(), False),
    T.StructField("pitches", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("offset", T.DoubleType(), False),
    T.StructField("duration", T.DoubleType(), False),
    T.StructField("velocity", T.IntegerType(), False),
    T.StructField("program", T.IntegerType(), False),
])

PARSED_SCHEMA = T.StructType([
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
    T.StructField("tokens", T.ArrayType(TOKEN_STRUCT), False),
])

MIDI_SUFFIX = r"(?i)\.midi?$"
ROWS_PER_NOTES_FILE = 2_000_000


@dataclass(frozen=True)
class ParseConfig:
    input_path: str
    output_path: str

    def __post_init__(self) -> None:
        if not self.input_path or not self.output_path:
            raise ValueError("both an input and an output path are needed")


@dataclass(frozen=True)
class ParseSummary:
    files: int
    parsed: int
    empty: int
    failed: int
    tokens: int

    def __str__(self) -> str:
        return (f"{self.files} files: {self.parsed} parsed, {self.empty} empty, "
                f"{self.failed} failed; {self.tokens} tokens")


def piece_id(content: bytes) -> str:
    """A piece is named by its content, so the same file under two names is one piece."""
    return hashlib.sha256(content).hexdigest()[:16]


def parse_piece(path: str, content: bytes) -> tuple:
    """One file's bytes → one row of `PARSED_SCHEMA`. Never raises."""
    pid = piece_id(content)
    try:
        song = read_midi(content)
        tokens = tokenize(song)
    except MidiError as error:
        return (pid, path, "error", str(error), 0, None, None, None, [])
    except Exception as error:  # a bug of ours must not cost the user the other files
        return (pid, path, "error", f"internal error: {type(error).__name__}: {error}",
                0, None, None, None, [])
    tpq = float(song.ticks_per_quarter)
    status = "ok" if tokens else "empty"
    error = None if tokens else (
        "percussion only (channel 10)" if song.percussion_notes else "no notes")
    return (
        pid, path, status, error, len(tokens), song.ticks_per_quarter,
        [(tick / tpq, bpm) for tick, bpm in song.tempos],
        [(tick / tpq, signature) for tick, signature in song.time_signatures],
        [(t.position, t.token, t.pitches, t.offset, t.duration, t.velocity, t.program)
         for t in tokens],
    )


def read_midi_files(spark: SparkSession, input_path: str) -> DataFrame:
    """All `.mid`/`.midi` files (any case) under `input_path`, recursively: path, content."""
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.[mM][iI][dD]*")
            .load(input_path)
            .where(F.col("path").rlike(MIDI_SUFFIX))
            .select("path", "content"))


def parse_corpus(spark: SparkSession, config: ParseConfig) -> ParseSummary:
    """Parse every MIDI file under the input path; write `pieces` and `notes` under the output."""
    files = read_midi_files(spark, config.input_path)
    parsed = spark.createDataFrame(
        files.rdd.map(lambda row: parse_piece(row.path, bytes(row.content))), PARSED_SCHEMA,
    ).persist()
    try:
        pieces = parsed.drop("tokens").orderBy("path")
        notes = (parsed.where(F.col("status") == "ok")
                 .dropDuplicates(["piece_id"])
                 .select("piece_id", F.explode("tokens").alias("t"))
                 .select("piece_id", "t.*"))
        counts = {row.status: row["count"] for row in parsed.groupBy("status").count().collect()}
        n_tokens = parsed.agg(F.sum("n_tokens")).first()[0] or 0
        pieces.coalesce(1).write.mode("overwrite").parquet(f"{config.output_path}/pieces")
        (notes.repartition(max(1, -(-n_tokens // ROWS_PER_NOTES_FILE)), "piece_id")
         .sortWithinPartitions("piece_id", "position")
         .write.mode("overwrite").parquet(f"{config.output_path}/notes"))
    finally:
        parsed.unpersist()
    return ParseSummary(
        files=sum(counts.values()), parsed=counts.get("ok", 0), empty=counts.get("empty", 0),
        failed=counts.get("error", 0), tokens=n_tokens,
    )
