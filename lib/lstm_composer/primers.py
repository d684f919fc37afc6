"""What generation starts from: a user's MIDI file, or a window of a training piece as the paper did."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_composer import storage
from lstm_composer.dataset import window_starts
from lstm_composer.events import Event
from lstm_composer.expression import Expression, beat_phase
from lstm_composer.piece import parse_piece
from lstm_composer.presets import ModelConfig
from lstm_composer.tables import TokenStream
from lstm_composer.tokens import Vocabulary


class GenerationError(ValueError):
    """Generation cannot give what was asked for; the message says what to change."""


@dataclass(frozen=True)
class Primer:
    """What generation starts from."""

    source: str  # "file" or "training window"
    tokens: list[str]  # fed to the network before the first new token
    detail: dict  # the file and the tokens skipped, or the piece and position
    attributes: np.ndarray | None = None  # (tokens, attributes - 1): the classes after each token, if any
    events: list[Event] | None = None  # a file's tokens as played in it
    last_phase: int | None = None  # where in its beat the last token falls (`beat_phase`), when known


def primer_from_file(path: str, vocabulary: Vocabulary, expression: Expression | None = None,
                     onset_tolerance_ms: float | None = None, tempo: float = 120.0,
                     bass: bool = False, phase: bool = False) -> Primer:
    """A user's MIDI file, tokenized by the parse job's own code with the same onset grouping
    (`onset_tolerance_ms`, None: auto); tokens the model never saw are skipped and reported.
    For a model whose rhythm is in seconds, its events are placed for an output at `tempo`.
    With `bass` and `phase`, each token's lowest pitch and beat phase are attributes too."""
    try:
        content = storage.read_bytes(path)
    except OSError as error:
        raise GenerationError(f"cannot read the primer {path}: {error.strerror or error}") from None
    piece, tokens = parse_piece(path, content, onset_tolerance_ms=onset_tolerance_ms)
    if piece.status != "ok":
        raise GenerationError(f"the primer {path} has no notes to start from: {piece.error}")
    kept = [t for t in tokens if t.token in vocabulary.index]
    skipped = sorted({t.token for t in tokens if t.token not in vocabulary.index})
    if not kept:
        raise GenerationError(f"none of the {len(tokens)} tokens of the primer {path} is in the model's "
                              f"vocabulary (e.g. {', '.join(skipped[:5])})")
    classes = last_phase = None
    offsets, durations = np.array([t.offset for t in kept]), np.array([t.duration for t in kept])
    if expression:
        timing = expression.timing(offsets, durations, piece.tempos)  # by the file's tempo map
        classes = expression.classes(*timing, np.array([t.velocity for t in kept]))
        phases = beat_phase(offsets, expression.phases)
        last_phase = int(phases[-1])
        if bass:
            classes = np.concatenate([classes, [[min(t.pitches)] for t in kept]], axis=1).astype(np.int32)
        if phase:
            classes = np.concatenate([classes, phases[:, None]], axis=1)
        offsets, durations = (expression.quarters(values, tempo) for values in timing)
    # Whole beats off the front, so that the notes stay where they fall in the beat; a rhythm in
    # seconds has no beat to keep.
    offsets = offsets - (offsets[0] if expression and expression.unit == "seconds" else np.floor(offsets[0]))
    events = [Event(t.token, float(offset), max(float(duration), 1e-3), max(1, min(127, t.velocity)),
                    tuple(t.pitches)) for t, offset, duration in zip(kept, offsets, durations)]
    return Primer("file", [t.token for t in kept], {"path": path, "tokens": len(tokens),
                                                    "skipped": len(tokens) - len(kept), "skipped_tokens": skipped},
                  classes, events, last_phase)


def primer_from_corpus(stream: TokenStream, vocabulary: Vocabulary, config: ModelConfig,
                       rng: np.random.Generator, held_out: tuple[str, ...] = ()) -> Primer:
    """A window of `sequence_length` tokens drawn by `rng` from the training pieces, as the
    paper did: never from the pieces the training run held out (`held_out`), which evaluation
    keeps for comparing generated pieces with music the network never saw."""
    length = config.sequence_length
    starts = window_starts(stream, length, set(stream.piece_ids) - set(held_out))
    if not len(starts):
        raise GenerationError(f"no training piece of the corpus is longer than {length} tokens")
    start = int(starts[rng.integers(len(starts))])
    piece = int(np.searchsorted(stream.bounds, start, side="right")) - 1
    classes = stream.attributes(config)[start:start + length, 1:] if config.expressive else None
    return Primer("training window", vocabulary.decode(stream.ids[start:start + length]),
                  {"piece_id": stream.piece_ids[piece], "position": start - int(stream.bounds[piece])}, classes,
                  last_phase=None if stream.phase is None else int(stream.phase[start + length - 1]))
