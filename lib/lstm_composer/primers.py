"""What generation starts from: a user's MIDI file, or a window of a training piece as the paper did."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lstm_composer import storage
from lstm_composer.dataset import window_starts
from lstm_composer.events import Event
from lstm_composer.expression import Expression, beat_phase
from lstm_composer.form import KEY_NAMES, transposed_key, window_key_labels
from lstm_composer.metre import Metre, bar_beat, bar_offset, bar_positions, metre_at, metre_of_bar, phrase_bar
from lstm_composer.piece import PieceRow, parse_piece
from lstm_composer.presets import ModelConfig
from lstm_composer.tables import TokenStream
from lstm_composer.tokens import Token, Vocabulary, transpose_token


class GenerationError(ValueError):
    """Generation cannot give what was asked for; the message says what to change."""


class Placement(NamedTuple):
    """Where a primer's last onset falls: what generation goes on from."""

    phase: int  # in its beat (`beat_phase`)
    bar: int = 0  # its bar, from the start of its piece
    bar_position: int = 0  # where in that bar, in beat phases
    metre: Metre = Metre(4, 4)  # of that bar
    key: int = 0  # of the passage it ends (`form.KEY_NAMES`)
    style: int = 0  # the network is told (`ModelConfig.styles`, from 1; 0: none)


@dataclass(frozen=True)
class Primer:
    """What generation starts from."""

    source: str  # "file" or "training window"
    tokens: list[str]  # fed to the network before the first new token
    detail: dict  # the file and the tokens skipped, or the piece and position
    attributes: np.ndarray | None = None  # (tokens, attributes - 1): the classes after each token, if any
    events: list[Event] | None = None  # a file's tokens as played in it
    last: Placement | None = None  # where its last onset falls, when known

    def positions(self, vocabulary: Vocabulary) -> np.ndarray:
        """What the network is fed, one row per token: its id, then its classes and places, if any."""
        ids = np.array(vocabulary.encode(self.tokens), dtype=np.int32)[:, None]
        return ids if self.attributes is None else np.concatenate([ids, self.attributes], axis=1)


def read_file(path: str, onset_tolerance_ms: float | None = None) -> tuple[PieceRow, list[Token], bytes]:
    """A user's MIDI file: its `pieces` row and tokens, by the parse job's own code with the same
    onset grouping (`onset_tolerance_ms`, None: auto), and its bytes."""
    try:
        content = storage.read_bytes(path)
    except OSError as error:
        raise GenerationError(f"cannot read the primer {path}: {error.strerror or error}") from None
    piece, tokens = parse_piece(path, content, onset_tolerance_ms=onset_tolerance_ms)
    if piece.status != "ok":
        raise GenerationError(f"the primer {path} has no notes to start from: {piece.error}")
    return piece, tokens, content


def primer_from_file(path: str, vocabulary: Vocabulary, expression: Expression | None = None,
                     onset_tolerance_ms: float | None = None, tempo: float = 120.0,
                     config: ModelConfig | None = None, style: int = 0) -> Primer:
    """A user's MIDI file (`read_file`) as a primer (`primer_from_tokens`)."""
    piece, tokens, _ = read_file(path, onset_tolerance_ms)
    return primer_from_tokens(path, piece, tokens, vocabulary, expression, tempo, config, style)


def primer_from_tokens(path: str, piece: PieceRow, tokens: list[Token], vocabulary: Vocabulary,
                       expression: Expression | None = None, tempo: float = 120.0,
                       config: ModelConfig | None = None, style: int = 0) -> Primer:
    """The tokens of the file at `path` as a primer; tokens the model never saw are skipped and
    reported. For a model whose rhythm is in seconds, its events are placed for an output at
    `tempo`. With an expression, each token gets the classes and places `config.attributes`
    name (by the file's time signatures, in `style`), or just its onset gap, duration and
    velocity classes without a config."""
    kept = [t for t in tokens if t.token in vocabulary.index]
    skipped = sorted({t.token for t in tokens if t.token not in vocabulary.index})
    if not kept:
        raise GenerationError(f"none of the {len(tokens)} tokens of the primer {path} is in the model's "
                              f"vocabulary (e.g. {', '.join(skipped[:5])})")
    classes = last = None
    offsets, durations = np.array([t.offset for t in kept]), np.array([t.duration for t in kept])
    if expression:
        timing = expression.timing(offsets, durations, piece.tempos)  # by the file's tempo map
        classes, last = _file_attributes(kept, config, expression, timing, piece.time_signatures, style)
        offsets, durations = (expression.quarters(values, tempo) for values in timing)
    # The bars before the first note's left out, so that the notes stay where they fall in their
    # bars; a rhythm in seconds has no bar to keep.
    if expression and expression.unit == "seconds":
        offsets = offsets - offsets[0]
    else:
        first_bar = int(bar_positions(offsets[:1], piece.time_signatures)[0][0])
        offsets = offsets - bar_offset(piece.time_signatures, first_bar)
    events = [Event(t.token, float(offset), max(float(duration), 1e-3), max(1, min(127, t.velocity)),
                    tuple(t.pitches)) for t, offset, duration in zip(kept, offsets, durations)]
    return Primer("file", [t.token for t in kept], {"path": path, "tokens": len(tokens),
                                                    "skipped": len(tokens) - len(kept), "skipped_tokens": skipped},
                  classes, events, last)


def _file_attributes(kept: list, config: ModelConfig | None, expression: Expression, timing: tuple,
                     time_signatures, style: int = 0) -> tuple[np.ndarray, Placement]:
    """The classes and places of a file's tokens after the token itself (the columns of
    `config.attributes` from the second on), and where its last onset falls."""
    offsets = np.array([t.offset for t in kept])
    columns = [expression.classes(*timing, np.array([t.velocity for t in kept]))]
    phases = beat_phase(offsets, expression.phases)
    bars, positions = bar_positions(offsets, time_signatures)
    durations = np.array([t.duration for t in kept])
    notes = [(i, p) for i, t in enumerate(kept) for p in t.pitches]
    keys = window_key_labels(offsets, durations, np.array([i for i, _ in notes]), np.array([p for _, p in notes]),
                             np.array([0]))
    told = config.attributes[4:] if config else ()
    if "bass" in told:
        columns.append(np.array([[min(t.pitches)] for t in kept]))
    if "phase" in told:
        columns.append(phases[:, None])
    if "bar_beat" in told:
        columns += [bar_beat(positions)[:, None], phrase_bar(bars)[:, None]]
    if "key" in told:
        columns.append(keys[:, None])
    if "style" in told:
        columns.append(np.full((len(kept), 1), style))
    last = Placement(int(phases[-1]), int(bars[-1]), int(positions[-1]), metre_at(time_signatures, offsets[-1]),
                     int(keys[-1]), style)
    return np.concatenate(columns, axis=1).astype(np.int32), last


def primer_from_corpus(stream: TokenStream, vocabulary: Vocabulary, config: ModelConfig,
                       rng: np.random.Generator, held_out: tuple[str, ...] = (),
                       time_signatures: dict[str, list] | None = None, key: int | None = None,
                       style: int = 0, gaps: np.ndarray | None = None) -> Primer:
    """A window of `sequence_length` tokens drawn by `rng` from the training pieces, as the
    paper did: never from the pieces the training run held out (`held_out`), which evaluation
    keeps for comparing generated pieces with music the network never saw. `time_signatures`:
    each piece's, for a network told where in its bar each onset falls. With `key`, a window
    that ends in a key of its mode (major, minor), transposed into `key`. With `style`, a window
    of a piece of that style (`ModelConfig.styles`, from 1). With `gaps` (each onset gap class's
    length), a window is drawn by the time it spans: a moment of the corpus, not a token, so
    that busy passages, which hold more tokens, are not drawn more often than they last."""
    length = config.sequence_length
    pieces = {piece for piece, label in stream.piece_styles().items() if not style or label == style}
    starts = window_starts(stream, length, pieces - set(held_out))
    if not len(starts):
        raise GenerationError(f"no training piece of the corpus{' in that style' if style else ''} is longer than "
                              f"{length} tokens")
    if key is None:
        start, shift = int(rng.choice(starts, p=moments(stream, starts, length, gaps))), 0
        tokens = vocabulary.decode(stream.ids[start:start + length])
    else:
        start, shift, tokens = window_in_key(stream, vocabulary, starts, length, key, rng, gaps)
    piece = int(np.searchsorted(stream.bounds, start, side="right")) - 1
    classes = transposed_attributes(stream.attributes(config)[start:start + length], config, shift)[:, 1:] \
        if config.expressive else None
    end, last = start + length - 1, None
    if stream.phase is not None:
        bar = int(stream.bar[end]) if stream.bar is not None else 0
        last = Placement(int(stream.phase[end]), bar, int(stream.bar_position[end]) if stream.bar is not None else 0,
                         metre_of_bar((time_signatures or {}).get(stream.piece_ids[piece]), bar),
                         int(transposed_key(stream.key[end], shift)) if stream.key is not None else 0,
                         int(stream.style[end]) if stream.style is not None else 0)
    return Primer("training window", tokens, {"piece_id": stream.piece_ids[piece],
                                              "position": start - int(stream.bounds[piece]), "transposed": shift},
                  classes, last=last)


def moments(stream: TokenStream, starts: np.ndarray, length: int, gaps: np.ndarray | None) -> np.ndarray | None:
    """The chance of drawing each window of `starts`: by the time it spans (its onset gaps, by
    `gaps`, each class's length), or evenly (None) without gaps."""
    if gaps is None or stream.expression is None:
        return None
    elapsed = np.concatenate([[0.0], np.cumsum(np.asarray(gaps)[stream.expression[:, 0]])])
    spans = np.maximum(elapsed[starts + length] - elapsed[starts + 1], 1e-3)
    return spans / spans.sum()


def window_in_key(stream: TokenStream, vocabulary: Vocabulary, starts: np.ndarray, length: int, key: int,
                  rng: np.random.Generator, gaps: np.ndarray | None = None) -> tuple[int, int, list[str]]:
    """(start, semitones, tokens): a window that ends in a key of `key`'s mode, drawn by `rng`,
    and its tokens moved by the semitones (-6 to 5) that bring that key to `key`."""
    if stream.key is None:
        raise GenerationError("this model was not told its key (a preset without the key input): --key needs "
                              "one that was, such as small or expressive")
    starts = starts[stream.key[starts + length - 1] // 12 == key // 12]
    drawn = rng.choice(starts, min(64, len(starts)), replace=False, p=moments(stream, starts, length, gaps)) \
        if len(starts) else starts
    for start in drawn:
        shift = (key % 12 - int(stream.key[start + length - 1]) + 6) % 12 - 6
        tokens = [transpose_token(token, shift) for token in vocabulary.decode(stream.ids[start:start + length])]
        if all(token in vocabulary.index for token in tokens):
            return int(start), shift, tokens
    raise GenerationError(f"no training window moves into {KEY_NAMES[key]} with tokens the model knows")


def transposed_attributes(rows: np.ndarray, config: ModelConfig, shift: int) -> np.ndarray:
    """A window's attribute rows (`TokenStream.attributes`) with its bass and key moved by `shift`
    semitones (the token column is left as it was)."""
    rows = rows.copy()
    names = config.attributes
    if "bass" in names:
        rows[:, names.index("bass")] += shift
    if "key" in names:
        rows[:, names.index("key")] = transposed_key(rows[:, names.index("key")], shift)
    return rows
