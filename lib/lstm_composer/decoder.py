"""A trained network as a step function in NumPy, for generation.

One position in (the token, and for an expressive model its onset gap, duration, velocity,
bass and beat phase), the next position's probabilities out (one array per head), the LSTM
states and the pointer's memory carried to the next step. It uses the network's trained
weights and the arithmetic of Keras in inference mode (dropout off, BatchNorm with its moving
statistics), so feeding it a window step by step gives what the network gives for that
window: `tests/test_decoder.py` checks every layer of every preset's network. A step costs
one small matrix product per layer instead of a whole window through Keras.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from lstm_composer.model import CHOSEN_TOKEN, TOKEN_LOGITS, Pointer, embedding_name, head_name
from lstm_composer.presets import ModelConfig

layers = tf.keras.layers
_SKIPPED = (layers.InputLayer, layers.Dropout, layers.Concatenate)  # nothing to compute in inference


class DecoderState(NamedTuple):
    """What a `Decoder` carries from one position to the next."""

    lstm: tuple  # (h, c) per LSTM
    keys: np.ndarray  # the pointer's keys of earlier positions whose next token is known
    values: np.ndarray  # the token that followed each of those positions
    pending_key: np.ndarray | None  # the last position's key, waiting for its next token
    features: np.ndarray | None  # the last position's features before the heads (for those that see the token)
    history: np.ndarray  # the tokens fed so far (for the pointer's motif matches)


class Decoder:
    """The network of `config` as a NumPy step function. A head that sees the token chosen
    for its position (the bass head; with `config.given_token` the onset gap, duration and
    velocity heads too) is left out by `step`: `given` and `bass_probabilities` give them
    once the token is drawn. `read` names every layer whose weights it took."""

    def __init__(self, network, config: ModelConfig, vocab_size: int):
        self.vocab_size, self.config = vocab_size, config
        self.span = config.sequence_length - 1
        self.lstms: list[tuple] = []  # (W, U, b) per LSTM
        self.trunk: list[tuple] = []  # ("affine", scale, shift) / ("dense", W, b, activation), after the LSTMs
        self.pointer = None
        self.read: set[str] = set()
        embeddings, heads = {}, {}
        head_layers = {head_name(name) for name in config.heads} | {TOKEN_LOGITS}
        for layer in network.layers:
            if isinstance(layer, _SKIPPED):
                continue
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            if isinstance(layer, layers.Embedding):
                embeddings[layer.name] = weights[0]
            elif isinstance(layer, Pointer):
                self.pointer = self._pointer_weights(weights)
            elif isinstance(layer, layers.Dense) and layer.name in head_layers:
                heads[layer.name] = (weights[0], weights[1])
            else:
                self._trunk_layer(layer, weights)
            self.read.add(layer.name)
        self._take(embeddings, heads)

    def _pointer_weights(self, weights: list[np.ndarray]) -> tuple:
        query, key, sentinel, sentinel_bias, motif, *lag = weights
        lag = lag[0] if lag else np.zeros(1, np.float32)  # an older model has no weights per distance
        # one weight per distance span .. 1, the order of the keys (a distance past the last
        # weight shares it, as in Keras)
        lag = np.concatenate([lag, np.repeat(lag[-1:], max(self.span - len(lag), 0))])[:self.span]
        return query, key, sentinel, float(sentinel_bias), motif, lag[::-1].copy()

    def _trunk_layer(self, layer, weights: list[np.ndarray]) -> None:
        if isinstance(layer, layers.LSTM):
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

    def _take(self, embeddings: dict, heads: dict) -> None:
        """The embeddings and heads in the order of the config's attributes, checked against it."""
        config = self.config
        if config.expressive or config.input_encoding != "scalar":
            names = [embedding_name(name, config) for name in (config.attributes if config.expressive else ["token"])]
        else:
            names = []  # the paper's scalar input
        head_names = [TOKEN_LOGITS if config.pointer else head_name("token")] + [head_name(n) for n in config.heads[1:]]
        expected = set(names) | ({embedding_name(CHOSEN_TOKEN, config)} if config.chosen_input else set())
        if expected != set(embeddings) or set(head_names) != set(heads) or (config.pointer and self.pointer is None):
            raise ValueError(f"the network's embeddings {sorted(embeddings)} and heads {sorted(heads)} are not "
                             f"those of a {config.name} model")
        self.embeddings = [embeddings[name] for name in names]
        given = set(head_names[1:]) - {head_name("bass")} if config.given_token else set()
        self.heads = [heads[name] for name in head_names if name != head_name("bass") and name not in given]
        self.given_heads = [heads[name] for name in head_names if name in given]
        self.bass_head = heads.get(head_name("bass"))
        self.chosen_embedding = embeddings.get(embedding_name(CHOSEN_TOKEN, config))
        if self.given_heads:  # the onset gap's logits that each token adds, the same at every step
            W, b = self.given_heads[0]
            self.gap_logits_by_token = self.chosen_embedding @ W[W.shape[0] - self.chosen_embedding.shape[1]:] + b

    def initial_state(self) -> DecoderState:
        """Zero state and an empty memory: what the network starts every window from."""
        zeros = tuple((np.zeros(U.shape[0], np.float32), np.zeros(U.shape[0], np.float32)) for _, U, _ in self.lstms)
        keys = np.zeros((0, self.pointer[1].shape[1] if self.pointer else 0), np.float32)
        return DecoderState(zeros, keys, np.zeros(0, np.int64), None, None, np.zeros(0, np.int64))

    def step(self, position, state: DecoderState) -> tuple[list[np.ndarray], DecoderState]:
        """Feed one position (a token id, or a sequence of one id per input); return the next
        position's probabilities, one float64 array per head (those that see the chosen token
        aside: `given`), and the new state. `state` is not changed, so one primed state can
        start several continuations."""
        ids = np.atleast_1d(position)
        if self.embeddings:
            x = np.concatenate([table[i] for table, i in zip(self.embeddings, ids)])
        else:
            x = np.array([ids[0] / self.vocab_size], np.float32)
        lstm = []
        for (W, U, b), (h, c) in zip(self.lstms, state.lstm):
            h, c = _lstm_step(x @ W + h @ U + b, c)
            lstm.append((h, c))
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
        if self.pointer is None:
            outputs[0], pointer_state = _softmax(outputs[0]), (state.keys, state.values, None, state.history)
        else:
            outputs[0], pointer_state = self._point(memory, outputs[0], int(ids[0]), state)
        probabilities = [outputs[0].astype(np.float64)] + [_softmax(o).astype(np.float64) for o in outputs[1:]]
        keys, values, pending, history = pointer_state
        return probabilities, DecoderState(tuple(lstm), keys, values, pending, x, history)

    def _point(self, memory: np.ndarray, logits: np.ndarray, token: int, state: DecoderState):
        """`Pointer.call` at one position: (the token probabilities, the pointer's new memory)."""
        query_weights, key_weights, sentinel, sentinel_bias, motif, by_distance = self.pointer
        keys, values, history = state.keys, state.values, np.append(state.history, token)
        if state.pending_key is not None:  # the previous position's key now knows the token that followed it
            keys, values = np.vstack([keys, state.pending_key[None]]), np.append(values, token)
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
        shares = _softmax(np.append(scores, query @ sentinel + sentinel_bias))
        probabilities = shares[-1] * _softmax(logits)
        np.add.at(probabilities, values, shares[:-1])
        return probabilities, (keys, values, memory @ key_weights, history)

    def given(self, state: DecoderState, token: int) -> list[np.ndarray]:
        """The onset gap's, duration's and velocity's probabilities for the next position once its
        token is chosen, for a network whose heads see it (`config.given_token`); none otherwise
        (`step` gave them)."""
        features = np.concatenate([state.features, self.chosen_embedding[token]]) if self.given_heads else None
        return [_softmax(features @ W + b).astype(np.float64) for W, b in self.given_heads]

    def gaps_of_every_token(self, state: DecoderState) -> np.ndarray:
        """(tokens, onset gap classes): the onset gap's probabilities for the next position,
        given each token of the vocabulary in turn (`config.given_token`)."""
        W = self.given_heads[0][0]
        logits = state.features @ W[:len(state.features)] + self.gap_logits_by_token
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        return odds / odds.sum(axis=1, keepdims=True)

    def bass_probabilities(self, state: DecoderState, token: int) -> np.ndarray:
        """The bass head's probabilities for the next position, once its token is chosen."""
        if self.bass_head is None:
            raise ValueError("this network has no bass head")
        W, b = self.bass_head
        features = np.concatenate([state.features, self.chosen_embedding[token]])
        return _softmax(features @ W + b).astype(np.float64)

    def prime(self, positions, state: DecoderState | None = None) -> tuple[list[np.ndarray], DecoderState]:
        """Feed a sequence of positions; the probabilities after the last one and the state."""
        state = self.initial_state() if state is None else state
        probabilities = None
        for position in positions:
            probabilities, state = self.step(position, state)
        return probabilities, state


def _lstm_step(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras's LSTM cell (gates i, f, g, o; tanh and sigmoid) from its summed inputs `z`."""
    units = c.shape[0]
    i, f = _sigmoid(z[:units]), _sigmoid(z[units:2 * units])
    g, o = np.tanh(z[2 * units:3 * units]), _sigmoid(z[3 * units:])
    c = f * c + i * g
    return o * np.tanh(c), c


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # the logistic function, without overflow warnings


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "softmax": _softmax, "linear": lambda x: x}


class Guided:
    """A `Decoder` of a network with a style input, steered towards the style it is told
    (classifier-free guidance): each head's log-probabilities are (1 + weight) x those told the
    style − weight x those told none (label 0), renormalised, so what the style changes is
    pushed further. The network must have trained on windows told no style too
    (`dataset.UNLABELLED_SHARE`). It carries two states, told and untold, and costs two steps a
    position; positions told no style give the plain network's probabilities."""

    def __init__(self, decoder: Decoder, weight: float):
        self.decoder, self.weight = decoder, weight
        self.style = decoder.config.attributes.index("style")
        self.config, self.given_heads, self.bass_head = decoder.config, decoder.given_heads, decoder.bass_head

    def _guided(self, told: np.ndarray, untold: np.ndarray) -> np.ndarray:
        logs = (1 + self.weight) * np.log(np.maximum(told, 1e-300)) - self.weight * np.log(np.maximum(untold, 1e-300))
        odds = np.exp(logs - logs.max(axis=-1, keepdims=True))
        return odds / odds.sum(axis=-1, keepdims=True)

    def initial_state(self) -> tuple[DecoderState, DecoderState]:
        return self.decoder.initial_state(), self.decoder.initial_state()

    def step(self, position, state: tuple[DecoderState, DecoderState]) -> tuple[list[np.ndarray], tuple]:
        """`Decoder.step` told the position's style and told none; their guided probabilities."""
        ids = np.array(np.atleast_1d(position))
        told, told_state = self.decoder.step(ids, state[0])
        if ids[self.style] == 0:
            return told, (told_state, told_state)
        ids[self.style] = 0
        untold, untold_state = self.decoder.step(ids, state[1])
        return [self._guided(a, b) for a, b in zip(told, untold)], (told_state, untold_state)

    prime = Decoder.prime  # each position through `step`, from `initial_state` unless given a state

    def given(self, state: tuple, token: int) -> list[np.ndarray]:
        return [self._guided(a, b) for a, b in zip(*(self.decoder.given(s, token) for s in state))]

    def gaps_of_every_token(self, state: tuple) -> np.ndarray:
        return self._guided(*(self.decoder.gaps_of_every_token(s) for s in state))

    def bass_probabilities(self, state: tuple, token: int) -> np.ndarray:
        return self._guided(*(self.decoder.bass_probabilities(s, token) for s in state))


def style_evidence(decoder: Decoder, before: np.ndarray, positions: np.ndarray) -> float:
    """How much more likely the network finds `positions` told their style than told none, in
    nats per position over every head (the token, its rhythm, loudness and bass): its own
    judgement of how much they are in the style (by Bayes, log p(style | positions) − log
    p(style), for a network trained on windows told no style too). `before`: the positions fed
    before them, of which the last window is fed. Every row is a position as fed to the network
    (its heads' ids in the order they are drawn, then what the conductor tells it), the style
    among them."""
    column = decoder.config.attributes.index("style")
    rows = np.concatenate([before[-decoder.config.sequence_length:], positions])
    untold = rows.copy()
    untold[:, column] = 0
    scored = len(positions)
    return (_log_likelihood(decoder, rows, scored) - _log_likelihood(decoder, untold, scored)) / scored


def _log_likelihood(decoder: Decoder, rows: np.ndarray, scored: int) -> float:
    """The network's log-probability of every head's id in the last `scored` rows, after the rows before them."""
    probabilities, state = decoder.prime(rows[:-scored])
    total = 0.0
    for row in rows[-scored:]:
        token = int(row[0])
        heads = probabilities + decoder.given(state, token)
        if decoder.bass_head is not None:
            heads.append(decoder.bass_probabilities(state, token))
        total += sum(np.log(max(float(p[i]), 1e-300)) for p, i in zip(heads, row))
        probabilities, state = decoder.step(row, state)
    return total
