"""How the pieces are shared out: the held-out pieces, then one range of whole pieces per rank.

A rank reads its range of the notes table (`tables.Shard`); the parse job writes each notes
file sorted by piece in small row groups, so the range skips the other ranks' row groups.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_composer.tables import Shard


def hold_out(piece_ids: list[str], fraction: float, seed: int) -> tuple[str, ...]:
    """The held-out pieces, sorted: a seeded draw of `fraction` of them (at least one when there
    are two or more). No window of a held-out piece is trained on; validation and evaluation
    use them."""
    if fraction <= 0 or len(piece_ids) < 2:
        return ()
    count = min(len(piece_ids) - 1, max(1, round(fraction * len(piece_ids))))
    order = np.random.default_rng(seed).permutation(len(piece_ids))
    return tuple(sorted(piece_ids[i] for i in order[:count]))


def shard_bounds(counts: dict[str, int], held_out: tuple[str, ...], ranks: int,
                 sequence_length: int) -> list[str | None]:
    """Where each rank's range of piece ids starts and ends (`ranks + 1` values, the outer two
    None): contiguous ranges of whole pieces with about equal training tokens. Raises when
    fewer training pieces than ranks are longer than a window."""
    ids, held_out = sorted(counts), set(held_out)
    weights = [counts[p] if p not in held_out and counts[p] > sequence_length else 0 for p in ids]
    trainable = sum(1 for w in weights if w)
    if trainable < ranks:
        raise ValueError(f"{trainable} training pieces are longer than the {sequence_length}-token window, "
                         f"fewer than the {ranks} ranks: every rank trains on whole pieces of its own, so "
                         f"add MIDI files or lower --num-proc")
    total, done, bounds = sum(weights), 0, [None]
    in_range, left = 0, trainable  # weighted pieces in the current range; from this piece on
    for piece, weight in zip(ids, weights):
        to_start = ranks - len(bounds)  # ranges after the current one
        if weight and to_start and in_range and (
                left <= to_start or done + weight / 2 >= total * len(bounds) / ranks):
            bounds.append(piece)
            in_range = 0
        in_range += bool(weight)
        left -= bool(weight)
        done += weight
    return bounds + [None]


@dataclass(frozen=True)
class ShardPlan:
    """What each rank reads: rank `r` the pieces with `bounds[r] <= piece_id < bounds[r + 1]`,
    training on those not held out. The held-out pieces are sharded by the same ranges when
    every range holds enough of them (`held_out_by_range`); otherwise every rank reads all of
    them and validates on every `ranks`-th window."""

    bounds: tuple[str | None, ...]
    held_out: tuple[str, ...]
    held_out_by_range: bool

    @property
    def ranks(self) -> int:
        return len(self.bounds) - 1

    def shard(self, rank: int) -> Shard:
        return Shard(self.bounds[rank], self.bounds[rank + 1])

    def training_windows(self, counts: dict[str, int], sequence_length: int, dense: bool) -> list[int]:
        """Each rank's training windows, as `dataset.window_starts` (or `dense_window_starts`)
        will cut them from pieces of `counts` tokens."""
        held_out = set(self.held_out)

        def windows(n: int) -> int:
            return (-(-(n - 1) // sequence_length) if n >= 2 else 0) if dense else max(n - sequence_length, 0)

        return [sum(windows(n) for piece, n in counts.items() if piece not in held_out
                    and (first is None or piece >= first) and (end is None or piece < end))
                for first, end in zip(self.bounds[:-1], self.bounds[1:])]


def plan_shards(counts: dict[str, int], held_out: tuple[str, ...], ranks: int, sequence_length: int) -> ShardPlan:
    """Whole pieces per rank, balanced by tokens (`shard_bounds`), and how the held-out pieces
    are shared: by the same ranges when each range holds at least half its share of their
    tokens (every rank validates on as many batches as the one with the fewest, so one short
    held-out piece in a range would leave almost nothing to validate on); otherwise every rank
    reads them all."""
    bounds = shard_bounds(counts, held_out, ranks, sequence_length)
    usable = {p: counts[p] for p in held_out if counts[p] > sequence_length}
    share = sum(usable.values()) / (2 * ranks)
    by_range = bool(usable) and all(
        sum(n for p, n in usable.items() if (first is None or p >= first) and (end is None or p < end)) >= share
        for first, end in zip(bounds[:-1], bounds[1:]))
    return ShardPlan(tuple(bounds), tuple(sorted(held_out)), by_range)
