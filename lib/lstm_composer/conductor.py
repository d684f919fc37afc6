"""Where each generated position falls, and what the network is told beside its token.

The conductor keeps the time of the last onset (in `phases` steps per quarter, from the start
of the piece the primer comes from) and, for a network told so, its beat phase, the quarter of
its bar and its bar's place in the phrase (`metre.py`), and the key the piece is in. The key is
held (`--key`), or changes at the start of a window of `form.WINDOW_BEATS` quarters as the
training pieces' keys change from one window to the next (`KeyChanges`); a piece of a given
number of bars holds the key its notes fit best for its last phrase (`close`).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from lstm_composer.form import WINDOW_BEATS, transposed_key
from lstm_composer.metre import BAR_BEATS, PHRASE_BARS, Metre
from lstm_composer.presets import ModelConfig


@dataclass(frozen=True)
class KeyChanges:
    """How a key goes on from one window to the next in the corpus: for the mode of the key it
    leaves (major, minor), the probability of each (interval up, mode) it goes to (24 values,
    majors first; interval 0 of the same mode: it stays). Only a key that holds for two windows
    counts as reached: the key of a window between two of another is the estimate wavering."""

    probabilities: np.ndarray  # (2, 24)

    @classmethod
    def count(cls, keys: np.ndarray, windows: np.ndarray, pieces: list[tuple[int, int]]) -> "KeyChanges":
        """From the key of each token and the window it is in (`tables.TokenStream.key`,
        `.key_window`), in each piece (its tokens `begin:end`)."""
        counts = np.ones((2, 24))  # one of each, so that every change stays possible
        for begin, end in pieces:
            numbers = windows[begin:end]
            firsts = np.flatnonzero(np.diff(numbers, prepend=numbers[:1] - 1))  # each window's first token
            sequence = keys[begin:end][firsts]
            for before, after, later in zip(sequence[:-2], sequence[1:-1], sequence[2:]):
                if after != later:  # a key of one window only: the passage's key is unclear, not changed
                    continue
                counts[before // 12, (after % 12 - before % 12) % 12 + 12 * (after // 12)] += 1
        return cls(counts / counts.sum(1, keepdims=True))

    def next(self, key: int, rng: np.random.Generator) -> int:
        change = int(rng.choice(24, p=self.probabilities[key // 12]))
        return int(transposed_key(change % 12 + 12 * (change // 12), key % 12))


class Conductor:
    """The time, bar and key of a generated piece, position by position."""

    def __init__(self, config: ModelConfig, steps: np.ndarray, phases: int, time: int, metre: Metre | None = None,
                 bar_start: int = 0, bar: int = 0, key: int | None = None, changes: KeyChanges | None = None,
                 rng: np.random.Generator | None = None, style: int = 0):
        """`time`: the primer's last onset; `bar_start`, `bar`: where its bar begins and which it is."""
        self.config, self.steps, self.phases = config, steps, phases
        self.time, self.metre, self.bar_start, self.bar = time, metre, bar_start, bar
        self.key, self.changes, self.rng, self.style = key, changes, rng, style
        self.window = time // (WINDOW_BEATS * phases)
        self.recent: deque[int] = deque()  # the onsets of the last WINDOW_BEATS quarters

    @property
    def phase(self) -> int:
        return int(self.time % self.phases)

    def place(self, time: int | None = None) -> tuple[int, int]:
        """(bar, steps into it) of `time` (default: the last onset)."""
        into = (self.time if time is None else time) - self.bar_start
        bar_steps = self.metre.steps
        return self.bar + into // bar_steps, into % bar_steps

    def advance(self, gap: int) -> None:
        """The next onset, `gap` (an onset-gap class) after the last; a new window may change the key."""
        self.time += int(self.steps[gap])
        self.recent.append(self.time)
        while self.recent[0] <= self.time - WINDOW_BEATS * self.phases:
            self.recent.popleft()
        window = self.time // (WINDOW_BEATS * self.phases)
        if window != self.window and self.changes is not None:
            self.key = self.changes.next(self.key, self.rng)
        self.window = window

    def close(self, key: int) -> None:
        """The last phrase: in `key`, held there."""
        self.key, self.changes = key, None

    def density(self) -> float:
        """Onsets per quarter over the last WINDOW_BEATS quarters (0 before there are two)."""
        return len(self.recent) / WINDOW_BEATS if len(self.recent) > 1 else 0.0

    def inputs(self) -> list[int]:
        """What the network is told of the last onset beside its heads' classes, in the order of
        `config.attributes`: beat phase, quarter of the bar, bar of the phrase, key, style."""
        told = [self.phase] if self.config.phase else []
        if self.config.metre:
            bar, into = self.place()
            told += [min(into // self.phases, BAR_BEATS - 1), bar % PHRASE_BARS]
        if self.config.key:
            told.append(self.key)
        if self.config.styles:
            told.append(self.style)
        return told
