"""Tokens as played: `Event`, a token with when it starts, how long it lasts and how loud it is.

Generation makes events; every renderer (`lstm_composer.render`) reads them. `fixed_step`
gives a bare list of tokens the paper's timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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
