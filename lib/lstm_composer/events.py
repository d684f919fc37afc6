"""Tokens as played: `Event`, a token with when it starts, how long it lasts and how loud it is.

Generation makes events (`play`); every renderer (`lstm_composer.render`) reads them.
`fixed_step` gives a bare list of tokens the paper's timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lstm_composer.expression import Expression
from lstm_composer.tokens import token_pitches

PAPER_STEP = 0.5  # quarter lengths between tokens, as the paper wrote them
DEFAULT_VELOCITY = 80


@dataclass(frozen=True)
class Event:
    """One token as played."""

    token: str
    offset: float  # quarter lengths from the start
    duration: float  # quarter lengths (> 0)
    velocity: int  # 1..127
    voiced: tuple[int, ...] | None = None  # the MIDI pitches to play; None: the token's own (chords from C4)

    def __post_init__(self) -> None:
        token_pitches(self.token)  # a malformed token fails here, not deep inside a writer
        if self.voiced is not None and (not self.voiced or not all(0 <= p <= 127 for p in self.voiced)):
            raise ValueError(f"{self.token} at offset {self.offset}: voiced as {self.voiced}, not MIDI pitches")
        if self.offset < 0:
            raise ValueError(f"{self.token} at offset {self.offset}: offsets start at 0")
        if not self.duration > 0:
            raise ValueError(f"{self.token} at offset {self.offset}: duration {self.duration} is not positive")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"{self.token} at offset {self.offset}: velocity {self.velocity} is outside 1..127")

    @property
    def pitches(self) -> list[int]:
        """The MIDI pitches that sound, lowest first: what every renderer plays or writes."""
        return sorted(self.voiced) if self.voiced is not None else token_pitches(self.token)


def fixed_step(tokens: Sequence[str], step: float = PAPER_STEP, velocity: int = DEFAULT_VELOCITY) -> list[Event]:
    """The paper's timing: every token `step` apart, each lasting `step`, all equally loud."""
    return [Event(token, i * step, step, velocity) for i, token in enumerate(tokens)]


def play(tokens: list[str], classes: np.ndarray | None, expression: Expression | None,
         after: float | None, voicing: list[tuple[int, ...]], tempo: float = 120.0,
         first_onset: float = 0.0) -> list[Event]:
    """Generated tokens as events, after an onset at `after` (None: the first token opens the
    piece, `first_onset` quarters in), each with its pitches from `voicing`: their own timing
    and loudness when the model has heads for them, the paper's fixed step otherwise. A rhythm
    in seconds is placed for an output at `tempo`."""
    if expression is None or classes is None:
        start = 0.0 if after is None else after + PAPER_STEP
        return [Event(e.token, start + e.offset, e.duration, e.velocity, pitches)
                for e, pitches in zip(fixed_step(tokens), voicing)]
    offsets = expression.quarters(np.cumsum([expression.ioi[c] for c in classes[:, 0]]), tempo)
    offsets = offsets - offsets[0] + first_onset if after is None else offsets + after
    durations = expression.quarters([expression.duration[d] for d in classes[:, 1]], tempo)
    return [Event(token, float(offset), float(duration), expression.velocity[v], pitches)
            for token, offset, duration, (_, _, v, *_), pitches in zip(tokens, offsets, durations, classes, voicing)]
