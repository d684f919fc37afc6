"""Events → sheet music a pianist can read: MusicXML on a grand staff, written with music21.

The piece's metre gives the bars and its keys (those asked for, or the best fit of its
passages' notes) the key signatures, each pitch spelled in the key of its bar. Onsets and
lengths go to a grid of 1/24 quarter (32nds and sextuplets), each beat in the plainest division that holds it
(`notation.py`); held notes become a second voice; the dynamics change where a phrase
begins, hairpins within it; the extremes of the piano go under octave lines (`octaves.py`).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

from lstm_composer.events import Event
from lstm_composer.form import KEY_NAMES, passage_keys
from lstm_composer.metre import PHRASE_BARS, Metre
from lstm_composer.render.notation import GRID, beat_divisions, release_on_grid, written
from lstm_composer.render.octaves import OCTAVE_LINE, OCTAVE_REACH, octave_lines, octave_passages, voice_number
from lstm_composer.render.output import MIDDLE_C, prepared

# Velocities a MIDI player gives each dynamic mark, softest first.
_DYNAMICS = (("ppp", 16), ("pp", 33), ("p", 49), ("mp", 64), ("mf", 80), ("f", 96), ("ff", 112), ("fff", 127))
_HAND_SPAN = 12  # semitones, an octave: the widest a hand is written to strike at once where a split allows
_HIGHEST_BASS, _LOWEST_TREBLE = 64, 57  # E4 and A3: two ledger lines from the bass and the treble staff
_MIDDLE_LINES = (71, 50)  # B4 and D3: where each hand is before it plays
_DYNAMIC_CHANGE = 12  # velocity change that earns a new mark: a bit under one level's width


def _dynamics(events: Sequence[Event], bar: float) -> tuple[list[tuple[float, str]], list[tuple[float, float, str]]]:
    """(offset, mark) where a phrase of PHRASE_BARS bars begins at another loudness: `p`, `mf`,
    `f` ...; and (start, end, "crescendo" or "diminuendo") over the middle bars of a phrase that
    grows louder or softer within itself.

    A phrase begins at the median velocity of the events of its first half, so one loud note
    among soft ones earns no mark; a new mark needs it, and the median of the whole phrase, to
    move by `_DYNAMIC_CHANGE` from the last mark's (a swell that the phrase does not keep earns
    none), and to name another level. A hairpin needs the median of the phrase's second
    half to differ from its first half's by as much; it runs from the first onset of the
    phrase's second bar to the last onset before its last bar.
    """
    phrase = PHRASE_BARS * bar
    phrases: dict[int, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.offset):
        phrases.setdefault(int(event.offset // phrase + 1e-9), []).append(event)
    marks: list[tuple[float, str]] = []
    wedges: list[tuple[float, float, str]] = []
    marked_velocity = None
    for number, members in sorted(phrases.items()):
        middle = number * phrase + phrase / 2
        halves = [[e for e in members if (e.offset < middle) == first] for first in (True, False)]
        median = _median_velocity(halves[0] or members)  # where the phrase starts
        name = _dynamic_name(median)
        if marked_velocity is None or (name != marks[-1][1] and min(
                abs(median - marked_velocity), abs(_median_velocity(members) - marked_velocity)) >= _DYNAMIC_CHANGE):
            marks.append((members[0].offset, name))
            marked_velocity = median
        inside = [e.offset for e in members if number * phrase + bar <= e.offset < (number + 1) * phrase - bar]
        if all(halves) and len(inside) > 1:
            change = _median_velocity(halves[1]) - _median_velocity(halves[0])
            if abs(change) >= _DYNAMIC_CHANGE:
                wedges.append((inside[0], inside[-1], "crescendo" if change > 0 else "diminuendo"))
    return marks, wedges


def _median_velocity(events: Sequence[Event]) -> int:
    velocities = sorted(e.velocity for e in events)
    return velocities[len(velocities) // 2]


def _dynamic_name(velocity: int) -> str:
    return min(_DYNAMICS, key=lambda level: abs(level[1] - velocity))[0]


def write_musicxml(events: Sequence[Event], path: str | Path, tempo: float = 120.0, program: int = 0,
                   metre: Metre = Metre(4, 4), keys: Sequence[tuple[int, int]] | None = None) -> Path:
    """Sheet music a pianist can read: a grand staff in `metre` (offset 0 starts a bar) with the
    key signatures of `keys` ((bar, key) where each starts, the first at bar 0; a key is an
    index into `form.KEY_NAMES`; None: the keys its passages fit best, `form.passage_keys`),
    split at middle C, except where a chord would stretch one hand past an octave and another
    split would not, and where a lone note near middle C (A3 to E4) is nearer the hand that
    played last on the other side.

    Offsets and durations are first rounded to the nearest 1/24 quarter (32nds and
    sextuplets), so every rhythm can be written down; each beat is then written in the
    plainest division that holds it: quarters, eighths, 16ths, triplets, 32nds, sextuplets.
    """
    from music21 import clef, instrument, layout, metadata, stream, tempo as m21tempo

    keys = passage_keys(events, float(metre.quarters)) if keys is None else keys
    treble_notes, bass_notes = _staff_notes(events)
    end = max((start + length for start, length, _ in treble_notes + bass_notes), default=0)
    bar_steps = metre.steps
    measures = max(1, -(-end // bar_steps))  # rounded up, at least one
    bar_keys = [dict(keys).get(0, keys[0][1])]  # the key of each bar
    for number in range(1, measures):
        bar_keys.append(dict(keys).get(number, bar_keys[-1]))
    staves = [_staff(notes, measures, staff_clef, instrument.instrumentFromMidiProgram(program), metre, bar_keys)
              for notes, staff_clef in ((treble_notes, clef.TrebleClef()), (bass_notes, clef.BassClef()))]
    treble, bass = staves

    mark = m21tempo.MetronomeMark(number=tempo, referent=1.0)
    mark.placement = "above"
    treble.getElementsByClass(stream.Measure).first().insert(0, mark)
    _write_dynamics((treble, bass), *_dynamics(events, float(metre.quarters)), bar_steps)

    score = stream.Score()
    score.metadata = metadata.Metadata(title=Path(path).stem, composer="lstm-composer")
    score.insert(0, treble)
    score.insert(0, bass)
    score.insert(0, layout.StaffGroup([treble, bass], symbol="brace", barTogether=True))
    path = prepared(path)
    path.write_bytes(_musicxml(score))
    return path


def _musicxml(score) -> bytes:
    """`score` as music21 writes MusicXML, its octave lines and hairpins numbered so that none
    takes the number of one still open (`_number_lines`)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter, ScoreExporter

    exporter = ScoreExporter(GeneralObjectExporter(score).fromGeneralObject(score))
    for part in exporter.parse().iter("part"):
        _number_lines(part)
    return exporter.asBytes()


_LINES = ("octave-shift", "wedge")  # MusicXML's numbered lines that the score writes


def _number_lines(part) -> None:
    """Each octave line and hairpin of a `part` (MusicXML) the lowest number that no line of its
    kind still open holds. music21 numbers a part's lines 1 to 6 over and over in the order it
    keeps them, each staff's in turn, so that a line of the bass staff can take the number of
    one still open over the treble staff, and a reader stops the wrong one (the line ends early,
    and the notes after it read an octave off). A line is a start and a stop of one staff and
    one of music21's numbers: a staff's lines of one kind never overlap."""
    open_lines: dict[tuple, str] = {}  # (kind, staff, music21's number) → the number written
    for direction in part.iter("direction"):
        staff = direction.findtext("staff", "1")
        for line in (element for kind in _LINES for element in direction.iter(kind)):
            key = (line.tag, staff, line.get("number", "1"))
            if line.get("type") == "stop":
                number = open_lines.pop(key, None)
            elif line.get("type") == "continue":
                number = open_lines.get(key)
            else:
                taken = {number for (kind, _, _), number in open_lines.items() if kind == line.tag}
                number = open_lines[key] = next(str(n) for n in range(1, 7) if str(n) not in taken)
            if number is not None:
                line.set("number", number)


def _write_dynamics(staves, marks: list[tuple[float, str]], wedges: list[tuple[float, float, str]],
                    bar_steps: int) -> None:
    """The marks and hairpins of `_dynamics`, for both hands, written at the notes they belong to:
    below the treble staff (between the two), or below the bass staff where only it strikes one."""
    from music21 import dynamics

    # A hairpin runs from a note to a later one of the same voice: from one voice to another in
    # a bar, its end would come before its start in the file.
    struck = [sorted(((round(element.getOffsetInHierarchy(staff) * GRID), voice_number(element), element)
                      for element in staff.recurse().notes), key=lambda note: note[:2]) for staff in staves]
    for offset, name in marks:
        at = round(offset * GRID)
        staff, notes = next(((staff, notes) for staff, notes in zip(staves, struck) if any(n[0] == at for n in notes)),
                            (staves[0], struck[0]))
        dynamic = dynamics.Dynamic(name)
        dynamic.placement = "below"
        # In a bar of two voices the mark goes into the voice that strikes a note there:
        # outside the voices it would be written at the bar's start, and in the middle
        # of a rest at the rest's end.
        note = next((n[2] for n in notes if n[0] == at), None)
        holder = note.activeSite if note is not None else staff.getElementsByClass("Measure")[at // bar_steps]
        holder.insert(Fraction(at % bar_steps, GRID), dynamic)
    for start, end, kind in wedges:
        for staff, notes in zip(staves, struck):
            first = next((note for note in notes if note[0] == round(start * GRID)), None)
            last = [note for note in notes if first and note[1] == first[1] and first[0] < note[0] <= round(end * GRID)]
            if first and last:
                wedge = (dynamics.Crescendo if kind == "crescendo" else dynamics.Diminuendo)(first[2], last[-1][2])
                wedge.placement = "below"
                staff.insert(0, wedge)
                break


def _staff_notes(events: Sequence[Event]) -> tuple[list, list]:
    """(treble, bass): each a sorted list of (start, length, pitches) in 1/24 quarters.

    Onsets and releases go to the nearest 1/24 quarter. A release then moves to the grid
    its beat's onsets use (eighths at least): a pianist reads when notes start, and a
    release 1/24 early should not turn a beat of eighths into a tuplet. A pitch struck again
    while it still sounds is released at the new strike, as the MIDI file does (a key cannot
    be struck while it is held down). Pitches struck at one onset for the same length on one
    staff become one chord. The pitches of an onset are split between the staves by
    `_left_hand`; a lone note from A3 to E4 goes to the staff whose last onset came nearest it
    (the treble's lowest note, the bass's highest).
    """
    held: dict[tuple[int, int], int] = {}  # (pitch, start) → end
    for event in events:
        start = round(event.offset * GRID)
        end = max(start + 1, round((event.offset + event.duration) * GRID))
        for pitch in event.pitches:
            held[pitch, start] = max(end, held.get((pitch, start), end))
    staves: tuple[list, list] = ([], [])
    struck = sorted(held)
    together: dict[int, list[int]] = {}
    for pitch, start in struck:
        together.setdefault(start, []).append(pitch)
    left = {start: pitches[:_left_hand(pitches)] for start, pitches in together.items()}
    # A lone note near middle C goes to the hand that played nearest it last, so that a line
    # crossing middle C stays on one staff.
    nearest = list(_MIDDLE_LINES)  # the treble's lowest and the bass's highest pitch at their last onsets
    for start in sorted(together):
        pitches = together[start]
        if len(pitches) == 1 and _LOWEST_TREBLE <= pitches[0] <= _HIGHEST_BASS:
            left[start] = pitches if abs(pitches[0] - nearest[1]) < abs(pitches[0] - nearest[0]) else []
        low = len(left[start])
        if low:
            nearest[1] = pitches[low - 1]
        if low < len(pitches):
            nearest[0] = pitches[low]
    for (pitch, start), following in zip(struck, struck[1:] + [(None, None)]):
        end = min(held[pitch, start], following[1]) if following[0] == pitch else held[pitch, start]
        staves[1 if pitch in left[start] else 0].append((start, end, pitch))
    for notes in staves:
        notes.sort()
    treble, bass = [], []
    for notes, staff in zip(staves, (treble, bass)):
        onset_divisions = beat_divisions({start for start, _, _ in notes})
        chords: dict[tuple[int, int], set[int]] = {}
        for start, end, pitch in notes:
            end = max(release_on_grid(end, onset_divisions), release_on_grid(start + 1, onset_divisions, up=True))
            chords.setdefault((start, end - start), set()).add(pitch)
        staff.extend(sorted((start, length, sorted(pitches)) for (start, length), pitches in chords.items()))
    return treble, bass


def _left_hand(pitches: list[int]) -> int:
    """How many of the pitches struck together (in ascending order) go on the bass staff: those
    below middle C, unless another split lets each hand span no more than `_HAND_SPAN` where
    that one does not (a chord of C3 and C4 to E5 is written C3 C4 | E4 to E5: each hand an
    octave), keeping each staff's notes within two ledger lines of it. First of all, no staff
    gets a chord it could not write within three ledger lines even under an octave line
    (D#4 with A6 in the treble: D#4 goes to the bass). Of equally playable splits, the one
    nearest middle C."""
    def stretched(hand: list[int]) -> bool:
        return bool(hand) and hand[-1] - hand[0] > _HAND_SPAN

    def unwritable(treble: list[int], bass: list[int]) -> int:
        return ((bool(treble) and treble[-1] > OCTAVE_LINE["8va"][2] and treble[0] < OCTAVE_REACH["8va"])
                + (bool(bass) and bass[0] < OCTAVE_LINE["8vb"][2] and bass[-1] > OCTAVE_REACH["8vb"]))

    at_middle_c = sum(1 for pitch in pitches if pitch < MIDDLE_C)
    readable = [k for k in range(len(pitches) + 1)  # no more than two ledger lines between the staves
                if (k == 0 or pitches[k - 1] <= _HIGHEST_BASS) and (k == len(pitches) or pitches[k] >= _LOWEST_TREBLE)]
    return min(readable, key=lambda k: (unwritable(pitches[k:], pitches[:k]),
                                        stretched(pitches[:k]) + stretched(pitches[k:]), abs(k - at_middle_c)))


def _voices(notes: list) -> list[list]:
    """Split one staff's notes into at most two voices, the way a pianist reads held notes.

    A note that sounds less than a beat into the next onset on its staff is legato and is
    written up to that onset. A note held longer keeps its written length, and the notes
    under it go into a second voice. Where both voices hold on, the one that would end
    first is cut short: a third voice would be harder to read than a shortened note.
    Notes struck together whose lengths differ by less than a beat are one chord, of the
    shorter length.
    """
    onsets = sorted({start for start, _, _ in notes})
    next_onset = dict(zip(onsets, onsets[1:]))
    voices: list[list] = [[], []]  # each a list of [start, length, pitches]

    def overhang(voice: list, start: int) -> int:
        return voice[-1][0] + voice[-1][1] - start if voice else 0

    for start, length, pitches in notes:
        if start in next_onset and 0 < start + length - next_onset[start] < GRID:
            length = next_onset[start] - start
        together = [v for v in voices if v and v[-1][0] == start]
        close = [v for v in together if abs(v[-1][1] - length) < GRID]
        if close or (together and all(overhang(v, start) > 0 for v in voices)):
            last = (close or together)[0][-1]
            last[1] = min(last[1], length)
            last[2] = sorted(set(last[2]) | set(pitches))
            continue
        free = [v for v in voices if overhang(v, start) <= 0]
        voice = free[0] if free else min(voices, key=lambda v: overhang(v, start))
        if not free:
            voice[-1][1] = start - voice[-1][0]
        voice.append([start, length, pitches])
    return [v for v in voices if v]


def _staff(notes: list, measures: int, staff_clef, staff_instrument, metre: Metre, bar_keys: list[int]):
    """One PartStaff: measures of written notes and rests, tied across beats and bars, each
    bar in its key (`bar_keys`), with a key signature where it changes."""
    from music21 import clef, meter, stream
    from music21.stream import makeNotation

    spellers = {key: _speller(key) for key in set(bar_keys)}

    def spelling(bar: int):
        return spellers[bar_keys[min(bar, measures - 1)]]

    treble = isinstance(staff_clef, clef.TrebleClef)
    notes, octave_spans = octave_passages(notes, treble, metre.steps)
    line_starts = [start for start, _ in octave_spans]
    voices = [written(voice, measures, metre.steps, spelling, line_starts) for voice in _voices(notes)] or [
        written([], measures, metre.steps, spelling)]
    staff = stream.PartStaff()
    for number in range(measures):
        measure = stream.Measure(number=number + 1)
        if number == 0:
            measure.insert(0, staff_instrument)
            measure.insert(0, staff_clef)
            measure.insert(0, meter.TimeSignature(str(metre)))
        if number == 0 or bar_keys[number] != bar_keys[number - 1]:
            measure.insert(0, _signature(bar_keys[number]))
        held = [voice[number] for voice in voices if any(not e.isRest for e in voice[number])]
        if len(held) < 2:  # one voice in this bar reads better than two
            for element in (held[0] if held else voices[0][number]):
                measure.insert(element.offset, element)
        else:
            # The higher voice has stems up; the voice with fewer notes (the held one) hides its rests.
            held.sort(key=lambda elements: -_mean_pitch(elements))
            sparser = min(range(2), key=lambda i: sum(not e.isRest for e in held[i]))
            for i, elements in enumerate(held):
                voice = stream.Voice(id=str(i + 1))
                for element in elements:
                    if element.isRest:
                        element.style.hideObjectOnPrint = i == sparser
                    else:
                        element.stemDirection = "up" if i == 0 else "down"
                    voice.insert(element.offset, element)
                measure.insert(0, voice)
        staff.append(measure)
    staff.makeNotation(inPlace=True)
    for voice in staff.recurse().getElementsByClass(stream.Voice):  # makeNotation brackets only unvoiced bars
        makeNotation.makeTupletBrackets(voice, inPlace=True)
    octave_lines(staff, octave_spans, treble)
    return staff


_SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")


def _signature(key: int):
    from music21 import key as keys

    return keys.Key(*KEY_NAMES[key].split())


def _speller(key: int):
    """MIDI pitch → a music21 pitch spelled in `key`: the scale's own name for a pitch of its
    scale (a minor key's raised sixth and seventh too), otherwise a sharp in a key of sharps
    and a flat in a key of flats."""
    from music21 import pitch

    signature = _signature(key)
    scale = {p.pitchClass: p.name for p in signature.pitches}
    if signature.mode == "minor":  # the raised sixth and seventh of melodic minor: B and C# in D minor
        raised = (signature.pitchFromDegree(degree).transpose("A1") for degree in (6, 7))
        scale.update({p.pitchClass: p.name for p in raised if p.pitchClass not in scale})
    others = _FLATS if signature.sharps < 0 else _SHARPS

    def spell(midi: int):
        wanted = scale.get(midi % 12, others[midi % 12])
        plain = pitch.Pitch(midi=midi)
        if plain.name == wanted:
            return plain
        return next((p for p in plain.getAllCommonEnharmonics() if p.name == wanted), plain)

    return spell


def _mean_pitch(elements: list) -> float:
    pitches = [p.midi for e in elements if not e.isRest for p in e.pitches]
    return sum(pitches) / len(pitches)


