"""The stacked-LSTM network, built from a `ModelConfig`, and its pointer head.

This module imports TensorFlow and defines the `Pointer` layer at its top level, so a saved
`model.keras` names the layer by this module and plain Keras opens it
(`tf.keras.models.load_model`): Keras imports the module it names. `decoder.py` runs the
same network step by step in NumPy; `tests/test_decoder.py` holds the two to the same
arithmetic, layer by layer, for every preset.
"""
from __future__ import annotations

import tensorflow as tf

from lstm_composer.metre import BAR_BEATS, PHRASE_BARS
from lstm_composer.presets import ModelConfig

layers = tf.keras.layers

ATTRIBUTE_EMBEDDING = 16  # width of the ioi, duration, velocity, bass and phase embeddings of an expressive model
PITCHES = 128  # classes of the bass head: MIDI pitches
POINTER_KEYS = 64  # width of the pointer head's queries and keys
MOTIF_LENGTH = 3  # the pointer weighs matches of the last 1, 2 and 3 tokens
CHOSEN_TOKEN = "chosen_token"  # the extra input of the heads that see the token chosen for their position
TOKEN_LOGITS = "token_logits"  # with a pointer, the vocabulary's logits before the pointer mixes them in
KEYS = 24  # classes of the key input: 12 major keys, then 12 minor (form.KEY_NAMES)


def head_name(attribute: str) -> str:
    """The output layer that predicts `attribute` of the next position: `next_token`, `next_ioi`..."""
    return f"next_{attribute}"


def embedding_name(attribute: str, config: ModelConfig) -> str:
    """The embedding layer of an input: `<attribute>_embedding`, or the paper-like models'
    one token embedding, `embedding`."""
    return f"{attribute}_embedding" if config.expressive or attribute == CHOSEN_TOKEN else "embedding"


def build_model(config: ModelConfig, vocab_size: int, for_training: bool = False,
                expression_sizes: tuple[int, int, int, int] | None = None, window: int | None = -1):
    """LSTM stack → BatchNorm → Dropout → Dense relu → BatchNorm → Dropout → softmax.

    With the `paper` preset this is the paper's network layer for layer. An expressive model
    (`config.expressive`, with the class counts of `expression_sizes`: `Expression.sizes`) takes
    the token, onset gap, duration and velocity of each position (and its bass, `config.bass`,
    and beat phase, `config.phase`), each through its own embedding, and has one softmax head
    for each (inputs named as in `config.attributes`, heads `next_<name>`). The bass head also
    sees the token chosen for the position it voices (input `chosen_token`: in training, the
    target token), and so do the onset gap, duration and velocity heads with
    `config.given_token`. With `config.dense_targets` every position has a prediction; with
    `config.pointer` the token head mixes its softmax with a pointer to earlier positions of
    the window (`Pointer`). `for_training` applies the preset's training precision; the saved
    network is always float32, and its heads are float32 in any case. `window`: time steps of
    the inputs (default the preset's window; None: any length).
    """
    window = config.sequence_length if window == -1 else window
    dtype = config.precision if for_training else "float32"
    sizes = _class_counts(config, vocab_size, expression_sizes)
    inputs, x, tokens = _embedded_inputs(config, sizes, window, dtype)
    memory, features = _trunk(config, x, dtype)
    token_head = layers.Dense(vocab_size, activation=None if config.pointer else "softmax",
                              name=TOKEN_LOGITS if config.pointer else head_name("token"), dtype="float32")(features)
    if config.pointer:
        span = config.sequence_length - 1
        token_head = Pointer(vocab_size, span=span, lags=span, name=head_name("token"),
                             dtype="float32")([memory, token_head, tokens])
    outputs, voiced = [token_head], None
    for name, size in zip(config.heads[1:], sizes[1:]):
        head_features = features
        if name == "bass" or config.given_token:
            if voiced is None:  # made where the first head needs it, as in models saved before given_token
                chosen = layers.Input(shape=(window,), dtype="int32", name=CHOSEN_TOKEN)
                inputs.append(chosen)
                voiced = layers.Embedding(vocab_size, config.embedding_dim,
                                          name=embedding_name(CHOSEN_TOKEN, config), dtype=dtype)(chosen)
            head_features = layers.Concatenate(name=f"{name}_features", dtype=dtype)([features, voiced])
        outputs.append(layers.Dense(size, activation="softmax", name=head_name(name), dtype="float32")(head_features))
    return tf.keras.Model(inputs, outputs if config.expressive else outputs[0], name=f"lstm_composer_{config.name}")


def _class_counts(config: ModelConfig, vocab_size: int,
                  expression_sizes: tuple[int, int, int, int] | None) -> list[int]:
    """How many values each of `config.attributes` takes."""
    if not config.expressive:
        return [vocab_size]
    if expression_sizes is None:
        raise ValueError("an expressive model needs the sizes of its ioi, duration and velocity classes "
                         "and its beat phases")
    ioi, duration, velocity, phases = expression_sizes
    return ([vocab_size, ioi, duration, velocity] + [PITCHES] * config.bass + [phases] * config.phase
            + [BAR_BEATS, PHRASE_BARS] * config.metre + [KEYS] * config.key
            + [len(config.styles) + 1] * bool(config.styles))


def _embedded_inputs(config: ModelConfig, sizes: list[int], window: int | None, dtype: str):
    """(the network's inputs, what the LSTMs read, the token ids for the pointer)."""
    if config.expressive:
        inputs = [layers.Input(shape=(window,), dtype="int32", name=name) for name in config.attributes]
        embedded = [layers.Embedding(size, config.embedding_dim if name == "token" else ATTRIBUTE_EMBEDDING,
                                     name=embedding_name(name, config), dtype=dtype)(x)
                    for name, size, x in zip(config.attributes, sizes, inputs)]
        return inputs, layers.Concatenate(name="attributes", dtype=dtype)(embedded), inputs[0]
    if config.input_encoding == "scalar":
        inputs = layers.Input(shape=(window, 1), name="window")
        return inputs, inputs, None
    inputs = layers.Input(shape=(window,), dtype="int32", name="window")
    embedded = layers.Embedding(sizes[0], config.embedding_dim, name=embedding_name("token", config), dtype=dtype)
    return inputs, embedded(inputs), inputs


def _trunk(config: ModelConfig, x, dtype: str):
    """The LSTM stack, then BatchNorm, Dropout, Dense relu, BatchNorm, Dropout (BatchNorm only
    where the preset has it): (the last LSTM's output, the features the heads read)."""
    last = len(config.lstm_units) - 1
    for i, units in enumerate(config.lstm_units):
        x = layers.LSTM(units, return_sequences=config.dense_targets or i < last,
                        recurrent_dropout=config.recurrent_dropout, name=f"lstm_{i + 1}", dtype=dtype)(x)
    memory = x
    for dense in (False, True):
        if dense:
            x = layers.Dense(config.dense_units, activation="relu", dtype=dtype)(x)
        if config.batch_norm:
            x = layers.BatchNormalization(dtype=dtype)(x)
        x = layers.Dropout(config.dropout, dtype=dtype)(x)
    return memory, x


def _softmax_last(x):
    """Softmax over the last axis, spelled out: TensorFlow's grappler cannot cost a Softmax op
    whose input rank it does not know here, and warns at every step."""
    e = tf.exp(x - tf.reduce_max(x, -1, keepdims=True))
    return e / tf.reduce_sum(e, -1, keepdims=True)


@tf.keras.utils.register_keras_serializable(package="lstm_composer")
class Pointer(layers.Layer):
    """The token head of a pointer network (pointer-sentinel mixture).

    At position t a query from the LSTM output is compared with a key from the LSTM output
    at every earlier position j < t of the window, and with a learned sentinel. Each
    score also gets a learned weight for every one of the last 1, 2 and 3 tokens up to j
    that equal those up to t (the same motif again), and a learned weight for its distance
    t - j (the first `lags` distances; music repeats at a few distances more than at
    others: a repeated note, a figure, a bar). The softmax over those scores splits
    the probability: the sentinel's share goes to the vocabulary softmax, each position
    j's share to the token that followed j. Music repeats itself, and this lets the
    network continue a passage it has heard earlier in the piece, however long ago, which
    the LSTM state alone remembers poorly.
    Inputs: [LSTM outputs (B, T, H), vocabulary logits (B, T, V), token ids (B, T)];
    output: probabilities (B, T, V).
    """

    def __init__(self, vocab_size: int, keys: int = POINTER_KEYS, span: int | None = None, lags: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.keys, self.span, self.lags = vocab_size, keys, span, lags

    def build(self, input_shape):
        width = input_shape[0][-1]
        self.query = self.add_weight(name="query", shape=(width, self.keys), initializer="glorot_uniform")
        self.key = self.add_weight(name="key", shape=(width, self.keys), initializer="glorot_uniform")
        self.sentinel = self.add_weight(name="sentinel", shape=(self.keys,), initializer="zeros")
        self.sentinel_bias = self.add_weight(name="sentinel_bias", shape=(), initializer="zeros")
        self.motif = self.add_weight(name="motif", shape=(MOTIF_LENGTH,), initializer="ones")
        if self.lags:  # distances 1 .. lags; a longer one shares the weight of the last
            self.lag = self.add_weight(name="lag", shape=(self.lags,), initializer="zeros")

    def call(self, inputs):
        memory, logits, tokens = inputs
        memory = tf.cast(memory, tf.float32)
        query, key = memory @ self.query, memory @ self.key
        scores = tf.matmul(query, key, transpose_b=True) / self.keys ** 0.5  # (B, t, j)
        same = tf.cast(tokens[:, :, None] == tokens[:, None, :], tf.float32)  # token t == token j
        steps = tf.shape(memory)[1]
        run = same
        for n in range(MOTIF_LENGTH):  # run: the last n + 1 tokens up to t equal those up to j
            scores += self.motif[n] * run
            run = run * tf.pad(same, [[0, 0], [n + 1, 0], [n + 1, 0]])[:, :steps, :steps]
        if self.lags:
            distance = tf.range(steps)[:, None] - tf.range(steps)[None, :]
            scores += tf.gather(self.lag, tf.clip_by_value(distance - 1, 0, self.lags - 1))
        # the `span` positions before t (any earlier position when span is None): as in training
        below = -1 if self.span is None else tf.minimum(self.span, steps - 1)
        earlier = tf.linalg.band_part(tf.ones((steps, steps)), below, 0)
        earlier -= tf.eye(steps)
        scores += (1.0 - earlier) * -1e9
        sentinel = tf.reduce_sum(query * self.sentinel, -1, keepdims=True) + self.sentinel_bias
        shares = _softmax_last(tf.concat([scores, sentinel], -1))
        followers = tf.concat([tokens[:, 1:], tokens[:, :1]], 1)  # the token after each position
        copied = tf.matmul(shares[..., :-1], tf.one_hot(followers, self.vocab_size))
        return shares[..., -1:] * _softmax_last(tf.cast(logits, tf.float32)) + copied

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "keys": self.keys, "span": self.span,
                "lags": self.lags}


def loss_name(config: ModelConfig) -> str:
    return ("sparse_categorical_crossentropy" if config.sparse_targets
            else "categorical_crossentropy")
