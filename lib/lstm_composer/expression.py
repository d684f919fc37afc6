"""When and how loud: a token's timing and loudness as small vocabularies of musical values.

For the `expressive` preset each token also carries three classes:
- `ioi`: the time since the previous token's onset (0 for a piece's first token),
- `duration`: how long the token sounds,
both rounded to the nearest of a set of note values (sixteenths, triplets, dotted values, up
to two bars; longer values are clipped), and
- `velocity`: one of 8 equal bins of MIDI velocity, played back at the bin's middle.
The values are saved in the model's `vocab.json`, so a model always decodes with its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATTRIBUTES = ("token", "ioi", "duration", "velocity")  # the expressive model's inputs and heads, in order

# Quarter lengths: triplet sixteenth, sixteenth, triplet eighth, eighth, triplet quarter,
# dotted eighth, quarter, dotted quarter, half, dotted half, whole, dotted whole, two bars.
NOTE_VALUES = (1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
VELOCITY_BINS = 8
PHASES = 12  # where an onset falls within its beat, in twelfths of a quarter: 16ths and triplets


@dataclass(frozen=True)
class Expression:
    """The value of every class, for onsets gaps, durations and velocities."""

    ioi: tuple[float, ...] = (0.0,) + NOTE_VALUES
    duration: tuple[float, ...] = NOTE_VALUES
    velocity: tuple[int, ...] = ()  # default: the middle of each of VELOCITY_BINS bins

    def __post_init__(self) -> None:
        if not self.velocity:
            bins = velocity_bin(np.arange(1, 128), VELOCITY_BINS)
            middles = tuple(int(round(np.arange(1, 128)[bins == i].mean())) for i in range(VELOCITY_BINS))
            object.__setattr__(self, "velocity", middles)

    def sizes(self) -> tuple[int, int, int]:
        return len(self.ioi), len(self.duration), len(self.velocity)

    def classes(self, offsets: np.ndarray, durations: np.ndarray, velocities: np.ndarray,
                piece_starts: np.ndarray | None = None) -> np.ndarray:
        """(n, 3) int32 classes of one piece's tokens, or of several pieces end to end when
        `piece_starts` marks where each begins (its first token's gap is 0)."""
        gaps = np.diff(np.asarray(offsets, dtype=np.float64), prepend=0.0)
        gaps[0] = 0.0
        if piece_starts is not None:
            gaps[piece_starts] = 0.0
        return np.stack([nearest(self.ioi, gaps), nearest(self.duration, durations),
                         velocity_bin(velocities, len(self.velocity))], axis=1).astype(np.int32)

    def to_dict(self) -> dict:
        return {"ioi": list(self.ioi), "duration": list(self.duration), "velocity": list(self.velocity)}

    @classmethod
    def from_dict(cls, values: dict) -> "Expression":
        return cls(tuple(values["ioi"]), tuple(values["duration"]), tuple(values["velocity"]))


def nearest(values: tuple[float, ...], x) -> np.ndarray:
    """Index of the nearest of the (ascending) `values` for each of `x`; beyond the ends, the end."""
    values = np.asarray(values, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    right = np.clip(np.searchsorted(values, x), 1, len(values) - 1)
    left = right - 1
    return np.where(x - values[left] <= values[right] - x, left, right)


def velocity_bin(velocities, bins: int = VELOCITY_BINS) -> np.ndarray:
    """Equal bins over MIDI velocities 1..127."""
    v = np.clip(np.asarray(velocities, dtype=np.int64), 1, 127)
    return np.minimum((v - 1) * bins // 127, bins - 1)


def beat_phase(offsets) -> np.ndarray:
    """Where each onset (in quarter lengths) falls within its beat: 0 on the beat, 3 a 16th
    after, 4 a triplet eighth after, ... (PHASES steps)."""
    return (np.rint(np.asarray(offsets, dtype=np.float64) * PHASES).astype(np.int64) % PHASES).astype(np.int32)
