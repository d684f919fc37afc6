"""Notes table → (window → next token) examples, streamed with tf.data, sharded per rank.

Only the token ids (one int32 per token) and the start of each window live in memory;
windows are gathered batch by batch, so memory stays O(tokens), not O(tokens × window).
Windows never cross a piece boundary.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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


def read_token_stream(notes_path: str, vocabulary: Vocabulary, expression: Expression | None = None) -> TokenStream:
    """Read the notes table (a local path or any URI pyarrow knows) in piece and position order;
    with `expression`, each token's onset gap, duration and velocity classes too."""
    uri = re.sub(r"^s3[an]://", "s3://", notes_path)  # Hadoop's S3 schemes are plain s3 to pyarrow
    columns = ["piece_id", "position", "token"] + (["offset", "duration", "velocity"] if expression else [])
    table = pq.read_table(uri, columns=columns)
    table = table.sort_by([("piece_id", "ascending"), ("position", "ascending")])
    ids = pc.index_in(table["token"], value_set=pa.array(vocabulary.tokens))
    if ids.null_count:
        unknown = pc.filter(table["token"], pc.is_null(ids)).unique().to_pylist()[:5]
        raise ValueError(f"the notes table has tokens outside the vocabulary, e.g. {unknown}")
    piece_column = table["piece_id"].to_numpy(zero_copy_only=False)
    changes = np.flatnonzero(piece_column[1:] != piece_column[:-1]) + 1
    bounds = np.concatenate([[0], changes, [len(piece_column)]]).astype(np.int64)
    classes = None
    if expression:
        classes = expression.classes(table["offset"].to_numpy(), table["duration"].to_numpy(),
                                     table["velocity"].to_numpy(), piece_starts=bounds[:-1])
    return TokenStream(
        ids=ids.to_numpy(zero_copy_only=False).astype(np.int32),
        bounds=bounds,
        piece_ids=[str(piece_column[b]) for b in bounds[:-1]],
        expression=classes,
    )


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


def rank_window_starts(stream: TokenStream, sequence_length: int, pieces: set[str], rank: int,
                       size: int) -> np.ndarray:
    """The windows of `pieces` that Horovod rank `rank` of `size` trains or validates on: every
    `size`-th one from the `rank`-th, so that the ranks together use each window once per pass."""
    return window_starts(stream, sequence_length, pieces)[rank::size]


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
