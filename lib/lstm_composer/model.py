"""The stacked-LSTM network, built from a `ModelConfig`."""
from __future__ import annotations

import numpy as np

from lstm_composer.presets import ModelConfig


def build_model(config: ModelConfig, vocab_size: int, for_training: bool = False):
    """LSTM stack → BatchNorm → Dropout → Dense relu → BatchNorm → Dropout → softmax.

    With the `paper` preset this is the paper's network layer for layer. `for_training`
    applies the preset's training precision; the saved network is always float32, and its
    softmax is float32 in any case.
    """
    import tensorflow as tf

    layers = tf.keras.layers
    dtype = config.precision if for_training else "float32"
    if config.input_encoding == "scalar":
        inputs = layers.Input(shape=(config.sequence_length, 1), name="window")
        x = inputs
    else:
        inputs = layers.Input(shape=(config.sequence_length,), dtype="int32", name="window")
        x = layers.Embedding(vocab_size, config.embedding_dim, name="embedding", dtype=dtype)(inputs)
    last = len(config.lstm_units) - 1
    for i, units in enumerate(config.lstm_units):
        x = layers.LSTM(units, return_sequences=i < last, recurrent_dropout=config.recurrent_dropout,
                        name=f"lstm_{i + 1}", dtype=dtype)(x)
    x = layers.BatchNormalization(dtype=dtype)(x)
    x = layers.Dropout(config.dropout, dtype=dtype)(x)
    x = layers.Dense(config.dense_units, activation="relu", dtype=dtype)(x)
    x = layers.BatchNormalization(dtype=dtype)(x)
    x = layers.Dropout(config.dropout, dtype=dtype)(x)
    outputs = layers.Dense(vocab_size, activation="softmax", name="next_token", dtype="float32")(x)
    return tf.keras.Model(inputs, outputs, name=f"lstm_composer_{config.name}")


def loss_name(config: ModelConfig) -> str:
    return ("sparse_categorical_crossentropy" if config.sparse_targets
            else "categorical_crossentropy")


class Decoder:
    """A trained network as a step function in NumPy: one token in, the next token's
    probabilities out, each LSTM's state carried from one step to the next.

    It walks the network's layers in order with their trained weights and the arithmetic of
    Keras in inference mode (dropout off, BatchNorm with its moving statistics), so feeding it
    a window token by token gives what the network gives for that window; the tests check it.
    A step costs one small matrix product per layer instead of a whole window through Keras.
    """

    def __init__(self, network, config: ModelConfig, vocab_size: int):
        import tensorflow as tf

        layers = tf.keras.layers
        self.vocab_size = vocab_size
        self.embedding = None
        self.stages: list[tuple] = []  # ("lstm", W, U, b) / ("affine", scale, shift) / ("dense", W, b, activation)
        for layer in network.layers:
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            if isinstance(layer, (layers.InputLayer, layers.Dropout)):
                continue
            if isinstance(layer, layers.Embedding):
                self.embedding = weights[0]
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
        if config.input_encoding == "embedding" and self.embedding is None:
            raise ValueError("the config says embedding input but the network has no Embedding layer")

    def initial_state(self) -> tuple:
        """Zero state: what the network starts every window from."""
        return tuple((np.zeros(W.shape[1] // 4, np.float32), np.zeros(W.shape[1] // 4, np.float32))
                     for kind, W, *_ in self.stages if kind == "lstm")

    def step(self, token_id: int, state: tuple) -> tuple[np.ndarray, tuple]:
        """Feed one token; return the next token's probabilities (float64) and the new state.
        `state` is not changed, so one primed state can start several continuations."""
        if self.embedding is None:
            x = np.array([token_id / self.vocab_size], np.float32)
        else:
            x = self.embedding[token_id]
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
        return x.astype(np.float64), tuple(new_state)

    def prime(self, token_ids, state: tuple | None = None) -> tuple[np.ndarray, tuple]:
        """Feed a sequence; the probabilities after its last token and the state."""
        state = self.initial_state() if state is None else state
        probabilities = None
        for token_id in token_ids:
            probabilities, state = self.step(int(token_id), state)
        return probabilities, state


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # the logistic function, without overflow warnings


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "softmax": _softmax, "linear": lambda x: x}
