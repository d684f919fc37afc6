"""The stacked-LSTM network, built from a `ModelConfig`."""
from __future__ import annotations

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
