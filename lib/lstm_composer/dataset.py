"""Notes table → training examples, streamed with tf.data, sharded per rank.

The paper's examples are (window → next token); a dense model's are (window → the next
token at every position of it), which teaches as many predictions per window as it has
tokens. Only the token ids (one int32 per token, with an expressive model's classes) and the
start of each window live in memory; windows are gathered batch by batch, so memory stays
O(tokens), not O(tokens × window). Windows never cross a piece boundary. Training windows
may be transposed (`transposition_table`), each by its own random interval.

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
from lstm_composer.expression import Expression, beat_phase
from lstm_composer.presets import ModelConfig
from lstm_composer.tokens import Vocabulary


@dataclass(frozen=True)
class TokenStream:
    """All pieces' token ids end to end; piece `i` is `ids[bounds[i]:bounds[i + 1]]`."""

    ids: np.ndarray  # int32
    bounds: np.ndarray  # int64, len = pieces + 1
    piece_ids: list[str]
    expression: np.ndarray | None = None  # (tokens, 3) int32: ioi, duration, velocity classes
    bass: np.ndarray | None = None  # int32: each token's lowest MIDI pitch
    phase: np.ndarray | None = None  # int32: where each onset falls within its beat (expression.beat_phase)

    def attributes(self, config: ModelConfig) -> np.ndarray:
        """(tokens, attributes) int32: the columns `config.attributes` name, in order."""
        columns = [self.ids[:, None]]
        if config.expressive:
            columns.append(self.expression)
        if config.bass:
            columns.append(self.bass[:, None])
        if config.phase:
            columns.append(self.phase[:, None])
        return np.concatenate(columns, axis=1).astype(np.int32)

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
                      shard: Shard | None = None, bass: bool = False) -> TokenStream:
    """Read the notes table (any location `storage` knows) in piece and position order, all of
    it or one `shard`; with `expression`, each token's onset gap, duration and velocity classes
    (and beat phase) too; with `bass`, each token's lowest pitch."""
    filesystem, path = storage.resolve(notes_path)
    columns = (["piece_id", "position", "token"] + (["offset", "duration", "velocity"] if expression else [])
               + (["pitches"] if bass else []))
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
    classes = phase = None
    if expression:
        offsets, durations = table["offset"].to_numpy(), table["duration"].to_numpy()
        if expression.unit != "beats":
            offsets, durations = timing_by_piece(expression, offsets, durations, bounds, piece_column, notes_path)
        classes = expression.classes(offsets, durations, table["velocity"].to_numpy(), piece_starts=bounds[:-1])
        phase = beat_phase(table["offset"].to_numpy(), expression.phases)  # in beats whatever the rhythm's unit
    return TokenStream(
        ids=ids.to_numpy(zero_copy_only=False).astype(np.int32),
        bounds=bounds,
        piece_ids=piece_column.take(bounds[:-1]).to_pylist(),
        expression=classes,
        bass=pc.list_element(table["pitches"], 0).to_numpy().astype(np.int32) if bass else None,
        phase=phase,
    )


def timing_by_piece(expression: Expression, offsets: np.ndarray, durations: np.ndarray, bounds: np.ndarray,
                    piece_column, notes_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Every piece's onsets and durations in the expression's unit, by its tempo map from the
    `pieces` table beside the notes table."""
    filesystem, path = storage.resolve(notes_path.rstrip("/").rsplit("/", 1)[0] + "/pieces")
    rows = pq.read_table(path, filesystem=filesystem, columns=["piece_id", "tempos"]).to_pylist()
    tempo_maps = {row["piece_id"]: [(t["offset"], t["bpm"]) for t in row["tempos"] or []] for row in rows}
    offsets, durations = offsets.astype(np.float64), durations.astype(np.float64)
    for begin, end in zip(bounds[:-1], bounds[1:]):
        offsets[begin:end], durations[begin:end] = expression.timing(
            offsets[begin:end], durations[begin:end], tempo_maps.get(piece_column[int(begin)].as_py()))
    return offsets, durations


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


def notes_voicings(notes_path: str):
    """How the corpus voices each chord (`voicing.Voicings`): every chord row's token and
    pitches, and the top voice's step into each chord from the onset before it in its piece,
    counted in Arrow and NumPy one batch at a time, on the driver. The notes files hold each
    piece's rows in order (the parse job sorts them); a step is only counted between rows of
    one piece at consecutive positions."""
    from collections import Counter

    import pyarrow.dataset as ds

    from lstm_composer.voicing import LEAP_LIMIT, Voicings

    filesystem, path = storage.resolve(notes_path)
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
    """Whole pieces per rank, balanced by tokens (`shard_bounds`), and how validation is shared:
    by the same ranges when each range holds at least half its share of the validation tokens
    (every rank evaluates as many batches as the one with the fewest, so one short held-out
    piece in a range would leave almost nothing to validate on); otherwise every rank reads all
    the validation pieces."""
    held_out = set(validation)
    bounds = shard_bounds(counts, held_out, ranks, sequence_length)
    usable = {p: counts[p] for p in held_out if counts[p] > sequence_length}
    share = sum(usable.values()) / (2 * ranks)
    by_range = bool(usable) and all(
        sum(n for p, n in usable.items() if (first is None or p >= first) and (end is None or p < end)) >= share
        for first, end in zip(bounds[:-1], bounds[1:]))
    return ShardPlan(tuple(bounds), tuple(sorted(held_out)), by_range)


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


def dense_window_starts(stream: TokenStream, sequence_length: int, pieces: set[str] | None = None) -> np.ndarray:
    """(windows, 3) int64 rows of (start, piece begin, piece end): the pieces (of `pieces`, when
    given) cut into consecutive windows of `sequence_length` targets. The last window of a piece
    may be short: its missing positions are padding that carries no weight."""
    rows = [(start, begin, end)
            for piece, begin, end in zip(stream.piece_ids, stream.bounds[:-1], stream.bounds[1:])
            if end - begin >= 2 and (pieces is None or piece in pieces)
            for start in range(int(begin), int(end) - 1, sequence_length)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def transposition_table(vocabulary: Vocabulary, semitones: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(shifts, table): the intervals of the range and, for every token id, the id of the token
    transposed by each of them (-1 where the result is off the piano or not in the vocabulary)."""
    from lstm_composer.tokens import transpose_token

    shifts = np.arange(semitones[0], semitones[1] + 1)
    table = np.full((len(vocabulary), len(shifts)), -1, dtype=np.int32)
    for i, token in enumerate(vocabulary.tokens):
        for j, shift in enumerate(shifts):
            moved = token if shift == 0 else transpose_token(token, int(shift))
            table[i, j] = vocabulary.index.get(moved, -1) if moved is not None else -1
    return shifts.astype(np.int32), table


def rank_window_starts(stream: TokenStream, sequence_length: int, pieces: set[str], rank: int,
                       size: int, dense: bool = False) -> np.ndarray:
    """The windows of `pieces` that Horovod rank `rank` of `size` trains or validates on: every
    `size`-th one from the `rank`-th, so that the ranks together use each window once per pass.
    The paper's window starts, or with `dense` a dense model's rows (`dense_window_starts`)."""
    if dense:
        return dense_window_starts(stream, sequence_length, pieces)[rank::size]
    return window_starts(stream, sequence_length, pieces)[rank::size]


def encode_windows(windows, config: ModelConfig, vocab_size: int):
    """Token-id windows → the network's input: scaled scalars (the paper) or ids (embedding)."""
    import tensorflow as tf

    if config.input_encoding == "scalar":
        return tf.cast(windows, tf.float32)[..., None] / float(vocab_size)
    return windows


def make_dataset(stream: TokenStream, starts: np.ndarray, config: ModelConfig,
                 vocab_size: int, seed: int, shuffle: bool = True, batch_size: int | None = None,
                 transpositions: tuple[np.ndarray, np.ndarray] | None = None):
    """An endless dataset of batches over the given window starts, reshuffled every pass unless
    `shuffle` is False: (inputs, targets) for the paper's windows (`window_starts`), and
    (inputs, targets, weights) for a dense model's (`dense_window_starts`), whose shuffled
    windows also start at a random shift of up to half a window each pass. With
    `transpositions` (from `transposition_table`), each window is transposed by one of the
    intervals that keep all of its tokens (and basses) on the piano."""
    import tensorflow as tf

    table = tf.constant(stream.attributes(config) if config.expressive else stream.ids)
    dataset = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        dataset = dataset.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(batch_size or config.batch_size, drop_remainder=True)
    if config.dense_targets:
        batches = dense_batches(table, config, jitter=shuffle, seed=seed, transpositions=transpositions)
    else:
        batches = last_token_batches(table, config, vocab_size)
    return dataset.map(batches).prefetch(2).with_options(one_core_pipeline())


def last_token_batches(table, config: ModelConfig, vocab_size: int):
    """The paper's examples: each window of `sequence_length` tokens and the token after it."""
    import tensorflow as tf

    offsets = tf.range(config.sequence_length, dtype=tf.int64)

    def to_batch(batch_starts):
        windows = tf.gather(table, batch_starts[:, None] + offsets)
        targets = tf.gather(table, batch_starts + config.sequence_length)
        if config.expressive:
            return ({name: windows[..., i] for i, name in enumerate(config.attributes)},
                    {f"next_{name}": targets[:, i] for i, name in enumerate(config.heads)})
        if not config.sparse_targets:
            targets = tf.one_hot(targets, vocab_size)
        return encode_windows(windows, config, vocab_size), targets

    return to_batch


def dense_batches(table, config: ModelConfig, jitter: bool, seed: int,
                  transpositions: tuple[np.ndarray, np.ndarray] | None):
    """A dense model's examples: `sequence_length` positions in, the next position out at each
    of them, with a weight of 0 where a short piece's window is padded."""
    import tensorflow as tf

    length = config.sequence_length
    offsets = tf.range(length + 1, dtype=tf.int64)
    rng = tf.random.Generator.from_seed(seed)
    if transpositions is not None:
        shifts, moved = (tf.constant(part) for part in transpositions)

    def to_batch(rows):
        starts, begins, ends = rows[:, 0], rows[:, 1], rows[:, 2]
        if jitter:  # another cut of the piece each pass
            shift = rng.uniform(tf.shape(starts), -(length // 2), length // 2 + 1, dtype=tf.int64)
            starts = tf.clip_by_value(starts + shift, begins, tf.maximum(begins, ends - length - 1))
        positions = starts[:, None] + offsets
        inside = positions < ends[:, None]
        columns = tf.gather(table, tf.minimum(positions, ends[:, None] - 1))
        if not config.expressive:
            columns = columns[..., None]
        if transpositions is not None:
            columns = transposed(columns, shifts, moved, config, rng)
        weights = tf.cast(inside[:, 1:], tf.float32)
        inputs, targets = columns[:, :-1], columns[:, 1:]
        if not config.expressive:
            return inputs[..., 0], targets[..., 0], weights
        features = {name: inputs[..., i] for i, name in enumerate(config.attributes)}
        if config.bass:
            from lstm_composer.model import CHOSEN_TOKEN

            features[CHOSEN_TOKEN] = targets[..., 0]
        heads = {f"next_{name}": targets[..., i] for i, name in enumerate(config.heads)}
        return features, heads, {head: weights for head in heads}

    return to_batch


def transposed(columns, shifts, moved, config: ModelConfig, rng):
    """Each window (batch, positions, attributes) moved by one interval drawn from those that
    keep every token in the vocabulary and every bass on the piano; interval 0 always fits."""
    import tensorflow as tf

    from lstm_composer.tokens import HIGHEST_KEY, LOWEST_KEY

    candidates = tf.gather(moved, columns[..., 0])  # (batch, positions, intervals)
    fits = tf.reduce_all(candidates >= 0, axis=1)
    if config.bass:
        where = config.attributes.index("bass")
        bass = columns[..., where][..., None] + tf.cast(shifts, columns.dtype)
        fits &= tf.reduce_all((bass >= LOWEST_KEY) & (bass <= HIGHEST_KEY), axis=1)
    fits |= tf.cast(shifts, tf.int32)[None, :] == 0
    choice = tf.random.stateless_categorical(tf.math.log(tf.cast(fits, tf.float32)), 1,
                                             seed=rng.make_seeds(1)[:, 0])[:, 0]
    parts = [tf.gather(candidates, choice, axis=2, batch_dims=1)[..., None]]
    for i, name in enumerate(config.attributes[1:], start=1):
        column = columns[..., i:i + 1]
        if name == "bass":
            column += tf.cast(tf.gather(shifts, choice), columns.dtype)[:, None, None]
        parts.append(column)
    return tf.concat(parts, axis=-1)


def one_core_pipeline():
    """A rank usually owns one core: gathering a batch is cheap, so tf.data gets no tuning
    or parallel threads that would compete with the training step for that core."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return options
