"""Bars: where each onset falls in its bar and which bar it is, from a piece's time signatures.

A time signature holds from its offset to the next one; a bar starts where one begins (a change
in the middle of a bar starts a new one), and a piece without any is in 4/4. Positions are in
`PHASES` steps per quarter note, as the beat phase is. What the network is told of its place in
the form: the quarter of the bar an onset falls in (`bar_beat`, at most BAR_BEATS), and the bar's
place in a phrase of PHRASE_BARS bars (`phrase_bar`).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple, Sequence

import numpy as np

from lstm_composer.expression import PHASES

BAR_BEATS = 8  # quarters of a bar the network tells apart; a longer bar's later ones share the last
PHRASE_BARS = 4  # bars of a phrase
DEFAULT = "4/4"


class Metre(NamedTuple):
    numerator: int
    denominator: int

    @classmethod
    def parse(cls, text: str) -> "Metre":
        """`3/4` → Metre(3, 4); anything that is not a time signature a score can hold is refused."""
        try:
            numerator, denominator = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"{text!r} is not a time signature such as 3/4 or 6/8") from None
        if not 1 <= numerator <= 32 or denominator not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"{text!r} is not a time signature such as 3/4 or 6/8")
        return cls(numerator, denominator)

    @property
    def quarters(self) -> Fraction:
        return Fraction(4 * self.numerator, self.denominator)

    @property
    def steps(self) -> int:
        """The bar's length in PHASES steps per quarter (rounded up to a whole step)."""
        return math.ceil(self.quarters * PHASES)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def metres(time_signatures: Sequence[tuple[float, str]] | None) -> list[tuple[float, Metre]]:
    """(offset, metre) from a piece's time signatures, sorted, the later of two at one offset
    kept, unreadable ones left out; 4/4 from 0 where there is none at the start."""
    found: dict[float, Metre] = {}
    for offset, text in sorted(time_signatures or [], key=lambda change: change[0]):
        try:
            found[float(offset)] = Metre.parse(text)
        except ValueError:
            continue
    if not found or min(found) > 0:
        found.setdefault(0.0, Metre.parse(DEFAULT))
    return sorted(found.items())


def _bars_before(changes: list[tuple[float, Metre]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each change's offset, its bar length in quarters, the bars before it: whole bars of the
    metre before, a partial last one counted as one)."""
    starts = np.array([offset for offset, _ in changes])
    lengths = np.array([float(metre.quarters) for _, metre in changes])
    bars = np.concatenate([[0], np.cumsum(np.ceil(np.diff(starts) / lengths[:-1] - 1e-9))]).astype(np.int64)
    return starts, lengths, bars


def bar_positions(offsets: np.ndarray,
                  time_signatures: Sequence[tuple[float, str]] | None) -> tuple[np.ndarray, np.ndarray]:
    """(bar index, position in the bar in PHASES steps per quarter) of each onset (quarters, in order)."""
    offsets = np.asarray(offsets, dtype=np.float64)
    starts, lengths, bars_before = _bars_before(metres(time_signatures))
    segment = np.maximum(np.searchsorted(starts, offsets + 1e-9, side="right") - 1, 0)
    into = np.maximum(offsets - starts[segment], 0.0)
    whole = np.floor(into / lengths[segment] + 1e-9)
    position = np.rint((into - whole * lengths[segment]) * PHASES).astype(np.int64)
    return (bars_before[segment] + whole).astype(np.int64), position


def metre_of_bar(time_signatures: Sequence[tuple[float, str]] | None, bar: int) -> Metre:
    """The metre of bar number `bar` (as `bar_positions` counts them)."""
    changes = metres(time_signatures)
    _, _, bars_before = _bars_before(changes)
    return changes[int(np.searchsorted(bars_before, bar, side="right")) - 1][1]


def bar_offset(time_signatures: Sequence[tuple[float, str]] | None, bar: int) -> float:
    """Where bar number `bar` (as `bar_positions` counts them) begins, in quarters."""
    starts, lengths, bars_before = _bars_before(metres(time_signatures))
    segment = int(np.searchsorted(bars_before, bar, side="right")) - 1
    return float(starts[segment] + (bar - bars_before[segment]) * lengths[segment])


def bar_beat(position: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(position) // PHASES, BAR_BEATS - 1).astype(np.int32)


def phrase_bar(bar: np.ndarray) -> np.ndarray:
    return (np.asarray(bar) % PHRASE_BARS).astype(np.int32)


def metre_at(time_signatures: Sequence[tuple[float, str]] | None, offset: float) -> Metre:
    """The metre in force at `offset`."""
    changes = metres(time_signatures)
    return [metre for start, metre in changes if start <= offset + 1e-9][-1]
