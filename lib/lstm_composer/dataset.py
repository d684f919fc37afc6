"""A rank's token stream → training examples, streamed with tf.data.

The paper's examples are (window → next token); a dense model's are (window → the next
token at every position of it), which teaches as many predictions per window as it has
tokens. Only the token ids (one int32 per token, with an expressive model's classes) and the
start of each window live in memory; windows are gathered batch by batch, so memory stays
O(tokens), not O(tokens × window). Windows never cross a piece boundary. Training windows
may be transposed (`transposition_table`), each by its own random interval. Each rank reads
its own shard of the notes table (`tables.Shard`) and makes its windows from it.
"""
from __future__ import annotations

import numpy as np

from lstm_composer.form import transposed_key
from lstm_composer.presets import ModelConfig
from lstm_composer.tables import TokenStream
from lstm_composer.tokens import HIGHEST_KEY, LOWEST_KEY, Vocabulary, transpose_token

# The share of training windows told no style (label 0) on a model with style labels: the network
# also learns the corpus unlabelled, which a piece without a label needs, and generation's style
# guidance (`decoder.Guided`) weighs the labelled prediction against it.
UNLABELLED_SHARE = 0.15


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
    of them, with a weight of 0 where a short piece's window is padded. Shuffled (training)
    windows of a model with style labels are told none at random (`UNLABELLED_SHARE`)."""
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
        if jitter and config.styles:
            columns = unlabelled_at_random(columns, config.attributes.index("style"), rng)
        weights = tf.cast(inside[:, 1:], tf.float32)
        inputs, targets = columns[:, :-1], columns[:, 1:]
        if not config.expressive:
            return inputs[..., 0], targets[..., 0], weights
        features = {name: inputs[..., i] for i, name in enumerate(config.attributes)}
        if config.chosen_input:
            from lstm_composer.model import CHOSEN_TOKEN

            features[CHOSEN_TOKEN] = targets[..., 0]
        heads = {f"next_{name}": targets[..., i] for i, name in enumerate(config.heads)}
        return features, heads, {head: weights for head in heads}

    return to_batch


def transposed(columns, shifts, moved, config: ModelConfig, rng):
    """Each window (batch, positions, attributes) moved by one interval drawn from those that
    keep every token in the vocabulary and every bass on the piano; interval 0 always fits. Its
    key moves with it."""
    import tensorflow as tf

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
    shift = tf.cast(tf.gather(shifts, choice), columns.dtype)[:, None, None]
    for i, name in enumerate(config.attributes[1:], start=1):
        column = columns[..., i:i + 1]
        if name == "bass":
            column += shift
        elif name == "key":
            column = transposed_key(column, shift)
        parts.append(column)
    return tf.concat(parts, axis=-1)


def unlabelled_at_random(columns, where: int, rng):
    """Windows (batch, positions, attributes) whose style column is set to 0 (none), each with
    the chance `UNLABELLED_SHARE`."""
    import tensorflow as tf

    told = tf.cast(rng.uniform(tf.shape(columns)[:1]) >= UNLABELLED_SHARE, columns.dtype)[:, None]
    style = columns[..., where] * told
    return tf.concat([columns[..., :where], style[..., None], columns[..., where + 1:]], axis=-1)


def one_core_pipeline():
    """A rank usually owns one core: gathering a batch is cheap, so tf.data gets no tuning
    or parallel threads that would compete with the training step for that core."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return options
