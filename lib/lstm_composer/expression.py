"""When and how loud: a token's timing and loudness as small vocabularies of musical values.

For the `expressive` preset each token also carries three classes:
- `ioi`: the time since the previous token's onset (0 for a piece's first token),
- `duration`: how long the token sounds,
both rounded to the nearest of a set of values (longer values are clipped), and
- `velocity`: one of 8 equal bins of MIDI velocity, played back at the bin's middle.
The values are saved in the model's `vocab.json`, so a model always decodes with its own.

Two units for the gaps and durations (`RHYTHMS`):
- `beats`: note values (32nds, sixteenths, triplets, dotted values, up to two bars; durations up
  to 64 quarters) of the quarter note of the file's ticks and tempo map. For sequenced files, whose
  beat is in the tempo map.
- `seconds`: time values from 30 ms to 5.4 s, four per doubling, by the tempo map. For
  recordings of someone playing, whose tempo map holds one nominal tempo and whose rhythm
  (rubato included) is in real time: their "quarter notes" are no note values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_composer.midi import seconds_at

ATTRIBUTES = ("token", "ioi", "duration", "velocity")  # the expressive model's inputs and heads, in order

# Quarter lengths: 32nd, triplet sixteenth, sixteenth, triplet eighth, eighth, triplet quarter,
# dotted eighth, quarter, dotted quarter, half, dotted half, whole, dotted whole, two bars.
# Without the 32nd, the 32nds of the bundled songs (half of their gaps under a sixteenth)
# were written as sextuplets, and a beat of eight of them lasted a beat and a third.
NOTE_VALUES = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
# Durations past two bars, to 64 quarters: a held chord or pedal note. 10% of the bundled pieces'
# onsets sound longer than two bars (the quartets' held chords), 3% longer than eight; clipped
# at two bars, they were a feature that told generated excerpts from real ones.
LONG_VALUES = (12.0, 16.0, 24.0, 32.0, 64.0)
# Seconds: 30 ms × 2^(k/4), to 5.4 s. On recordings of pianists this rounds gaps and durations
# to within 4.4% (median) of their length, where note values of a nominal beat miss by 10-12%
# and round 38% of the durations up to a triplet sixteenth (docs/results.md).
SECOND_VALUES = tuple(round(0.03 * 2 ** (k / 4), 4) for k in range(31))
RHYTHMS = ("beats", "seconds")
VELOCITY_BINS = 8
# Where an onset falls within its beat, in 24ths of a quarter: 32nds (3), sextuplet sixteenths
# (4), sixteenths (6), triplet eighths (8). A model's own count is saved with its classes
# (`Expression.phases`): models trained before the 32nd had 12.
PHASES = 24
# A beat phase that holds fewer than this share of a corpus's onsets is off the corpus's metric
# grid (in the bundled songs, in twelfths of a beat, phases 1, 5, 7 and 11 held 0.1% each, the
# others 2.5% to 37%).
GRID_SHARE = 0.01


@dataclass(frozen=True)
class Expression:
    """The value of every class, for onsets gaps, durations and velocities; gaps and durations
    in quarter notes (`unit` "beats") or in seconds ("seconds")."""

    ioi: tuple[float, ...] = (0.0,) + NOTE_VALUES
    duration: tuple[float, ...] = NOTE_VALUES + LONG_VALUES
    velocity: tuple[int, ...] = ()  # default: the middle of each of VELOCITY_BINS bins
    unit: str = field(default="beats", kw_only=True)
    phases: int = field(default=PHASES, kw_only=True)  # of a beat, for a model told where its onsets fall

    def __post_init__(self) -> None:
        if self.unit not in RHYTHMS:
            raise ValueError(f"unit must be one of {RHYTHMS}, got {self.unit!r}")
        if not self.velocity:
            bins = velocity_bin(np.arange(1, 128), VELOCITY_BINS)
            middles = tuple(int(round(np.arange(1, 128)[bins == i].mean())) for i in range(VELOCITY_BINS))
            object.__setattr__(self, "velocity", middles)

    @classmethod
    def for_rhythm(cls, rhythm: str) -> "Expression":
        """The default classes of a unit: note values for "beats", `SECOND_VALUES` for "seconds"."""
        if rhythm == "seconds":
            return cls((0.0,) + SECOND_VALUES, SECOND_VALUES, unit="seconds")
        return cls(unit=rhythm)

    def timing(self, offsets: np.ndarray, durations: np.ndarray,
               tempos: list[tuple[float, float]] | None) -> tuple[np.ndarray, np.ndarray]:
        """One piece's onsets and durations (quarter notes, as in the notes table) in this unit:
        unchanged for "beats", converted by the piece's tempo map ((offset, bpm) pairs) for
        "seconds"."""
        offsets, durations = np.asarray(offsets, np.float64), np.asarray(durations, np.float64)
        if self.unit == "beats":
            return offsets, durations
        onsets = seconds_at(offsets, tempos or [])
        return onsets, seconds_at(offsets + durations, tempos or []) - onsets

    def quarters(self, values: np.ndarray, tempo: float) -> np.ndarray:
        """Values of this unit as quarter notes of a file written at `tempo` beats per minute."""
        values = np.asarray(values, np.float64)
        return values * (tempo / 60.0) if self.unit == "seconds" else values

    def sizes(self) -> tuple[int, int, int, int]:
        """The class counts of the onset gap, duration and velocity, and the beat phases."""
        return len(self.ioi), len(self.duration), len(self.velocity), self.phases

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
        unit = {} if self.unit == "beats" else {"unit": self.unit}  # a beats model's vocab.json is as before
        return {"ioi": list(self.ioi), "duration": list(self.duration), "velocity": list(self.velocity), **unit,
                "phases": self.phases}

    @classmethod
    def from_dict(cls, values: dict) -> "Expression":
        """A vocab.json without `phases` was written when a beat had 12."""
        return cls(tuple(values["ioi"]), tuple(values["duration"]), tuple(values["velocity"]),
                   unit=values.get("unit", "beats"), phases=values.get("phases", 12))


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


def beat_phase(offsets, phases: int = PHASES) -> np.ndarray:
    """Where each onset (in quarter lengths) falls within its beat, in `phases` steps: with 24,
    0 on the beat, 3 a 32nd after, 6 a 16th after, 8 a triplet eighth after..."""
    return (np.rint(np.asarray(offsets, dtype=np.float64) * phases).astype(np.int64) % phases).astype(np.int32)


def metric_grid(phases, share: float = GRID_SHARE, count: int = PHASES) -> np.ndarray:
    """For each of `count` beat phases, whether at least `share` of the onsets (their
    `beat_phase`) fall on it."""
    counts = np.bincount(np.asarray(phases, dtype=np.int64), minlength=count)
    return counts >= share * max(1, counts.sum())
