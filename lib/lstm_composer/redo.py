"""A passage of the user's piece written anew, the rest kept note for note (`generate --redo`).

The bars before the passage prime the network as a primer file does, after the first bars of
what follows it (`lead_in`); generation draws several passages from there (`generate.redo`),
each ending at the bar line where the kept bars resume, and keeps the one after which the
network finds the kept bars likeliest (`kept_loss`). The kept bars are written from the file's
own notes (`kept_notes`), not from its tokens, so that every note keeps its pitch, onset,
length and loudness; the new passage is played at their level (`at_their_level`).
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from lstm_composer.events import Event
from lstm_composer.metre import bar_offset, bar_positions
from lstm_composer.midi import read_midi
from lstm_composer.piece import PieceRow
from lstm_composer.primers import GenerationError
from lstm_composer.tokens import Token, token_for

CANDIDATES = 8  # passages drawn, of which the one that joins the kept bars best is kept


class Bars(NamedTuple):
    """Bars `first` to `last` of a piece, counted from 1 as a score numbers them."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> "Bars":
        """`5-8` → Bars(5, 8); `5` → Bars(5, 5)."""
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
        if not match or int(match[1]) < 1 or int(match[2] or match[1]) < int(match[1]):
            raise ValueError(f"{text!r} is not a passage of bars such as 5-8 (or 5 for one bar), counted from 1")
        return cls(int(match[1]), int(match[2] or match[1]))

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


class Passage(NamedTuple):
    """A file's tokens before, in and after the bars to redo, and where those bars begin and end."""

    before: list[Token]
    within: list[Token]
    after: list[Token]
    start: float  # quarters from the file's start
    end: float
    bar_before: float  # where the bar before the passage begins
    bar_after: float  # where the bar after it ends


def passage(path: str, piece: PieceRow, tokens: list[Token], bars: Bars) -> Passage:
    """Where `bars` lie in the file at `path` (by its time signatures); refused where the file has
    fewer bars, or no note before them for the network to go on from."""
    numbers = bar_positions(np.array([t.offset for t in tokens]), piece.time_signatures)[0] + 1
    if bars.last > numbers.max():
        raise GenerationError(f"--redo {bars}: {path} has {numbers.max()} bars")
    if bars.first == 1 or numbers.min() >= bars.first:
        raise GenerationError(f"--redo {bars}: no note of {path} comes before bar {bars.first} for the network to "
                              f"go on from; redo a passage that follows at least one bar of the file")
    before = [t for t, n in zip(tokens, numbers) if n < bars.first]
    within = [t for t, n in zip(tokens, numbers) if bars.first <= n <= bars.last]
    after = [t for t, n in zip(tokens, numbers) if n > bars.last]
    start, end = (bar_offset(piece.time_signatures, bar) for bar in (bars.first - 1, bars.last))
    return Passage(before, within, after, start, end, bar_offset(piece.time_signatures, bars.first - 2),
                   bar_offset(piece.time_signatures, bars.last + 1))


def kept_notes(content: bytes, start: float, end: float) -> list[Event]:
    """The notes of the MIDI file `content` that begin outside `start`-`end` (quarters), as they
    are written: notes struck together, as long and as loud, make one event."""
    song = read_midi(content)
    tpq = song.ticks_per_quarter
    struck: dict[tuple[int, int, int], list[int]] = {}
    for note in song.notes:
        if not start * tpq <= note.start < end * tpq:
            struck.setdefault((note.start, note.end, note.velocity), []).append(note.pitch)
    return [Event(token_for(pitches), begin / tpq, max((finish - begin) / tpq, 1e-3), max(1, velocity),
                  tuple(sorted(set(pitches)))) for (begin, finish, velocity), pitches in sorted(struck.items())]


def placed(events: list[Event], lead: float, start: float, end: float, kept: list[Event]) -> list[Event]:
    """Generated events moved `lead` quarters on (into the file's time), those before `start`
    left out, none sounding past `end`, and none striking a key that a `kept` note still holds
    (a piano would cut that note short)."""
    held = [e for e in kept if e.offset < start < e.offset + e.duration]
    placed = []
    for event in events:
        offset = event.offset + lead
        free = [p for p in event.pitches if not any(p in e.pitches and offset < e.offset + e.duration for e in held)]
        if start - 1e-9 <= offset < end - 1e-9 and free:
            placed.append(Event(token_for(free) if free != event.pitches else event.token, offset,
                                min(event.duration, end - offset), event.velocity, tuple(free)))
    return placed


def at_their_level(new: list[Event], kept: list[Event], bars: Passage) -> list[Event]:
    """The new passage played at the loudness of the kept bars around it: every velocity scaled
    by the same factor at one time, from the median of the bar before (at the passage's start)
    to that of the bar after (at its end), over the passage's own median. What the network
    made louder or softer stays so; a passage does not begin fff after a p. Where one of the
    two bars has no note, the other sets the level throughout; where neither has, nothing changes."""
    def level(start: float, end: float) -> float | None:
        velocities = [e.velocity for e in kept if start <= e.offset < end]
        return float(np.median(velocities)) if velocities else None

    first, last = level(bars.bar_before, bars.start), level(bars.end, bars.bar_after)
    if not new or first is None and last is None:
        return new
    first, last = first or last, last or first
    own = float(np.median([e.velocity for e in new]))
    played = []
    for event in new:
        here = np.interp(event.offset, (bars.start, bars.end), (first, last))
        played.append(replace(event, velocity=int(np.clip(round(event.velocity * here / own), 1, 127))))
    return played


def as_tokens(events: list[Event]) -> list[Token]:
    """Events as the tokens of a file, to be fed to the network as a file's are."""
    return [Token(i, e.token, e.pitches, e.offset, e.duration, e.velocity, 0) for i, e in enumerate(events)]


def lead_in(before: np.ndarray, after: np.ndarray, window: int) -> np.ndarray:
    """What the network hears before it writes the passage (rows of its inputs): how the kept
    bars after it begin, then the bars before it, in one `window`; the bars before keep the
    half of it nearest the passage. Music comes back to its figures, and a passage drawn after
    hearing them (the pointer head copies from its window) can lead into them as the file's own
    did; the kept bars' loss is still scored after the passage and the bars before alone
    (`kept_loss`). With nothing after the passage: the bars before alone."""
    if not len(after):
        return before
    nearest = before[-(window // 2):]
    return np.concatenate([after[:window - len(nearest)], nearest])


def kept_loss(decoder, before: np.ndarray, after: np.ndarray) -> float:
    """The network's cross-entropy (nats per token) of the first tokens of `after` after the last
    of `before` (rows of the network's inputs), in one window of the length it trained on: half of
    it, at most, the kept bars scored; the rest what leads to them."""
    span = decoder.config.sequence_length
    scored = after[:max(1, span // 2)]
    probabilities, state = decoder.prime(before[-(span - len(scored)):])
    losses = []
    for row in scored:
        losses.append(-np.log(max(float(probabilities[0][row[0]]), 1e-12)))
        probabilities, state = decoder.step(row, state)
    return float(np.mean(losses))
