"""Notes on a grid → the written values of one voice: notes, chords and rests split and tied
where a pianist expects, each beat in the plainest division that holds it.

Positions are in GRID steps per quarter (32nds and sextuplets both fit); a bar is `measure`
steps (its metre's). Every beat is a quarter note.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Iterable

GRID = 24  # positions per quarter: 32nds (3) and sextuplets (4) both fit
DIVISIONS = (2, 4, 3, 8, 6, 12, 24)  # parts of a beat, the plainest first
TUPLET_DIVISIONS = (3, 6, 12, 24)  # written as triplets, sextuplets, 12- and 24-tuplets
WHOLE_BAR_VALUES = (6 * GRID, 4 * GRID, 3 * GRID, 2 * GRID, 3 * GRID // 2)  # dotted whole .. dotted quarter


def written(notes: list, measures: int, measure: int, spelling: Callable[[int], Callable],
            breaks: Iterable[int] = ()) -> list[list]:
    """One voice's notes as music21 notes, chords and rests, a list for each measure, each
    pitch spelled by `spelling(bar)` (MIDI pitch → music21 pitch).

    Gaps become rests, split at each of `breaks` (where an octave line starts, so that the
    line has a note or rest of every voice to start at). Notes are split, and tied, into
    values a pianist reads: no value hides a beat boundary unless it starts on a beat of plain
    (non-tuplet) beats, and none hides the middle of the bar unless it starts the bar.
    """
    from music21 import tie

    def rests(start: int, end: int) -> list:
        points = [start] + sorted(point for point in set(breaks) if start < point < end) + [end]
        return [(a, b, None) for a, b in zip(points, points[1:])]

    spans: list[tuple[int, int, list[int] | None]] = []
    time = 0
    for start, length, pitches in notes:
        if start > time:
            spans += rests(time, start)
        spans.append((start, start + length, pitches))
        time = start + length
    spans += rests(time, measures * measure)
    divisions = beat_divisions({point for start, end, _ in spans for point in (start, end)})

    bars: list[list] = [[] for _ in range(measures)]
    for start, end, pitches in spans:
        pieces = []
        at = start
        while at < end:
            length, division = written_value(at, end, divisions, pitches is None, measure)
            pieces.append((at, length, division))
            at += length
        for i, (at, length, division) in enumerate(pieces):
            item = element(pitches, length, division, spelling(at // measure))
            if pitches is not None and len(pieces) > 1:
                item.tie = tie.Tie("start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue")
            item.offset = Fraction(at % measure, GRID)
            bars[at // measure].append(item)
    return bars


def beat_divisions(points: set[int]) -> dict[int, int]:
    """For each beat with a boundary inside it: the fewest equal parts that hold them all."""
    inside_beats: dict[int, set[int]] = {}
    for point in points:
        beat, inside = divmod(point, GRID)
        if inside:
            inside_beats.setdefault(beat, set()).add(inside)
    return {beat: next(d for d in DIVISIONS if all(p % (GRID // d) == 0 for p in inside))
            for beat, inside in inside_beats.items()}


def release_on_grid(end: int, onset_divisions: dict[int, int], up: bool = False) -> int:
    """`end` rounded (or rounded `up`) to the grid of its beat's onsets, eighths or finer."""
    beat, inside = divmod(end, GRID)
    unit = GRID // max(2, onset_divisions.get(beat, 1))
    return beat * GRID + (inside + (unit - 1 if up else unit // 2)) // unit * unit


def written_value(at: int, end: int, divisions: dict[int, int], rest: bool, measure: int) -> tuple[int, int]:
    """(length, beat division) of the next written value from `at` towards `end`, in GRID steps."""
    beat, inside = divmod(at, GRID)
    in_bar = at % measure
    middle = measure // 2 if measure % (2 * GRID) == 0 else None  # a bar of an even number of quarters
    if inside == 0:
        # Values longer than a beat start on a beat, cover only plain beats, and cross the
        # middle of such a bar only from its start; rests longer than a beat have no dots; a
        # whole bar's value only where one note value holds it.
        bar = (measure,) if measure in WHOLE_BAR_VALUES else ()
        longer = bar + ((2 * GRID,) if rest else (3 * GRID, 2 * GRID, 3 * GRID // 2))
        for length in longer:
            span_end = at + length
            if (span_end <= end and in_bar + length <= measure
                    and (in_bar == 0 or middle is None or not in_bar < middle < in_bar + length)
                    and all(divisions.get(b, 1) not in TUPLET_DIVISIONS
                            for b in range(beat, -(-span_end // GRID)))):
                return length, 1
    division = divisions.get(beat, 1)
    unit = GRID // division
    span = min(end, (beat + 1) * GRID, at - in_bar + measure) - at  # within the beat and the bar (3/8 ends inside one)
    if span < unit:  # shorter than one part of the beat's division (a note or a bar ends inside the beat)
        division = next(d for d in DIVISIONS if span % (GRID // d) == 0 and at % (GRID // d) == 0)
        unit = GRID // division
    written = max(n for n in (1, 2, 3, 4, 6, 8) if n <= span // unit)  # plain or dotted values
    return written * unit, division


def element(pitches: list[int] | None, length: int, division: int, spell: Callable):
    """A music21 note, chord or rest `length` 1/24 quarters long, in a beat of `division` parts."""
    from music21 import chord, duration, note

    tuplet = division in TUPLET_DIVISIONS
    # Three in the time of two: a tuplet's written values are 3/2 of what sounds.
    plain = duration.Duration(Fraction(length * 3, GRID * 2) if tuplet else Fraction(length, GRID))
    # Given by type and dots, the value is fixed: music21's makeNotation re-expresses values it
    # inferred from a length, and joins tied tuplet values that fill a beat into one, even where
    # one note stops and a new strike of its pitch starts (the strike would vanish).
    written = duration.Duration(type=plain.type, dots=plain.dots)
    if tuplet:
        unit_type = duration.Duration(Fraction(3, division * 2)).type
        written.appendTuplet(duration.Tuplet(division, division * 2 // 3, unit_type, unit_type))
    if pitches is None:
        element = note.Rest()
    elif len(pitches) == 1:
        element = note.Note(spell(pitches[0]))
    else:
        element = chord.Chord([spell(p) for p in pitches])
    element.duration = written
    return element
