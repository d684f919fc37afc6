"""Octave lines: where a staff's notes go beyond three ledger lines, they are written an octave
off under an 8va (8vb) line (`octave_passages` on the staff's notes before they are written,
`octave_lines` on the written staff)."""
from __future__ import annotations

from lstm_composer.render.notation import GRID

# Octave lines (`octave_passages`), as MIDI pitches: notes beyond `beyond` need one, notes up to
# `readable` can go under one (written an octave off, two ledger lines at most: G3, F4), and a
# lone note or two up to `lone` keep their ledger lines (three at most: more than three, and a
# line is written even over one note).
OCTAVE_LINE = {"8va": (88, 67, 88), "8vb": (33, 53, 33)}  # E6, G4, E6; A1, F3, A1
# A chord that reaches beyond three ledger lines from notes inside the staff goes under the line
# whole when its note nearest the staff, written an octave off, needs at most three ledger lines
# on the other side of it (E4 up: E3 written, under the third line below the treble staff; A3
# down: A4 written, over the third line above the bass staff).
OCTAVE_REACH = {"8va": 64, "8vb": 57}
OCTAVE_RUN = 3  # onsets that need the line: fewer, within `lone`, keep their ledger lines


def octave_passages(notes: list, treble: bool, bar: int) -> tuple[list, list[tuple[int, int]]]:
    """Passages beyond three ledger lines, to be written an octave off under an 8va line (from
    E6 up; an 8vb line from A1 down): (the staff's notes, those of the passages written an
    octave off, and the passages' (start, end) in GRID steps).

    `notes`: the staff's (start, length, pitches), sorted. A passage is a run of onsets, one
    line each, whichever voice the notes are in. It carries on over notes that read as well an
    octave off (from G4 up, from F3 down) for up to `bar` steps between the notes that need it,
    so that a passage around the line's threshold gets one line, not one per note; a lone note
    or two that need no more than three ledger lines (up to E6, down to A1) keep them. A line
    covers everything that sounds under it: a note of the passage still sounding when the next
    onset outside it is struck is written up to that onset, and one held into the passage from
    before it up to the passage (the pedal holds them; the MIDI file keeps their lengths): a
    note tied into or out of the line would change octave in the middle of its tie. (MuseScore 3
    labels a 15ma line "8", so there is none: the top of the piano still gets its ledger lines
    under 8va.)
    """
    beyond, readable, lone = OCTAVE_LINE["8va" if treble else "8vb"]
    reach = OCTAVE_REACH["8va" if treble else "8vb"]
    sign = 1 if treble else -1  # higher is further out on the treble staff, lower on the bass staff
    onsets: dict[int, list[int]] = {}  # start → the indices of the notes and chords struck there
    for i, (start, _, _) in enumerate(notes):
        onsets.setdefault(start, []).append(i)

    def inner(i: int) -> int:  # a note's or chord's pitch nearest the staff, signed
        return min(sign * p for p in notes[i][2])

    def outer(onset: int) -> int:
        return max(sign * p for i in onsets[onset] for p in notes[i][2])

    # An onset needs the line when one of its notes or chords lies wholly beyond `beyond`, and
    # fits under it when all of them lie beyond `readable`.
    passages: list[list[int]] = []  # each the onsets under one line
    passage, carried, needing = [], [], []  # onsets under the line, fitting ones after it, those that need it

    def close():  # the passage so far gets its line, unless it is a lone note or two within `lone`
        nonlocal passage, carried, needing
        if needing and (len(needing) >= OCTAVE_RUN or max(outer(onset) for onset in passage) > sign * lone):
            passages.append(passage)
        passage, carried, needing = [], [], []

    for onset, struck in sorted(onsets.items()):
        if needing and onset - needing[-1] > bar:
            close()
        nearest = min(inner(i) for i in struck)
        fits = nearest >= sign * readable
        reaching = outer(onset) > sign * lone and nearest >= sign * reach
        if fits and max(inner(i) for i in struck) >= sign * beyond or reaching:
            passage += carried + [onset]
            carried = []
            needing.append(onset)
        elif fits and needing:
            carried.append(onset)
        else:
            close()
    close()
    return _under_lines(notes, onsets, passages, -12 * sign)


def _under_lines(notes: list, onsets: dict[int, list[int]], passages: list[list[int]],
                 shift: int) -> tuple[list, list[tuple[int, int]]]:
    """(`notes` with those struck at each passage's onsets written `shift` semitones off and up
    to the next onset outside it at most, and those held into a passage written up to its start;
    each passage's (start, end)). `onsets`: start → the indices of the notes struck there."""
    written, spans = list(notes), []
    following = dict(zip(sorted(onsets), sorted(onsets)[1:]))
    for passage in passages:
        until = following.get(passage[-1])  # the next onset outside the passage
        under = [i for onset in passage for i in onsets[onset]]
        for i, (start, length, pitches) in enumerate(written):
            if start < passage[0] < start + length:  # held into the line from before it
                written[i] = (start, passage[0] - start, pitches)
        for i in under:
            start, length, pitches = notes[i]
            written[i] = (start, length if until is None else min(length, until - start), [p + shift for p in pitches])
        spans.append((passage[0], max(written[i][0] + written[i][1] for i in under)))
    return written, spans


def octave_lines(staff, spans: list[tuple[int, int]], treble: bool) -> None:
    """An 8va (8vb) line over the notes and chords struck within each of `octave_passages`'
    spans (GRID steps), already written an octave off."""
    from music21 import spanner

    struck = [(round(element.getOffsetInHierarchy(staff) * GRID), element) for element in staff.recurse().notes]
    for start, end in spans:
        onsets: dict[int, list] = {}
        for at, element in struck:
            if start <= at < end:
                onsets.setdefault(at, []).append(element)
        elements = _in_writing_order([onsets[at] for at in sorted(onsets)])
        staff.insert(0, spanner.Ottava(*elements, type="8va" if treble else "8vb",
                                       placement="above" if treble else "below"))


def _in_writing_order(passage: list[list]) -> list:
    """The notes and chords of a passage (its onsets' groups, in time), to be spanned by a line
    that starts at the first and stops at the last, the first written before the last. A bar is
    written voice by voice, so a line from a note of the second voice to one of the first in the
    same bar would stop before it starts (music21 and MuseScore drop it, and the notes written
    an octave off for it read wrong): it starts instead on the first voice's note or rest struck
    with its first note (`written` breaks a rest there)."""
    groups = [sorted(group, key=voice_number) for group in passage]  # within an onset, the earlier voice first
    elements = [element for group in groups for element in group]
    first, last = voice_of(elements[0]), voice_of(elements[-1])
    same_bar = first is not None and last is not None and first.activeSite is last.activeSite
    if not same_bar or voice_number(elements[-1]) >= voice_number(elements[0]):
        return elements
    start = elements[0].getOffsetBySite(first)
    return [next(element for element in last.notesAndRests if element.getOffsetBySite(last) == start)] + elements


def voice_of(element):
    """The voice a note or chord is written in (None outside voices), whichever stream it was reached through."""
    from music21 import stream

    return next((site for site in element.sites.get() if isinstance(site, stream.Voice)), None)


def voice_number(element) -> int:
    """The number of the voice a note or chord is written in (0 outside voices)."""
    voice = voice_of(element)
    return int(voice.id) if voice is not None else 0
