"""The corpus's two Parquet tables: where they are, their schemas, and how they are read.

    <corpus>/notes   one row per token (`NOTES_SCHEMA`; `tokens.Token` without the piece id)
    <corpus>/pieces  one row per file a parse run read or decided about (`piece.PieceRow`)

The parse job (`corpus.py`) writes them, one `run=<id>` folder per run in each; training,
generation and evaluation read them here, with pyarrow, from any location `storage` knows.
Each notes file is sorted by piece in small row groups, so a training rank that reads one
range of pieces (`Shard`) skips the row groups of the others by their statistics.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lstm_composer import storage
from lstm_composer.expression import Expression, beat_phase
from lstm_composer.form import WINDOW_BEATS, window_key_labels
from lstm_composer.metre import bar_beat, bar_positions, phrase_bar
from lstm_composer.piece import PieceRow
from lstm_composer.presets import ModelConfig
from lstm_composer.tokens import Token, Vocabulary


def _list(name: str, item: pa.DataType) -> pa.Field:
    """A nullable list column of nullable items, named as Spark names them."""
    return pa.field(name, pa.list_(pa.field("element", item)))


NOTES_SCHEMA = pa.schema([
    pa.field("piece_id", pa.string(), nullable=False),
    *(pa.field(name, kind, nullable=False) for name, kind in zip(Token._fields, (
        pa.int32(), pa.string(), pa.list_(pa.field("element", pa.int32(), nullable=False)), pa.float64(),
        pa.float64(), pa.int32(), pa.int32()))),
])
STYLE_COLUMN = "style"  # a notes table's label of each row's piece, in a model directory's copy (`label_notes`)
PIECES_SCHEMA = pa.schema([
    pa.field("piece_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("n_tokens", pa.int32(), nullable=False),
    pa.field("ticks_per_quarter", pa.int32()),
    _list("tempos", pa.struct([pa.field("offset", pa.float64(), nullable=False),
                               pa.field("bpm", pa.float64(), nullable=False)])),
    _list("time_signatures", pa.struct([pa.field("offset", pa.float64(), nullable=False),
                                        pa.field("signature", pa.string(), nullable=False)])),
    pa.field("onset_tolerance_ms", pa.float64()),
    pa.field("size", pa.int64()),
    pa.field("modified", pa.timestamp("us", tz="UTC")),
])
assert PIECES_SCHEMA.names == list(PieceRow._fields)


@dataclass(frozen=True)
class Corpus:
    """A corpus folder (any location `storage` knows): the parse job's output, training's input."""

    root: str

    @property
    def notes(self) -> str:
        return storage.join(self.root, "notes")

    @property
    def pieces(self) -> str:
        return storage.join(self.root, "pieces")


@dataclass(frozen=True)
class TokenStream:
    """All pieces' token ids end to end; piece `i` is `ids[bounds[i]:bounds[i + 1]]`."""

    ids: np.ndarray  # int32
    bounds: np.ndarray  # int64, len = pieces + 1
    piece_ids: list[str]
    expression: np.ndarray | None = None  # (tokens, 3) int32: ioi, duration, velocity classes
    bass: np.ndarray | None = None  # int32: each token's lowest MIDI pitch
    phase: np.ndarray | None = None  # int32: where each onset falls within its beat (expression.beat_phase)
    key: np.ndarray | None = None  # int32: the key of the passage around each token (form.KEY_NAMES)
    key_window: np.ndarray | None = None  # int32: the window of form.WINDOW_BEATS quarters that key is of
    bar: np.ndarray | None = None  # int64: each token's bar, from its piece's start (metre.bar_positions)
    bar_position: np.ndarray | None = None  # int64: where in its bar, in PHASES steps per quarter
    style: np.ndarray | None = None  # int32: its piece's style, from 1 as `ModelConfig.styles` lists them (0: none)

    def attributes(self, config: ModelConfig) -> np.ndarray:
        """(tokens, attributes) int32: the columns `config.attributes` name, in order."""
        columns = [self.ids[:, None]]
        if config.expressive:
            columns.append(self.expression)
        if config.bass:
            columns.append(self.bass[:, None])
        if config.phase:
            columns.append(self.phase[:, None])
        if config.metre:
            columns += [bar_beat(self.bar_position)[:, None], phrase_bar(self.bar)[:, None]]
        if config.key:
            columns.append(self.key[:, None])
        if config.styles:
            columns.append(self.style[:, None])
        return np.concatenate(columns, axis=1).astype(np.int32)

    def piece(self, i: int) -> np.ndarray:
        return self.ids[self.bounds[i]:self.bounds[i + 1]]

    def piece_styles(self) -> dict[str, int]:
        """Each piece's style by piece id (as `style` numbers them; 0: none, or a stream without styles)."""
        if self.style is None:
            return dict.fromkeys(self.piece_ids, 0)
        return dict(zip(self.piece_ids, self.style[self.bounds[:-1]].tolist()))

    def rows(self, pieces) -> list[int]:
        """The row (index into `piece_ids`) of each of these pieces the stream holds, in its order."""
        wanted = set(pieces)
        return [i for i, piece in enumerate(self.piece_ids) if piece in wanted]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.bounds, self.expression, self.bass, self.phase, self.key,
                                      self.key_window, self.bar, self.bar_position, self.style) if a is not None)


@dataclass(frozen=True)
class Shard:
    """The pieces a rank reads: `first <= piece_id < end` (an end that is None is open), and of
    those only the ones in `only`, when given."""

    first: str | None = None
    end: str | None = None
    only: tuple[str, ...] | None = None

    def filter(self):
        """The pyarrow filter: the range prunes row groups by their statistics."""
        piece = pc.field("piece_id")
        conditions = ([piece >= self.first] if self.first is not None else []) + (
            [piece < self.end] if self.end is not None else []) + (
            [piece.isin(list(self.only))] if self.only is not None else [])
        if not conditions:
            return None
        combined = conditions[0]
        for condition in conditions[1:]:
            combined = combined & condition
        return combined


def read_token_stream(corpus: Corpus, vocabulary: Vocabulary, expression: Expression | None = None,
                      shard: Shard | None = None, bass: bool = False, key: bool = False,
                      metre: bool = False, styles: tuple[str, ...] = ()) -> TokenStream:
    """Read the notes table in piece and position order, all of it or one `shard`; with
    `expression`, each token's onset gap, duration and velocity classes (and beat phase) too;
    with `bass`, each token's lowest pitch; with `key`, the key of the passage around it
    (`form.window_key_labels`); with `metre`, its bar and place in the bar (`metre.bar_positions`);
    with `styles`, its piece's style (`STYLE_COLUMN`) as its index in them from 1, 0 for none."""
    timing = bool(expression or key or metre)
    columns = (["piece_id", "position", "token"] + (["offset", "duration", "velocity"] if timing else [])
               + (["pitches"] if bass or key else []) + ([STYLE_COLUMN] if styles else []))
    filesystem, path = storage.resolve(corpus.notes)
    table = pq.read_table(path, filesystem=filesystem, columns=columns, filters=shard.filter() if shard else None)
    table = table.sort_by([("piece_id", "ascending"), ("position", "ascending")])
    ids = pc.index_in(table["token"], value_set=pa.array(vocabulary.tokens))
    if ids.null_count:
        unknown = pc.filter(table["token"], pc.is_null(ids)).unique().to_pylist()[:5]
        raise ValueError(f"the notes table has tokens outside the vocabulary, e.g. {unknown}")
    bounds, piece_ids = _piece_bounds(table)
    classes = phase = keys = windows = bars = positions = None
    if expression:
        offsets, durations = table["offset"].to_numpy(), table["duration"].to_numpy()
        if expression.unit != "beats":
            offsets, durations = _timing_by_piece(corpus, expression, offsets, durations, bounds, piece_ids)
        classes = expression.classes(offsets, durations, table["velocity"].to_numpy(), piece_starts=bounds[:-1])
        phase = beat_phase(table["offset"].to_numpy(), expression.phases)  # in beats whatever the rhythm's unit
    if key:
        windows = np.floor(table["offset"].to_numpy() / WINDOW_BEATS).astype(np.int32)
        keys = window_key_labels(table["offset"].to_numpy(), table["duration"].to_numpy(),
                                 pc.list_parent_indices(table["pitches"]).to_numpy(),
                                 pc.list_flatten(table["pitches"]).to_numpy(), bounds[:-1])
    if metre:
        bars, positions = _bars_by_piece(corpus, table["offset"].to_numpy(), bounds, piece_ids)
    style = None
    if styles:  # an unknown label, or none, is 0
        style = pc.fill_null(pc.add(pc.index_in(table[STYLE_COLUMN], value_set=pa.array(styles)), 1), 0)
        style = style.to_numpy(zero_copy_only=False).astype(np.int32)
    return TokenStream(ids=ids.to_numpy(zero_copy_only=False).astype(np.int32), bounds=bounds, piece_ids=piece_ids,
                       expression=classes, phase=phase, key=keys, key_window=windows, bar=bars, bar_position=positions,
                       style=style,
                       bass=pc.list_element(table["pitches"], 0).to_numpy().astype(np.int32) if bass else None)


def _piece_bounds(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """(where each piece begins, and the end; its id) in a notes table sorted by piece."""
    piece_column = table["piece_id"]  # compared in Arrow: no Python string per token
    changes = np.flatnonzero(pc.not_equal(piece_column.slice(1), piece_column.slice(0, len(table) - 1))
                             .to_numpy(zero_copy_only=False)) + 1
    bounds = np.concatenate([[0], changes, [len(table)]] if len(table) else [[0]]).astype(np.int64)
    return bounds, piece_column.take(bounds[:-1]).to_pylist()


def piece_onsets(corpus: Corpus) -> dict[str, np.ndarray]:
    """Each piece's onsets (quarter notes, in order) by piece id: the notes table's offsets alone."""
    filesystem, path = storage.resolve(corpus.notes)
    table = pq.read_table(path, filesystem=filesystem, columns=["piece_id", "position", "offset"])
    table = table.sort_by([("piece_id", "ascending"), ("position", "ascending")])
    bounds, piece_ids = _piece_bounds(table)
    offsets = table["offset"].to_numpy()
    return {piece: offsets[begin:end] for piece, begin, end in zip(piece_ids, bounds[:-1], bounds[1:])}


def piece_values(corpus: Corpus, column: str) -> dict[str, object]:
    """One column of the `pieces` table, by piece id (as Python values); none without the table
    (a notes table written by hand: 4/4 and 120 BPM throughout)."""
    if not storage.exists(corpus.pieces):
        return {}
    filesystem, path = storage.resolve(corpus.pieces)
    rows = pq.read_table(path, filesystem=filesystem, columns=["piece_id", column]).to_pylist()
    return {row["piece_id"]: row[column] for row in rows}


def _timing_by_piece(corpus: Corpus, expression: Expression, offsets: np.ndarray, durations: np.ndarray,
                     bounds: np.ndarray, piece_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every piece's onsets and durations in the expression's unit, by its tempo map from the
    `pieces` table."""
    tempo_maps = {piece: [(t["offset"], t["bpm"]) for t in tempos or []]
                  for piece, tempos in piece_values(corpus, "tempos").items()}
    offsets, durations = offsets.astype(np.float64), durations.astype(np.float64)
    for piece, begin, end in zip(piece_ids, bounds[:-1], bounds[1:]):
        offsets[begin:end], durations[begin:end] = expression.timing(
            offsets[begin:end], durations[begin:end], tempo_maps.get(piece))
    return offsets, durations


def _bars_by_piece(corpus: Corpus, offsets: np.ndarray, bounds: np.ndarray,
                   piece_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every token's bar and place in the bar, by its piece's time signatures from the `pieces` table."""
    signatures = {piece: [(t["offset"], t["signature"]) for t in changes or []]
                  for piece, changes in piece_values(corpus, "time_signatures").items()}
    bars, positions = np.zeros(len(offsets), np.int64), np.zeros(len(offsets), np.int64)
    for piece, begin, end in zip(piece_ids, bounds[:-1], bounds[1:]):
        bars[begin:end], positions[begin:end] = bar_positions(offsets[begin:end], signatures.get(piece))
    return bars, positions


def copy_corpus(source: Corpus, target: Corpus, known: Vocabulary | None = None) -> list[str]:
    """Every committed file of both tables, byte for byte (names starting with _ or . are a
    run's staging or a lock, not data); with `known`, the notes of the pieces whose tokens are all
    in it, file by file. Returns the pieces left out."""
    unknown = sorted(pieces_outside(source, known)) if known is not None else []
    for table, into in ((source.notes, target.notes), (source.pieces, target.pieces)):
        for relative in storage.files_under(table):
            if relative.startswith(("_", ".")):
                continue
            if table == source.notes and unknown and relative.endswith(".parquet"):
                filesystem, path = storage.resolve(storage.join(table, relative))
                kept = pq.read_table(path, filesystem=filesystem)
                kept = kept.filter(pc.invert(pc.is_in(kept["piece_id"], pa.array(unknown))))
                write_parquet(kept, storage.parent(storage.join(into, relative)), name=storage.name(relative))
            else:
                storage.write_bytes(storage.join(into, relative), storage.read_bytes(storage.join(table, relative)))
    return unknown


def pieces_outside(corpus: Corpus, known: Vocabulary) -> set[str]:
    """The pieces of the notes table with a token `known` lacks (streamed a batch at a time)."""
    filesystem, path = storage.resolve(corpus.notes)
    table = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    tokens = pa.array(known.tokens)
    outside: set[str] = set()
    for batch in table.to_batches(columns=["piece_id", "token"], batch_size=1 << 20):
        strangers = pc.invert(pc.is_in(batch.column("token"), tokens))
        outside.update(pc.filter(batch.column("piece_id"), strangers).to_pylist())
    return outside


def label_notes(corpus: Corpus, labels: dict[str, str]) -> None:
    """Give every row of the notes table its piece's style label (`labels`: by piece id; none
    where a piece has none), file by file, in a column `STYLE_COLUMN` that the parse job never
    writes: done to a model directory's own copy of its corpus."""
    pieces, names = pa.array(list(labels), pa.string()), pa.array(list(labels.values()), pa.string())
    for relative in storage.files_under(corpus.notes):
        if relative.startswith(("_", ".")) or not relative.endswith(".parquet"):
            continue
        filesystem, path = storage.resolve(storage.join(corpus.notes, relative))
        table = pq.read_table(path, filesystem=filesystem)
        if STYLE_COLUMN in table.column_names:
            table = table.drop_columns([STYLE_COLUMN])
        style = pc.take(names, pc.index_in(table["piece_id"], value_set=pieces))
        write_parquet(table.append_column(STYLE_COLUMN, style), storage.parent(storage.join(corpus.notes, relative)),
                      name=storage.name(relative))


def read_played(corpus: Corpus) -> dict[str, list[Token]]:
    """Every piece of the notes table as its rows, in order, by piece id."""
    filesystem, path = storage.resolve(corpus.notes)
    table = pq.read_table(path, filesystem=filesystem, columns=NOTES_SCHEMA.names)
    table = table.sort_by([("piece_id", "ascending"), ("position", "ascending")])
    played: dict[str, list[Token]] = {}
    for piece, *row in zip(*(table[name].to_pylist() for name in NOTES_SCHEMA.names)):
        played.setdefault(piece, []).append(Token(*row))
    return played


def notes_summary(corpus: Corpus) -> tuple[Vocabulary, dict[str, int]]:
    """The vocabulary and each piece's token count, streamed from the notes table's `piece_id`
    and `token` columns (read as dictionaries) one batch at a time, on the driver."""
    filesystem, path = storage.resolve(corpus.notes)
    options = ds.ParquetFileFormat(read_options={"dictionary_columns": ["piece_id", "token"]})
    table = ds.dataset(path, filesystem=filesystem, format=options, partitioning="hive")
    tokens: set[str] = set()
    counts: dict[str, int] = {}
    for batch in table.to_batches(columns=["piece_id", "token"], batch_size=1 << 20):
        tokens.update(batch.column("token").dictionary.to_pylist())
        for value in pc.value_counts(batch.column("piece_id")).to_pylist():
            piece = value["values"]
            counts[piece] = counts.get(piece, 0) + value["counts"]
    return Vocabulary(tokens), counts


def notes_voicings(corpus: Corpus):
    """How the corpus voices each chord (`voicing.Voicings`): every chord row's token and
    pitches, and the top voice's step into each chord from the onset before it in its piece,
    counted in Arrow and NumPy one batch at a time, on the driver. The notes files hold each
    piece's rows in order (the parse job sorts them); a step is only counted between rows of
    one piece at consecutive positions."""
    from lstm_composer.voicing import LEAP_LIMIT, Voicings

    filesystem, path = storage.resolve(corpus.notes)
    table = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    counts: Counter = Counter()
    steps: Counter = Counter()
    last = (np.array([], dtype=object), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    for batch in table.to_batches(columns=["piece_id", "position", "token", "pitches"], batch_size=1 << 20):
        sizes = pc.list_value_length(batch.column("pitches")).to_numpy(zero_copy_only=False)
        chords = batch.filter(pc.greater(pc.list_value_length(batch.column("pitches")), 1))
        spelled = pc.binary_join(pc.cast(chords.column("pitches"), pa.list_(pa.string())), ".")
        grouped = (pa.table({"token": chords.column("token"), "voicing": spelled})
                   .group_by(["token", "voicing"]).aggregate([([], "count_all")]))
        for token, voicing, times in zip(*(grouped.column(i).to_pylist() for i in range(3))):
            counts[token, voicing] += times
        # Pitches are sorted, so an onset's highest pitch is the last of its list.
        tops = batch.column("pitches").flatten().to_numpy()[np.cumsum(sizes) - 1]
        pieces = np.concatenate([last[0], batch.column("piece_id").to_numpy(zero_copy_only=False)])
        positions = np.concatenate([last[1], batch.column("position").to_numpy()])
        tops, sizes = np.concatenate([last[2], tops]), np.concatenate([np.ones(len(last[0]), np.int64), sizes])
        follows = (pieces[1:] == pieces[:-1]) & (positions[1:] == positions[:-1] + 1) & (sizes[1:] > 1)
        steps.update(np.clip(np.diff(tops)[follows], -LEAP_LIMIT, LEAP_LIMIT).tolist())
        last = (pieces[-1:], positions[-1:], tops[-1:])
    return Voicings.count(((token, [int(p) for p in voicing.split(".")], times)
                           for (token, voicing), times in counts.items()), top_steps=steps)


@dataclass(frozen=True)
class Recorded:
    """What the `pieces` table says about the files seen before."""

    files: frozenset[tuple[str, int, int]]  # (path, size, modified ms) not to read again
    contents: dict[str, str]  # content id → the first path it was parsed from


def read_recorded(corpus: Corpus, retry_failed: bool = False) -> Recorded:
    """Read the `pieces` table (a small table: a row per file). Rows of `duplicate` files name
    content recorded elsewhere; with `retry_failed`, files and content that failed are not
    counted as seen."""
    if not storage.exists(corpus.pieces):  # first run: no table yet
        return Recorded(frozenset(), {})
    filesystem, base = storage.resolve(corpus.pieces)
    columns = pa.schema([("path", pa.string()), ("piece_id", pa.string()), ("status", pa.string()),
                         ("size", pa.int64()), ("modified", pa.timestamp("ms", tz="UTC"))])
    table = ds.dataset(base, filesystem=filesystem, format="parquet", schema=columns).to_table()  # older rows: null
    retried = pa.array(["error"] if retry_failed else [], pa.string())
    counted = table.filter(pc.invert(pc.is_in(table["status"], retried)))
    known = counted.filter(pc.is_valid(counted["size"]))
    files = frozenset(zip(known["path"].to_pylist(), known["size"].to_pylist(),
                          known["modified"].cast(pa.int64()).to_pylist()))
    first = counted.filter(pc.not_equal(counted["status"], "duplicate")).sort_by([("path", "descending")])
    contents = dict(zip(first["piece_id"].to_pylist(), first["path"].to_pylist()))  # the first path wins
    return Recorded(files, contents)


def write_parquet(table: pa.Table, folder: str, name: str = "part-00000.parquet", **options) -> None:
    """An Arrow table as a Parquet file of `folder` (any location `storage` knows)."""
    filesystem, path = storage.resolve(folder)
    filesystem.create_dir(path, recursive=True)
    pq.write_table(table, f"{path}/{name}", filesystem=filesystem, **options)


def write_notes(notes: pa.RecordBatch, folder: str) -> None:
    """Notes rows as one Parquet file of `folder`, sorted by piece and position as the Spark
    job sorts its files (pyarrow's row groups of a million rows are about the 8 MiB of the job's)."""
    write_parquet(pa.Table.from_batches([notes]).sort_by([("piece_id", "ascending"), ("position", "ascending")]),
                  folder)


def write_pieces(rows: list[PieceRow], folder: str) -> None:
    """`pieces` rows as one Parquet file of `folder`, written by pyarrow: a Spark job would first
    carry every row to the JVM and start a Python worker, about a second for a small table."""
    table = pa.Table.from_arrays([pa.array(list(column), type=field.type)
                                  for column, field in zip(zip(*rows), PIECES_SCHEMA)], schema=PIECES_SCHEMA)
    write_parquet(table, folder, use_deprecated_int96_timestamps=True)  # as Spark writes timestamps


def notes_batch(pieces: list[tuple[PieceRow, list[Token]]]) -> pa.RecordBatch:
    """The notes rows of parsed pieces, as one Arrow record batch."""
    columns = [[] for _ in NOTES_SCHEMA]
    for row, tokens in pieces:
        columns[0].extend([row.piece_id] * len(tokens))
        for column, values in zip(columns[1:], zip(*tokens)):
            column.extend(values)
    return pa.RecordBatch.from_arrays([pa.array(column, type=field.type)
                                       for column, field in zip(columns, NOTES_SCHEMA)], schema=NOTES_SCHEMA)
