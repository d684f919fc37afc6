"""The stacked-LSTM network, built from a `ModelConfig`."""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from lstm_composer.presets import ModelConfig


ATTRIBUTE_EMBEDDING = 16  # width of the ioi, duration, velocity, bass and phase embeddings of an expressive model
PITCHES = 128  # classes of the bass head: MIDI pitches
POINTER_KEYS = 64  # width of the pointer head's queries and keys
MOTIF_LENGTH = 3  # the pointer weighs matches of the last 1, 2 and 3 tokens
CHOSEN_TOKEN = "chosen_token"  # the bass head's extra input: the token of the position it voices


def build_model(config: ModelConfig, vocab_size: int, for_training: bool = False,
                expression_sizes: tuple[int, int, int, int] | None = None, window: int | None = -1):
    """LSTM stack → BatchNorm → Dropout → Dense relu → BatchNorm → Dropout → softmax.

    With the `paper` preset this is the paper's network layer for layer. An expressive model
    (`config.expressive`, with the class counts of `expression_sizes`: `Expression.sizes`) takes the token, onset
    gap, duration and velocity of each position (and its bass, `config.bass`), each through its
    own embedding, and has one softmax head for each (inputs named as in
    `config.attributes`, heads `next_<name>`). The bass head also sees the token chosen for
    the position it voices (input `chosen_token`: in training, the target token). With
    `config.dense_targets` every position has a prediction; with `config.pointer` the token
    head mixes its softmax with a pointer to earlier positions of the window (`Pointer`).
    `for_training` applies the preset's training precision; the saved network is always
    float32, and its heads are float32 in any case. `window`: time steps of the inputs
    (default the preset's window; None: any length).
    """
    import tensorflow as tf

    layers = tf.keras.layers
    window = config.sequence_length if window == -1 else window
    dtype = config.precision if for_training else "float32"
    names = config.attributes
    if config.expressive:
        if expression_sizes is None:
            raise ValueError("an expressive model needs the sizes of its ioi, duration and velocity classes "
                             "and its beat phases")
        ioi, duration, velocity, phases = expression_sizes
        sizes = [vocab_size, ioi, duration, velocity] + [PITCHES] * config.bass + [phases] * config.phase
        inputs = [layers.Input(shape=(window,), dtype="int32", name=name) for name in names]
        embedded = [layers.Embedding(size, config.embedding_dim if name == "token" else ATTRIBUTE_EMBEDDING,
                                     name=f"{name}_embedding", dtype=dtype)(x)
                    for name, size, x in zip(names, sizes, inputs)]
        x = layers.Concatenate(name="attributes", dtype=dtype)(embedded)
        tokens = inputs[0]
    elif config.input_encoding == "scalar":
        inputs = layers.Input(shape=(window, 1), name="window")
        x = inputs
    else:
        inputs = tokens = layers.Input(shape=(window,), dtype="int32", name="window")
        x = layers.Embedding(vocab_size, config.embedding_dim, name="embedding", dtype=dtype)(inputs)
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
    token_head = layers.Dense(vocab_size, activation=None if config.pointer else "softmax",
                              name="token_logits" if config.pointer else "next_token", dtype="float32")(x)
    if config.pointer:
        span = config.sequence_length - 1
        token_head = pointer_class()(vocab_size, span=span, lags=span, name="next_token",
                                     dtype="float32")([memory, token_head, tokens])
    outputs = [token_head]
    if config.expressive:
        for name, size in zip(config.heads[1:], sizes[1:]):
            features = x
            if name == "bass":
                chosen = layers.Input(shape=(window,), dtype="int32", name=CHOSEN_TOKEN)
                inputs.append(chosen)
                voiced = layers.Embedding(vocab_size, config.embedding_dim, name=f"{CHOSEN_TOKEN}_embedding",
                                          dtype=dtype)(chosen)
                features = layers.Concatenate(name="bass_features", dtype=dtype)([x, voiced])
            outputs.append(layers.Dense(size, activation="softmax", name=f"next_{name}", dtype="float32")(features))
    return tf.keras.Model(inputs, outputs if config.expressive else outputs[0], name=f"lstm_composer_{config.name}")


def _pointer_layer():
    import tensorflow as tf

    def _softmax_last(x):
        """Softmax over the last axis, spelled out: TensorFlow's grappler cannot cost a Softmax op
        whose input rank it does not know here, and warns at every step."""
        e = tf.exp(x - tf.reduce_max(x, -1, keepdims=True))
        return e / tf.reduce_sum(e, -1, keepdims=True)

    @tf.keras.utils.register_keras_serializable(package="lstm_composer")
    class Pointer(tf.keras.layers.Layer):
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

    return Pointer


@lru_cache(maxsize=1)
def pointer_class():
    """The `Pointer` Keras layer class, defined (and registered for loading) on first use,
    so that importing this module does not import TensorFlow."""
    return _pointer_layer()


def loss_name(config: ModelConfig) -> str:
    return ("sparse_categorical_crossentropy" if config.sparse_targets
            else "categorical_crossentropy")


class Decoder:
    """A trained network as a step function in NumPy: one position in (the token, and for an
    expressive model its onset gap, duration, velocity and bass classes), the next position's
    probabilities out (one array per head), the LSTM states and the pointer's memory carried
    to the next step.

    It uses the network's trained weights and the arithmetic of Keras in inference mode
    (dropout off, BatchNorm with its moving statistics), so feeding it a window step by step
    gives what the network gives for that window; the tests check it. A step costs one small
    matrix product per layer instead of a whole window through Keras. A bass head is
    conditioned on the token chosen for its position: `step` leaves it out, and
    `bass_probabilities` gives it once the token is drawn.
    """

    def __init__(self, network, config: ModelConfig, vocab_size: int):
        import tensorflow as tf

        layers = tf.keras.layers
        self.vocab_size = vocab_size
        self.config = config
        self.lstms: list[tuple] = []  # (W, U, b) per LSTM
        self.trunk: list[tuple] = []  # ("affine", scale, shift) / ("dense", W, b, activation), after the LSTMs
        attributes = config.attributes
        embeddings, heads = {}, {}
        self.pointer = None
        self.span = config.sequence_length - 1
        head_layers = {f"next_{name}" for name in config.heads} | {"token_logits"}
        for layer in network.layers:
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            if isinstance(layer, (layers.InputLayer, layers.Dropout, layers.Concatenate)):
                continue
            if isinstance(layer, layers.Embedding):
                embeddings[layer.name] = weights[0]
            elif layer.name == "next_token" and config.pointer:
                query, key, sentinel, sentinel_bias, motif, *lag = weights
                lag = lag[0] if lag else np.zeros(1, np.float32)  # an older model has no weights per distance
                # one weight per distance span .. 1, the order of the keys (a distance past the last
                # weight shares it, as in Keras)
                lag = np.concatenate([lag, np.repeat(lag[-1:], max(self.span - len(lag), 0))])[:self.span]
                self.pointer = (query, key, sentinel, float(sentinel_bias), motif, lag[::-1].copy())
            elif isinstance(layer, layers.Dense) and layer.name in head_layers:
                heads[layer.name] = (weights[0], weights[1])
            elif isinstance(layer, layers.LSTM):
                cell = layer.cell
                if (cell.activation is not tf.keras.activations.tanh
                        or cell.recurrent_activation is not tf.keras.activations.sigmoid):
                    raise ValueError(f"{layer.name}: only tanh/sigmoid LSTMs can be decoded step by step")
                self.lstms.append(tuple(weights))
            elif isinstance(layer, layers.BatchNormalization):
                gamma, beta, mean, variance = weights
                scale = gamma / np.sqrt(variance + layer.epsilon)
                self.trunk.append(("affine", scale, beta - mean * scale))
            elif isinstance(layer, layers.Dense):
                self.trunk.append(("dense", weights[0], weights[1], layer.activation.__name__))
            else:
                raise ValueError(f"cannot decode a {type(layer).__name__} layer ({layer.name}) step by step")
        if config.expressive:
            names = [f"{name}_embedding" for name in attributes]
        else:
            names = [] if config.input_encoding == "scalar" else ["embedding"]
        head_names = ["token_logits" if config.pointer else "next_token"] + [f"next_{n}" for n in config.heads[1:]]
        expected_embeddings = set(names) | ({f"{CHOSEN_TOKEN}_embedding"} if config.bass else set())
        if expected_embeddings != set(embeddings) or set(head_names) != set(heads) or (
                config.pointer and self.pointer is None):
            raise ValueError(f"the network's embeddings {sorted(embeddings)} and heads {sorted(heads)} are not "
                             f"those of a {config.name} model")
        self.embeddings = [embeddings[name] for name in names]  # empty: the paper's scalar input
        self.heads = [heads[name] for name in head_names if name != "next_bass"]
        self.bass_head = heads.get("next_bass")
        self.chosen_embedding = embeddings.get(f"{CHOSEN_TOKEN}_embedding")

    def initial_state(self) -> "DecoderState":
        """Zero state and an empty memory: what the network starts every window from."""
        zeros = tuple((np.zeros(U.shape[0], np.float32), np.zeros(U.shape[0], np.float32)) for _, U, _ in self.lstms)
        keys = np.zeros((0, self.pointer[1].shape[1] if self.pointer else 0), np.float32)
        return DecoderState(zeros, keys, np.zeros(0, np.int64), None, None, np.zeros(0, np.int64))

    def step(self, position, state: "DecoderState") -> tuple[list[np.ndarray], "DecoderState"]:
        """Feed one position (a token id, or a sequence of one id per input); return the next
        position's probabilities, one float64 array per head (the bass head aside), and the
        new state. `state` is not changed, so one primed state can start several continuations."""
        ids = np.atleast_1d(position)
        if self.embeddings:
            x = np.concatenate([table[i] for table, i in zip(self.embeddings, ids)])
        else:
            x = np.array([ids[0] / self.vocab_size], np.float32)
        new_lstm = []
        for (W, U, b), (h, c) in zip(self.lstms, state.lstm):
            z = x @ W + h @ U + b
            units = h.shape[0]
            i, f = _sigmoid(z[:units]), _sigmoid(z[units:2 * units])
            g, o = np.tanh(z[2 * units:3 * units]), _sigmoid(z[3 * units:])
            c = f * c + i * g
            h = o * np.tanh(c)
            new_lstm.append((h, c))
            x = h
        memory = x
        for kind, *weights in self.trunk:
            if kind == "affine":
                scale, shift = weights
                x = x * scale + shift
            else:
                W, b, activation = weights
                x = _ACTIVATIONS[activation](x @ W + b)
        outputs = [x @ W + b for W, b in self.heads]
        keys, values, pending = state.keys, state.values, state.pending_key
        history = np.append(state.history, int(ids[0])) if self.pointer is not None else state.history
        if self.pointer is None:
            outputs[0] = _softmax(outputs[0])
        else:
            query_weights, key_weights, sentinel, sentinel_bias, motif, by_distance = self.pointer
            if pending is not None:  # the previous position's key now knows the token that followed it
                keys, values = np.vstack([keys, pending[None]]), np.append(values, int(ids[0]))
                keys, values = keys[-self.span:], values[-self.span:]  # the earlier positions a window holds
            query = memory @ query_weights
            earlier = len(keys)  # keys of positions t - earlier .. t - 1
            scores = keys @ query / np.sqrt(len(query))
            scores = scores + by_distance[len(by_distance) - earlier:]  # distances earlier .. 1
            run = np.ones(earlier, dtype=bool)
            for n, weight in enumerate(motif):  # the last n + 1 tokens up to t equal those up to j
                back = len(history) - 1 - n
                if back < 0:
                    break
                positions = len(history) - 1 - earlier + np.arange(earlier) - n
                run &= (positions >= 0) & (history[np.maximum(positions, 0)] == history[back])
                scores = scores + weight * run
            scores = np.append(scores, query @ sentinel + sentinel_bias)
            shares = _softmax(scores)
            token = shares[-1] * _softmax(outputs[0])
            np.add.at(token, values, shares[:-1])
            outputs[0] = token
            pending = memory @ key_weights
        probabilities = [outputs[0].astype(np.float64)] + [_softmax(o).astype(np.float64) for o in outputs[1:]]
        return probabilities, DecoderState(tuple(new_lstm), keys, values, pending, x, history)

    def bass_probabilities(self, state: "DecoderState", token: int) -> np.ndarray:
        """The bass head's probabilities for the next position, once its token is chosen."""
        if self.bass_head is None:
            raise ValueError("this network has no bass head")
        W, b = self.bass_head
        features = np.concatenate([state.features, self.chosen_embedding[token]])
        return _softmax(features @ W + b).astype(np.float64)

    def prime(self, positions, state: "DecoderState | None" = None) -> tuple[list[np.ndarray], "DecoderState"]:
        """Feed a sequence of positions; the probabilities after the last one and the state."""
        state = self.initial_state() if state is None else state
        probabilities = None
        for position in positions:
            probabilities, state = self.step(position, state)
        return probabilities, state


class DecoderState(NamedTuple):
    """What a `Decoder` carries from one position to the next."""

    lstm: tuple  # (h, c) per LSTM
    keys: np.ndarray  # the pointer's keys of earlier positions whose next token is known
    values: np.ndarray  # the token that followed each of those positions
    pending_key: np.ndarray | None  # the last position's key, waiting for its next token
    features: np.ndarray | None  # the last position's features before the heads (for the bass head)
    history: np.ndarray  # the tokens fed so far (for the pointer's motif matches)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # the logistic function, without overflow warnings


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "softmax": _softmax, "linear": lambda x: x}
