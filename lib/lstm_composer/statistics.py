"""What a piece looks like in numbers: histograms of its notes, and how much two pieces share.

Each feature is counted over a piece's onsets (a token as played: when, how long, how loud,
which pitches): pitches and intervals in semitones, onset gaps and durations at the nearest of
`MEASURED_VALUES`, velocities in the expressive model's 8 bins.
The overlap of two histograms is the sum, bin by bin, of the smaller of the two shares: 1 for
the same distribution, 0 for nothing in common.
"""
from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from lstm_composer.expression import VELOCITY_BINS, nearest, velocity_bin
from lstm_composer.tokens import HIGHEST_KEY, LOWEST_KEY

INTERVAL_LIMIT = 12  # top-voice leaps beyond an octave share the outermost bins
MOST_NOTES = 8  # onsets of more notes share the last bin
# The note values every figure in docs/results.md was measured at: the expressive model's
# before it had a 32nd, which is counted here with the sextuplet sixteenths, as before.
MEASURED_VALUES = (1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
GAP_VALUES = (0.0,) + MEASURED_VALUES

FEATURES = ("pitch", "lowest_pitch", "notes_per_onset", "onset_gap", "duration", "velocity", "top_voice_interval")


class Onset(Protocol):
    """What sounds from one moment on: a token of the notes table (`tokens.Token`) or as
    generation played it (`events.Event`)."""

    offset: float  # quarter lengths
    duration: float  # quarter lengths
    velocity: int

    @property
    def pitches(self) -> Sequence[int]: ...


def histograms(onsets: Sequence[Onset]) -> dict[str, np.ndarray]:
    """Counts per bin of every feature over one piece's onsets (in order of offset)."""
    keys = HIGHEST_KEY - LOWEST_KEY + 1
    pitches = np.array([p for onset in onsets for p in onset.pitches], dtype=np.int64)
    lowest = np.array([min(onset.pitches) for onset in onsets], dtype=np.int64)
    highest = np.array([max(onset.pitches) for onset in onsets], dtype=np.int64)
    offsets = np.array([onset.offset for onset in onsets], dtype=np.float64)
    return {
        "pitch": np.bincount(np.clip(pitches, LOWEST_KEY, HIGHEST_KEY) - LOWEST_KEY, minlength=keys),
        "lowest_pitch": np.bincount(np.clip(lowest, LOWEST_KEY, HIGHEST_KEY) - LOWEST_KEY, minlength=keys),
        "notes_per_onset": np.bincount(np.minimum([len(o.pitches) for o in onsets], MOST_NOTES),
                                       minlength=MOST_NOTES + 1)[1:],
        "onset_gap": np.bincount(nearest(GAP_VALUES, np.diff(offsets)), minlength=len(GAP_VALUES)),
        "duration": np.bincount(nearest(MEASURED_VALUES, [o.duration for o in onsets]),
                                minlength=len(MEASURED_VALUES)),
        "velocity": np.bincount(velocity_bin([o.velocity for o in onsets]), minlength=VELOCITY_BINS),
        "top_voice_interval": np.bincount(np.clip(np.diff(highest), -INTERVAL_LIMIT, INTERVAL_LIMIT) + INTERVAL_LIMIT,
                                          minlength=2 * INTERVAL_LIMIT + 1),
    }


def pooled(pieces: Iterable[Sequence[Onset]]) -> dict[str, np.ndarray]:
    """The histograms of several pieces added up."""
    total: dict[str, np.ndarray] = {}
    for onsets in pieces:
        for name, counts in histograms(onsets).items():
            total[name] = total.get(name, 0) + counts
    return total


def overlap(counts: np.ndarray, other: np.ndarray) -> float:
    """Sum of the smaller share per bin; nan when either histogram is empty."""
    counts, other = np.asarray(counts, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if counts.sum() == 0 or other.sum() == 0:
        return float("nan")
    return float(np.minimum(counts / counts.sum(), other / other.sum()).sum())


def overlaps(onsets: Sequence[Onset], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Each feature's overlap between one piece and the reference histograms, and their mean."""
    mine = histograms(onsets)
    values = {name: overlap(mine[name], reference[name]) for name in FEATURES}
    values["mean"] = float(np.nanmean([values[name] for name in FEATURES]))
    return values


DENSITY_LEVELS = {"low": 0.25, "medium": 0.5, "high": 0.75}  # quantiles of the training pieces' onset rates


def density_levels(pieces: Iterable[np.ndarray], quarters: float = 8.0) -> dict[str, float]:
    """Onsets per quarter at the quantiles `DENSITY_LEVELS` name, over the windows of `quarters`
    quarters of the pieces (each its onsets, in quarters) that hold an onset."""
    rates = []
    for onsets in pieces:
        windows = np.floor(np.asarray(onsets, dtype=np.float64) / quarters).astype(int)
        rates += list(np.bincount(windows)[np.unique(windows)] / quarters) if len(windows) else []
    if not rates:
        raise ValueError("no onsets to measure a density from")
    return {name: float(np.quantile(rates, q)) for name, q in DENSITY_LEVELS.items()}
