"""n-gram language models over token ids: the yardstick a network must beat.

Interpolated Kneser-Ney (Chen and Goodman's form, one discount per order estimated from the
counts of counts, D = n1 / (n1 + 2 n2)): the highest order uses plain counts, every lower
order the number of distinct tokens seen before it (its continuation count), and the
unigram level is interpolated with a uniform distribution over the vocabulary, so a token
the training pieces never hold still has a probability. Counts never cross a piece boundary.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class _Level:
    """One order's counts: c(h, w), c(h), distinct followers N1+(h ·), and the discount."""

    counts: dict[tuple, Counter]
    totals: dict[tuple, int]
    followers: dict[tuple, int]
    discount: float


class KneserNey:
    """An interpolated Kneser-Ney model of order `order` (1: unigram) fitted on `pieces`."""

    def __init__(self, pieces: Iterable[Sequence[int]], order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.order, self.vocab_size = order, vocab_size
        grams: list[Counter] = [Counter() for _ in range(order + 1)]  # grams[n][(w1..wn)] = count
        for piece in pieces:
            piece = tuple(int(t) for t in piece)
            for n in range(1, order + 1):
                grams[n].update(piece[i:i + n] for i in range(len(piece) - n + 1))
        self.levels: list[_Level] = [None]  # index n: the level of n-grams (context of n - 1 tokens)
        for n in range(1, order + 1):
            if n == order:
                counted = grams[n]
            else:  # continuation counts: how many distinct tokens precede the n-gram
                counted = Counter(gram[1:] for gram in grams[n + 1])
            self.levels.append(_level(counted))

    def probability(self, context: Sequence[int], token: int) -> float:
        """P(token | the last order - 1 tokens of context)."""
        context = tuple(int(t) for t in context[len(context) - (self.order - 1):]) if self.order > 1 else ()
        return self._probability(context, int(token))

    def _probability(self, context: tuple, token: int) -> float:
        n = len(context) + 1
        level = self.levels[n]
        lower = (self._probability(context[1:], token) if n > 1 else 1.0 / self.vocab_size)
        total = level.totals.get(context, 0)
        if total == 0:
            return lower
        count = level.counts[context].get(token, 0)
        return (max(count - level.discount, 0.0) + level.discount * level.followers[context] * lower) / total

    def cross_entropy(self, pieces: Sequence[Sequence[int]], first_target: int = 0) -> tuple[float, int]:
        """(mean -ln p, targets) over every position >= `first_target` of each piece, each
        predicted from the tokens before it in its piece."""
        total, targets = 0.0, 0
        for piece in pieces:
            piece = [int(t) for t in piece]
            for t in range(max(first_target, 0), len(piece)):
                total -= math.log(self.probability(piece[max(0, t - self.order + 1):t], piece[t]))
                targets += 1
        return (total / targets if targets else float("nan")), targets


def _level(counted: Counter) -> _Level:
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for gram, count in counted.items():
        counts[gram[:-1]][gram[-1]] = count
    of_counts = Counter(counted.values())
    n1, n2 = of_counts.get(1, 0), of_counts.get(2, 0)
    discount = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    discount = min(max(discount, 0.05), 0.95)
    return _Level(counts=dict(counts), totals={h: sum(c.values()) for h, c in counts.items()},
                  followers={h: len(c) for h, c in counts.items()}, discount=discount)


def unigram_add_one(pieces: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """Add-one smoothed token frequencies: the unigram yardstick."""
    counts = np.ones(vocab_size)
    for piece in pieces:
        np.add.at(counts, np.asarray(piece, dtype=np.int64), 1)
    return counts / counts.sum()
