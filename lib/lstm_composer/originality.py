"""How original generated tokens are: the longest run copied from one corpus piece, the longest
stretch that repeats itself, and the report saved next to a generated piece.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from lstm_composer.tables import TokenStream


@dataclass(frozen=True)
class CopiedRun:
    """The longest run of consecutive generated tokens found, in order, in one corpus piece."""

    length: int
    piece_id: str | None
    piece_position: int | None  # where the run starts in that piece
    output_position: int | None  # where it starts in the generated tokens


@dataclass(frozen=True)
class TokenIndex:
    """Where each token id occurs in a corpus's token ids: the positions grouped by token, each
    group in order (`order[first[t]:first[t + 1]]` are token t's)."""

    order: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray) -> "TokenIndex":
        order = np.argsort(ids, kind="stable")
        return cls(order, np.searchsorted(ids[order], np.arange(int(ids.max(initial=0)) + 2)))

    def positions(self, token: int) -> np.ndarray:
        """The corpus positions holding `token`, in order (none for a token the corpus lacks)."""
        return self.order[self.first[token]:self.first[token + 1]] if token + 1 < len(self.first) else self.order[:0]


def longest_copy(generated: np.ndarray, stream: TokenStream, index: TokenIndex | None = None) -> CopiedRun:
    """Exact search: for every generated position, follow all corpus positions holding the
    same token for as long as the next tokens agree and the piece goes on. `index`: the
    stream's `TokenIndex`, where it is already built."""
    ids = stream.ids
    index = index or TokenIndex.of(ids)
    piece_end = np.repeat(stream.bounds[1:], np.diff(stream.bounds))
    best = CopiedRun(0, None, None, None)
    for i, token in enumerate(generated):
        if len(generated) - i <= best.length:
            break
        positions = index.positions(int(token))
        k = 1
        while len(positions) and i + k < len(generated):
            nxt = positions + k
            alive = nxt < piece_end[positions]
            alive[alive] = ids[nxt[alive]] == generated[i + k]
            if not alive.any():
                break
            positions = positions[alive]
            k += 1
        if len(positions) and k > best.length:
            start = int(positions[0])
            piece = int(np.searchsorted(stream.bounds, start, side="right")) - 1
            best = CopiedRun(k, stream.piece_ids[piece], start - int(stream.bounds[piece]), i)
    return best


@dataclass(frozen=True)
class Cycle:
    """The longest stretch of the output that repeats a pattern of `period` tokens."""

    period: int
    repeats: float  # span / period
    start: int
    span: int  # tokens


def longest_cycle(generated: np.ndarray) -> Cycle | None:
    """The periodic stretch covering the most tokens (at least two full periods); of equal
    spans, the shortest period. None if nothing repeats back to back."""
    best = None
    for period in range(1, len(generated) // 2 + 1):
        same = np.concatenate([[False], generated[period:] == generated[:-period], [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]
        if not len(starts):
            continue
        longest = int(np.argmax(ends - starts))
        span = int(ends[longest] - starts[longest]) + period
        if span >= 2 * period and (best is None or span > best.span):
            best = Cycle(period, round(span / period, 2), int(starts[longest]), span)
    return best


@dataclass(frozen=True)
class Report:
    """How original the generated tokens are; saved as JSON next to the output."""

    generated_tokens: int
    distinct_tokens: int
    distinct_onset_gaps: int  # different times between onsets (1 with the paper's fixed step)
    distinct_durations: int
    distinct_velocity_bins: int
    longest_copy: CopiedRun
    longest_cycle: Cycle | None
    primer: dict
    seed: int
    sampling: dict

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def summary(self) -> str:
        copy = self.longest_copy
        lines = [f"{self.generated_tokens} tokens, {self.distinct_tokens} distinct; {self.distinct_onset_gaps} "
                 f"onset gaps, {self.distinct_durations} durations, {self.distinct_velocity_bins} velocity bins",
                 f"longest run copied from one corpus piece: {copy.length} tokens"
                 + (f" (piece {copy.piece_id} at {copy.piece_position}, output position "
                    f"{copy.output_position})" if copy.piece_id else "")]
        cycle = self.longest_cycle
        lines.append("no repeating cycle" if cycle is None else
                     f"longest repeating cycle: {cycle.period} tokens x {cycle.repeats} "
                     f"({cycle.span} tokens from position {cycle.start})")
        return "\n".join(lines)
