"""How a piece ends: after a given number of bars, on its tonic, held; after a number of
tokens, at a bar line.

`with_ending` keeps the bars before the last, ends every note that would sound into the last bar
at its bar line, and gives the last bar to one chord held throughout: the key's tonic in the
bass, the triad and the tonic's octave above. The key is the one asked for (`--key`) or the one
that fits the piece's notes best as a piano sounds them (Krumhansl-Kessler, `form.key_scores`):
a note the network holds on under its own repetitions counts only until it is struck again,
as the MIDI file plays it.

`at_a_bar_line` ends a piece that stops after a number of tokens: the network's last notes may
be of any length it knows (up to 64 quarters), and a chord struck last and held that long would
be written as a score of tied bars with nothing new in them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from lstm_composer.events import Event
from lstm_composer.form import key_scores, pitch_class_weights
from lstm_composer.tokens import token_for

THIRDS = (4, 3)  # above the tonic: major, minor
BASS_OCTAVE, CHORD_OCTAVE = 36, 48  # the tonic in the bass from C2 to B2, the triad from C3 to B3 up


def piece_key(events: Sequence[Event]) -> int:
    """The key (`form.KEY_NAMES`) that fits the notes best, as they sound (a note held under its
    own repetitions counted until the next)."""
    return int(np.argmax(key_scores(pitch_class_weights(events, as_played=True))))


def tonic_chord(key: int) -> tuple[int, ...]:
    """The last chord: the tonic in the bass, then the triad and the tonic an octave above its root."""
    root = CHORD_OCTAVE + key % 12
    return BASS_OCTAVE + key % 12, root, root + THIRDS[key // 12], root + 7, root + 12


def with_ending(events: Sequence[Event], bar_quarters: float, bars: int, key: int | None = None) -> list[Event]:
    """`bars` bars from offset 0: the events of the first `bars - 1`, none sounding past them, and
    the tonic chord held through the last, as loud as the bar before it on average."""
    last_bar = (bars - 1) * bar_quarters
    kept = until(events, last_bar)
    key = piece_key(kept or events) if key is None else key
    before = [e.velocity for e in kept if e.offset >= last_bar - bar_quarters] or [e.velocity for e in events] or [64]
    chord = tonic_chord(key)
    return kept + [Event(token_for(chord), last_bar, bar_quarters, int(np.median(before)), chord)]


def at_a_bar_line(events: Sequence[Event], bar_quarters: float) -> list[Event]:
    """The events, none sounding past the first bar line at least half a bar after the last
    onset: the last notes ring for half a bar to a bar and a half, and the piece ends on a
    bar line."""
    last = max((e.offset for e in events), default=0.0)
    return until(events, np.ceil(round(last / bar_quarters + 0.5, 9)) * bar_quarters)


def until(events: Sequence[Event], end: float) -> list[Event]:
    """The events struck before `end` (quarters), none sounding past it."""
    return [replace(e, duration=min(e.duration, end - e.offset)) for e in events if e.offset < end]
