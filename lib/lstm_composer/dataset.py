"""Notes table → (window → next token) examples, streamed with tf.data, sharded per rank.

Only the token ids (one int32 per token) and the start of each window live in memory;
windows are gathered batch by batch, so memory stays O(tokens), not O(tokens × window).
Windows never cross a piece boundary.

Each rank reads only its shard: a range of piece ids (`Shard`), balanced by tokens. The parse
job writes each notes file sorted by piece in small row groups, so a rank's range skips the
row groups of the other ranks' pieces by their statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lstm_composer import storage
from lstm_composer.expression import ATTRIBUTES, Expression
from lstm_composer.presets import ModelConfig
from lstm_composer.tokens import Vocabulary


@dataclass(frozen=True)
class TokenStream:
    """All pieces' token ids end to end; piece `i` is `ids[bounds[i]:bounds[i + 1]]`."""

    ids: np.ndarray  # int32
    bounds: np.ndarray  # int64, len = pieces + 1
    piece_ids: list[str]
    expression: np.ndarray | None = None  # (tokens, 3) int32: ioi, duration, velocity classes

    def piece(self, i: int) -> np.ndarray:
        return self.ids[self.bounds[i]:self.bounds[i + 1]]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.bounds, self.expression) if a is not None)


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


def read_token_stream(notes_path: str, vocabulary: Vocabulary, expression: Expression | None = None,
                      shard: Shard | None = None) -> TokenStream:
    """Read the notes table (any location `storage` knows) in piece and position order, all of
    it or one `shard`; with `expression`, each token's onset gap, duration and velocity classes too."""
    filesystem, path = storage.resolve(notes_path)
    columns = ["piece_id", "position", "token"] + (["offset", "duration", "velocity"] if expression else [])
    table = pq.read_table(path, filesystem=filesystem, columns=columns,
                          filters=shard.filter() if shard else None)
    table = table.sort_by([("piece_id", "ascending"), ("position", "ascending")])
    ids = pc.index_in(table["token"], value_set=pa.array(vocabulary.tokens))
    if ids.null_count:
        unknown = pc.filter(table["token"], pc.is_null(ids)).unique().to_pylist()[:5]
        raise ValueError(f"the notes table has tokens outside the vocabulary, e.g. {unknown}")
    piece_column = table["piece_id"]  # compared in Arrow: no Python string per token
    changes = np.flatnonzero(pc.not_equal(piece_column.slice(1), piece_column.slice(0, len(table) - 1))
                             .to_numpy(zero_copy_only=False)) + 1
    bounds = np.concatenate([[0], changes, [len(table)]] if len(table) else [[0]]).astype(np.int64)
    classes = None
    if expression:
        classes = expression.classes(table["offset"].to_numpy(), table["duration"].to_numpy(),
                                     table["velocity"].to_numpy(), piece_starts=bounds[:-1])
    return TokenStream(
        ids=ids.to_numpy(zero_copy_only=False).astype(np.int32),
        bounds=bounds,
        piece_ids=piece_column.take(bounds[:-1]).to_pylist(),
        expression=classes,
    )


def notes_summary(notes_path: str) -> tuple[Vocabulary, dict[str, int]]:
    """The vocabulary and each piece's token count, streamed from the notes table's `piece_id`
    and `token` columns (read as dictionaries) one batch at a time, on the driver."""
    import pyarrow.dataset as ds

    filesystem, path = storage.resolve(notes_path)
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


def shard_bounds(counts: dict[str, int], validation: set[str], ranks: int, sequence_length: int) -> list[str | None]:
    """Where each rank's range of piece ids starts and ends (`ranks + 1` values, the outer two
    None): contiguous ranges of whole pieces with about equal training tokens. Raises when
    fewer training pieces than ranks are longer than a window."""
    ids = sorted(counts)
    weights = [counts[p] if p not in validation and counts[p] > sequence_length else 0 for p in ids]
    trainable = sum(1 for w in weights if w)
    if trainable < ranks:
        raise ValueError(f"{trainable} training pieces are longer than the {sequence_length}-token window, "
                         f"fewer than the {ranks} ranks: every rank trains on whole pieces of its own, so "
                         f"add MIDI files or lower --num-proc")
    total, done, bounds = sum(weights), 0, [None]
    in_range, left = 0, trainable  # weighted pieces in the current range; from this piece on
    for piece, weight in zip(ids, weights):
        to_start = ranks - len(bounds)  # ranges after the current one
        if weight and to_start and in_range and (
                left <= to_start or done + weight / 2 >= total * len(bounds) / ranks):
            bounds.append(piece)
            in_range = 0
        in_range += bool(weight)
        left -= bool(weight)
        done += weight
    return bounds + [None]


@dataclass(frozen=True)
class ShardPlan:
    """What each rank reads: rank `r` the pieces with `bounds[r] <= piece_id < bounds[r + 1]`,
    training on those not held out. Validation pieces are sharded by the same ranges when every
    range holds one longer than a window; otherwise (a small validation set) every rank reads
    all of them and takes every `ranks`-th window."""

    bounds: tuple[str | None, ...]
    validation: tuple[str, ...]
    validation_by_range: bool

    @property
    def ranks(self) -> int:
        return len(self.bounds) - 1

    def shard(self, rank: int) -> Shard:
        return Shard(self.bounds[rank], self.bounds[rank + 1])


def plan_shards(counts: dict[str, int], validation: list[str], ranks: int, sequence_length: int) -> ShardPlan:
    """Whole pieces per rank, balanced by tokens (`shard_bounds`), and how validation is shared."""
    held_out = set(validation)
    bounds = shard_bounds(counts, held_out, ranks, sequence_length)
    by_range = all(
        any(counts[p] > sequence_length for p in held_out
            if (first is None or p >= first) and (end is None or p < end))
        for first, end in zip(bounds[:-1], bounds[1:]))
    return ShardPlan(tuple(bounds), tuple(sorted(held_out)), by_range and bool(held_out))


def split_pieces(piece_ids: list[str], val_fraction: float, seed: int) -> list[str]:
    """The pieces held out for validation: a seeded draw of `val_fraction` of them (at least
    one when there are two or more), so no window of a validation piece is trained on."""
    if val_fraction <= 0 or len(piece_ids) < 2:
        return []
    count = min(len(piece_ids) - 1, max(1, round(val_fraction * len(piece_ids))))
    order = np.random.default_rng(seed).permutation(len(piece_ids))
    return sorted(piece_ids[i] for i in order[:count])


def window_starts(stream: TokenStream, sequence_length: int,
                  pieces: set[str] | None = None) -> np.ndarray:
    """Every index `s` with `ids[s:s + L]` and its next token `ids[s + L]` inside one piece
    (of `pieces`, when given)."""
    ranges = [np.arange(begin, end - sequence_length, dtype=np.int64)
              for piece, begin, end in zip(stream.piece_ids, stream.bounds[:-1], stream.bounds[1:])
              if end - begin > sequence_length and (pieces is None or piece in pieces)]
    return np.concatenate(ranges) if ranges else np.zeros(0, dtype=np.int64)


def encode_windows(windows, config: ModelConfig, vocab_size: int):
    """Token-id windows → the network's input: scaled scalars (the paper) or ids (embedding)."""
    import tensorflow as tf

    if config.input_encoding == "scalar":
        return tf.cast(windows, tf.float32)[..., None] / float(vocab_size)
    return windows


def make_dataset(stream: TokenStream, starts: np.ndarray, config: ModelConfig,
                 vocab_size: int, seed: int, shuffle: bool = True, batch_size: int | None = None):
    """An endless dataset of batches (inputs, targets) over the given window starts,
    reshuffled every pass unless `shuffle` is False."""
    import tensorflow as tf

    offsets = tf.range(config.sequence_length, dtype=tf.int64)
    if config.expressive:  # columns: token, ioi, duration, velocity
        table = tf.constant(np.concatenate([stream.ids[:, None], stream.expression], axis=1))
    else:
        table = tf.constant(stream.ids)

    def to_batch(batch_starts):
        windows = tf.gather(table, batch_starts[:, None] + offsets)
        targets = tf.gather(table, batch_starts + config.sequence_length)
        if config.expressive:
            return ({name: windows[..., i] for i, name in enumerate(ATTRIBUTES)},
                    {f"next_{name}": targets[:, i] for i, name in enumerate(ATTRIBUTES)})
        if not config.sparse_targets:
            targets = tf.one_hot(targets, vocab_size)
        return encode_windows(windows, config, vocab_size), targets

    dataset = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        dataset = dataset.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    return (dataset.repeat()
            .batch(batch_size or config.batch_size, drop_remainder=True)
            .map(to_batch)
            .prefetch(2)
            .with_options(one_core_pipeline()))


def one_core_pipeline():
    """A rank usually owns one core: gathering a batch is cheap, so tf.data gets no tuning
    or parallel threads that would compete with the training step for that core."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return options
