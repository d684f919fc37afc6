"""Form in generation: some windows begin by playing again the opening of an earlier one.

A piece is read in windows of `Form.bars` bars from the start of a bar (of 4 quarters where
the network is not told its bars). When a window begins, it is chosen, with probability
`Form.share`, to reprise an earlier window: the one just before it, the one before that, or
the piece's first (its theme). From the network's first onset in it, the earlier window's
positions at the same places in the window are played again, for `Form.beats` quarters:
token, onset gap, duration, velocity and bass, all through the network, which then goes on
from them on its own, in the key the earlier window was in. What comes back is the piece's
own material, never the corpus's; the network's pointer head can carry the reprise on further.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCES = (1, 2, 0)  # windows back (1: the one before), or 0: the piece's first window


@dataclass(frozen=True)
class Form:
    share: float = 0.4  # of the windows that begin by reprising an earlier one
    beats: int = 4  # quarters of the earlier window played again, from where it is picked up
    bars: int = 2  # a window

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {self.share}")
        if self.beats < 1 or self.bars < 1:
            raise ValueError(f"beats and bars must be at least 1, got {self.beats} and {self.bars}")


class Reprise:
    """Follows the generated positions' onsets (in beat phases, from the start of a bar) and says
    which position to play again, if any."""

    def __init__(self, form: Form, bar_steps: int, steps: np.ndarray, phases: int, rng: np.random.Generator):
        """`bar_steps`: a bar's length, `steps`: each onset-gap class's, in beat phases (`phases`
        to a quarter)."""
        self.form, self.rng = form, rng
        self.gap_class = {int(step): gap for gap, step in enumerate(steps) if step > 0}
        self.window_steps = form.bars * bar_steps
        self.replay_steps = form.beats * phases
        self.onsets: list[int] = []  # each generated position's onset
        self.rows: list[list[int]] = []  # and the position
        self.keys: list[int | None] = []  # and the key it was in
        self.echoes: list[int] = []  # for each position, the one it played again, or -1
        self.playing = -1
        self.current = None  # the window the last onset is in
        self.source: int | None = None  # the window this one reprises
        self.queue: list[tuple[int, int | None]] = []  # positions to play again, in order, and a gap to give the first

    def replay(self) -> list[int] | None:
        """The next position to play again, or None: the network draws it."""
        if not self.queue:
            self.playing = -1
            return None
        self.playing, gap = self.queue.pop(0)
        row = list(self.rows[self.playing])
        return row if gap is None else [row[0], gap] + row[2:]

    def stop(self) -> None:
        """Play nothing more of the window being played again: the network draws from here."""
        self.queue, self.playing = [], -1

    def add(self, row: list[int], time: int, key: int | None = None) -> int | None:
        """Record a position fed to the network (drawn or played again), its onset and its key;
        returns the key to go on in: a position played again is in the key it was in."""
        if self.playing >= 0:
            key = self.keys[self.playing]
        self.onsets.append(time)
        self.rows.append(row)
        self.keys.append(key)
        self.echoes.append(self.playing)
        window = time // self.window_steps
        if window != self.current:
            first = self.current is None
            self.current, self.queue = window, []
            self.source = None if first else self._choose_source(window)
        if self.source is not None and not self.queue:
            self._pick_up(time)
        return key

    def _choose_source(self, window: int) -> int | None:
        if self.rng.random() >= self.form.share:
            return None
        back = SOURCES[self.rng.integers(len(SOURCES))]
        source = self.onsets[0] // self.window_steps if back == 0 else window - back
        return source if source < window and any(o // self.window_steps == source for o in self.onsets) else None

    def _pick_up(self, time: int) -> None:
        """Start playing the source window again from its first onset after this onset's place
        that one onset gap can reach (the first played again gets that gap)."""
        place = time % self.window_steps
        begin = self.source * self.window_steps
        later = [(i, onset - begin - place) for i, onset in enumerate(self.onsets[:-1])
                 if begin + place < onset < begin + self.window_steps and onset - begin - place in self.gap_class]
        if not later:
            return
        first, gap = later[0]
        end = min(self.onsets[first] + self.replay_steps, begin + self.window_steps)
        self.queue = [(i, self.gap_class[gap] if i == first else None)
                      for i in range(first, len(self.onsets) - 1) if self.onsets[i] < end]
        self.source = None  # once per window
