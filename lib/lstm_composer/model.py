"""The stacked-LSTM network, built from a `ModelConfig`."""
from __future__ import annotations

import numpy as np

from lstm_composer.presets import ModelConfig


ATTRIBUTE_EMBEDDING = 16  # width of the ioi, duration and velocity embeddings of an expressive model


def build_model(config: ModelConfig, vocab_size: int, for_training: bool = False,
                expression_sizes: tuple[int, int, int] | None = None):
    """LSTM stack → BatchNorm → Dropout → Dense relu → BatchNorm → Dropout → softmax.

    With the `paper` preset this is the paper's network layer for layer. An expressive model
    (`config.expressive`, with the class counts of `expression_sizes`) takes the token, onset
    gap, duration and velocity of each position, each through its own embedding, and has one
    softmax head for each (inputs named as in `expression.ATTRIBUTES`, heads `next_<name>`). `for_training` applies the
    preset's training precision; the saved network is always float32, and its softmax heads
    are float32 in any case.
    """
    import tensorflow as tf

    from lstm_composer.expression import ATTRIBUTES

    layers = tf.keras.layers
    dtype = config.precision if for_training else "float32"
    if config.expressive:
        if expression_sizes is None:
            raise ValueError("an expressive model needs the sizes of its ioi, duration and velocity classes")
        sizes = (vocab_size, *expression_sizes)
        inputs = [layers.Input(shape=(config.sequence_length,), dtype="int32", name=name) for name in ATTRIBUTES]
        embedded = [layers.Embedding(size, config.embedding_dim if name == "token" else ATTRIBUTE_EMBEDDING,
                                     name=f"{name}_embedding", dtype=dtype)(x)
                    for name, size, x in zip(ATTRIBUTES, sizes, inputs)]
        x = layers.Concatenate(name="attributes", dtype=dtype)(embedded)
    elif config.input_encoding == "scalar":
        inputs = layers.Input(shape=(config.sequence_length, 1), name="window")
        x = inputs
    else:
        inputs = layers.Input(shape=(config.sequence_length,), dtype="int32", name="window")
        x = layers.Embedding(vocab_size, config.embedding_dim, name="embedding", dtype=dtype)(inputs)
    last = len(config.lstm_units) - 1
    for i, units in enumerate(config.lstm_units):
        x = layers.LSTM(units, return_sequences=i < last, recurrent_dropout=config.recurrent_dropout,
                        name=f"lstm_{i + 1}", dtype=dtype)(x)
    for dense in (False, True):
        if dense:
            x = layers.Dense(config.dense_units, activation="relu", dtype=dtype)(x)
        if config.batch_norm:
            x = layers.BatchNormalization(dtype=dtype)(x)
        x = layers.Dropout(config.dropout, dtype=dtype)(x)
    if config.expressive:
        outputs = [layers.Dense(size, activation="softmax", name=f"next_{name}", dtype="float32")(x)
                   for name, size in zip(ATTRIBUTES, sizes)]
    else:
        outputs = layers.Dense(vocab_size, activation="softmax", name="next_token", dtype="float32")(x)
    return tf.keras.Model(inputs, outputs, name=f"lstm_composer_{config.name}")


def loss_name(config: ModelConfig) -> str:
    return ("sparse_categorical_crossentropy" if config.sparse_targets
            else "categorical_crossentropy")


class Decoder:
    """A trained network as a step function in NumPy: one position in (the token, and for an
    expressive model its onset gap, duration and velocity classes), the next position's
    probabilities out (one array per head), each LSTM's state carried to the next step.

    It walks the network's layers with their trained weights and the arithmetic of Keras in
    inference mode (dropout off, BatchNorm with its moving statistics), so feeding it a
    window step by step gives what the network gives for that window; the tests check it.
    A step costs one small matrix product per layer instead of a whole window through Keras.
    """

    def __init__(self, network, config: ModelConfig, vocab_size: int):
        import tensorflow as tf

        from lstm_composer.expression import ATTRIBUTES

        layers = tf.keras.layers
        self.vocab_size = vocab_size
        self.stages: list[tuple] = []  # ("lstm", W, U, b) / ("affine", scale, shift) / ("dense", W, b, activation)
        head_names = tuple(f"next_{name}" for name in ATTRIBUTES) if config.expressive else ("next_token",)
        embeddings, heads = {}, {}
        for layer in network.layers:
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            if isinstance(layer, (layers.InputLayer, layers.Dropout, layers.Concatenate)):
                continue
            if isinstance(layer, layers.Embedding):
                embeddings[layer.name] = weights[0]
            elif isinstance(layer, layers.Dense) and layer.name in head_names:
                heads[layer.name] = (weights[0], weights[1])
            elif isinstance(layer, layers.LSTM):
                cell = layer.cell
                if (cell.activation is not tf.keras.activations.tanh
                        or cell.recurrent_activation is not tf.keras.activations.sigmoid):
                    raise ValueError(f"{layer.name}: only tanh/sigmoid LSTMs can be decoded step by step")
                self.stages.append(("lstm", *weights))
            elif isinstance(layer, layers.BatchNormalization):
                gamma, beta, mean, variance = weights
                scale = gamma / np.sqrt(variance + layer.epsilon)
                self.stages.append(("affine", scale, beta - mean * scale))
            elif isinstance(layer, layers.Dense):
                self.stages.append(("dense", weights[0], weights[1], layer.activation.__name__))
            else:
                raise ValueError(f"cannot decode a {type(layer).__name__} layer ({layer.name}) step by step")
        if config.expressive:
            names = [f"{name}_embedding" for name in ATTRIBUTES]
        else:
            names = [] if config.input_encoding == "scalar" else ["embedding"]
        if set(names) != set(embeddings) or set(head_names) != set(heads):
            raise ValueError(f"the network's embeddings {sorted(embeddings)} and heads {sorted(heads)} are not "
                             f"those of a {config.name} model")
        self.embeddings = [embeddings[name] for name in names]  # empty: the paper's scalar input
        self.heads = [heads[name] for name in head_names]

    def initial_state(self) -> tuple:
        """Zero state: what the network starts every window from."""
        return tuple((np.zeros(W.shape[1] // 4, np.float32), np.zeros(W.shape[1] // 4, np.float32))
                     for kind, W, *_ in self.stages if kind == "lstm")

    def step(self, position, state: tuple) -> tuple[list[np.ndarray], tuple]:
        """Feed one position (a token id, or a sequence of one id per input); return the next
        position's probabilities, one float64 array per head, and the new state. `state` is
        not changed, so one primed state can start several continuations."""
        ids = np.atleast_1d(position)
        if self.embeddings:
            x = np.concatenate([table[i] for table, i in zip(self.embeddings, ids)])
        else:
            x = np.array([ids[0] / self.vocab_size], np.float32)
        new_state, lstm = [], 0
        for kind, *weights in self.stages:
            if kind == "lstm":
                W, U, b = weights
                h, c = state[lstm]
                lstm += 1
                z = x @ W + h @ U + b
                units = h.shape[0]
                i, f = _sigmoid(z[:units]), _sigmoid(z[units:2 * units])
                g, o = np.tanh(z[2 * units:3 * units]), _sigmoid(z[3 * units:])
                c = f * c + i * g
                h = o * np.tanh(c)
                new_state.append((h, c))
                x = h
            elif kind == "affine":
                scale, shift = weights
                x = x * scale + shift
            else:
                W, b, activation = weights
                x = _ACTIVATIONS[activation](x @ W + b)
        return [_softmax(x @ W + b).astype(np.float64) for W, b in self.heads], tuple(new_state)

    def prime(self, positions, state: tuple | None = None) -> tuple[list[np.ndarray], tuple]:
        """Feed a sequence of positions; the probabilities after the last one and the state."""
        state = self.initial_state() if state is None else state
        probabilities = None
        for position in positions:
            probabilities, state = self.step(position, state)
        return probabilities, state


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # the logistic function, without overflow warnings


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "softmax": _softmax, "linear": lambda x: x}
