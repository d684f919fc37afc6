import re

import pytest

from lstm_composer.midi import read_midi
from readers import assert_midi_plays, musicxml_title, read_midi_with_mido, read_musicxml, read_wav, sounding
from lstm_composer.render import (
    AudioUnavailable, Event, fixed_step, plot_piano_roll, write_audio, write_midi, write_musicxml,
)

# A bar and a half for both hands: a long bass note under moving ones, triplets, 16ths,
# an onset off the grid (2.26), a 16th released early (0.17), a note tied over the bar
# line, soft then loud.
PIECE = [
    Event("C5", 0.0, 1.0, 40),
    Event("G2", 0.0, 2.0, 40),
    Event("B-3", 0.5, 0.5, 40),
    Event("0.4.7", 1.0, 1 / 3, 45),
    Event("E4", 4 / 3, 1 / 3, 45),
    Event("C#5", 5 / 3, 1 / 3, 45),
    Event("E-5", 2.0, 0.17, 110),
    Event("D5", 2.26, 0.25, 110),
    Event("F3", 2.5, 1.5, 110),
    Event("A4", 3.0, 2.0, 110),
    Event("4.7.11", 5.0, 0.5, 110),
]


def test_fixed_step_is_the_papers_timing():
    assert fixed_step(["E4", "4.7.11", "B-3"]) == [
        Event("E4", 0.0, 0.5, 80), Event("4.7.11", 0.5, 0.5, 80), Event("B-3", 1.0, 0.5, 80)]
    assert fixed_step(["C4", "C4"], step=0.25, velocity=100) == [
        Event("C4", 0.0, 0.25, 100), Event("C4", 0.25, 0.25, 100)]


def test_an_event_out_of_range_is_refused():
    with pytest.raises(ValueError, match="velocity 0"):
        Event("C4", 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="duration"):
        Event("C4", 0.0, 0.0, 80)


def test_midi_reads_back_as_written(tmp_path):
    events = [
        Event("C4", 0.0, 2.0, 100),  # held under the next ones
        Event("E4", 0.5, 0.5, 30),
        Event("4.7.11", 1.0, 1 / 3, 64),  # E4 again, struck as its previous note ends
        Event("B-3", 1.5, 0.25, 127),
        Event("G2", 2.0, 1.5, 1),
    ]
    path = write_midi(events, tmp_path / "piece.mid", tempo=90, program=40)
    assert path.read_bytes()[8:12] == b"\x00\x00\x00\x01"  # format 0, one track
    midi = read_midi_with_mido(path)
    assert (midi.tracks, midi.ticks_per_quarter) == (1, 480)
    assert midi.tempos == [(0.0, 90.0)] and midi.time_signatures == [(0.0, "4/4")]
    assert midi.notes == [  # (onset, pitch, duration, velocity, program)
        (0.0, 60, 2.0, 100, 40), (0.5, 64, 0.5, 30, 40), (1.0, 64, 1 / 3, 64, 40), (1.0, 67, 1 / 3, 64, 40),
        (1.0, 71, 1 / 3, 64, 40), (1.5, 58, 0.25, 127, 40), (2.0, 43, 1.5, 1, 40)]
    # The project's own reader, which the parse job uses, reads the same notes on channel 1.
    song = read_midi(path.read_bytes())
    assert [(n.start, n.pitch, n.end, n.velocity, n.program) for n in song.notes] == [
        (round(onset * 480), pitch, round((onset + length) * 480), velocity, program)
        for onset, pitch, length, velocity, program in midi.notes]
    assert song.percussion_notes == 0 and {n.channel for n in song.notes} == {0}


def test_midi_plays_every_event_of_a_piece_note_by_note(tmp_path):
    assert_midi_plays(write_midi(PIECE, tmp_path / "piece.mid", tempo=84, program=0), PIECE, tempo=84, program=0)
    long_gaps = [Event("C4", 0.0, 0.5, 80), Event("D4", 40.0, 70.0, 90), Event("E4", 9000.0, 1.0, 100)]
    assert_midi_plays(write_midi(long_gaps, tmp_path / "gaps.mid", tempo=200, program=73), long_gaps,
                      tempo=200, program=73)  # deltas of 2, 3 and 4 bytes


def test_midi_releases_a_pitch_struck_again_while_it_sounds(tmp_path):
    path = write_midi([Event("C4", 0.0, 2.0, 80), Event("C4", 1.0, 0.5, 90), Event("C4", 1.0, 0.25, 100)],
                      tmp_path / "again.mid")
    # Struck again at 1.0 (twice: the longer length and the louder velocity win).
    assert read_midi_with_mido(path).notes == [(0.0, 60, 1.0, 80, 0), (1.0, 60, 0.5, 100, 0)]


def test_musicxml_is_a_grand_staff_with_every_note_in_its_hand(tmp_path):
    from music21 import clef, dynamics, layout, tempo

    path = write_musicxml(PIECE, tmp_path / "piece.musicxml", tempo=84)
    score, treble, bass = read_musicxml(path)  # two staves, every voice of every bar full
    assert (musicxml_title(path), score.metadata.composer) == ("piece", "lstm-composer")
    assert isinstance(treble.recurse().getElementsByClass(clef.Clef).first(), clef.TrebleClef)
    assert isinstance(bass.recurse().getElementsByClass(clef.Clef).first(), clef.BassClef)
    assert [group.symbol for group in score.getElementsByClass(layout.StaffGroup)] == ["brace"]
    assert [mark.number for mark in score.recurse().getElementsByClass(tempo.MetronomeMark)] == [84]
    assert treble.getInstrument().instrumentName == "Piano"
    assert [m.timeSignature.ratioString for m in treble.getElementsByClass("Measure") if m.timeSignature] == ["4/4"]
    assert len(treble.getElementsByClass("Measure")) == len(bass.getElementsByClass("Measure")) == 2

    # Onsets to the nearest 1/24 quarter (D5 at 2.26 → 54/24), releases to their beat's 16ths
    # (E-5's 4/24 → 6/24); the chords split by hand at middle C; the lone B-flat near middle C
    # goes to the hand that played nearest it (C5 above, G2 below).
    assert sounding(treble) == [
        (58, 12, 12), (60, 24, 8), (64, 24, 8), (64, 32, 8), (64, 120, 12), (67, 24, 8), (67, 120, 12),
        (69, 72, 48), (71, 120, 12), (72, 0, 12), (73, 40, 8), (74, 54, 6), (75, 48, 6)]
    assert sounding(bass) == [(43, 0, 48), (53, 60, 36)]

    def marks(staff):
        return [(d.value, d.getOffsetInHierarchy(staff)) for d in staff.recurse().getElementsByClass(dynamics.Dynamic)]

    # One mark for both hands where the phrase begins (between the staves), not one a note.
    assert marks(treble) == [("p", 0.0)] and marks(bass) == []
    # Written at the note they belong to, not shifted back from a later one (MuseScore ignores such shifts).
    assert set(re.findall(r"<offset[^>]*>(-?\d+)</offset>", path.read_text())) <= {"0"}


def test_musicxml_releases_a_pitch_struck_again_while_it_sounds_as_the_midi_does(tmp_path):
    # G3 held for two beats, struck again a beat later inside a chord: two voices on the bass staff.
    events = [Event("G3", 0.0, 2.0, 80), Event("5.7.11", 1.0, 0.75, 80, (47, 53, 55)), Event("G2", 3.0, 1.0, 80)]
    _, _, bass = read_musicxml(write_musicxml(events, tmp_path / "again.musicxml"))
    # (the chord's dotted eighth is written as a quarter: releases go to the eighth grid of an empty beat)
    assert sorted(sounding(bass)) == [(43, 72, 24), (47, 24, 24), (53, 24, 24), (55, 0, 24), (55, 24, 24)]


def test_musicxml_keeps_a_pitch_struck_again_one_twelfth_past_a_beat(tmp_path):
    # D5 held, struck again at 3 1/12: the first strike's last value (a 12-tuplet 32nd) and the
    # new strike's first ones fill beat 4 together, tied pitches all; music21's makeNotation
    # once joined them into one quarter, and the second strike was lost.
    events = [Event("D5", 0.0, 6.0, 80), Event("D5", 37 / 12, 1.0, 80)]
    _, treble, _ = read_musicxml(write_musicxml(events, tmp_path / "again.musicxml"))
    assert sounding(treble) == [(74, 0, 74), (74, 74, 22)]


def test_musicxml_writes_32nds_as_32nds_and_sextuplets_as_sextuplets(tmp_path):
    events = ([Event("C5", i / 8, 1 / 8, 80) for i in range(8)]
              + [Event("D5", 1 + i / 6, 1 / 6, 80) for i in range(6)])
    _, treble, _ = read_musicxml(write_musicxml(events, tmp_path / "fast.musicxml"))
    notes = list(treble.flatten().notes)
    assert [(n.duration.type, len(n.duration.tuplets)) for n in notes] == [("32nd", 0)] * 8 + [("16th", 1)] * 6
    assert sounding(treble) == [(72, 3 * i, 3) for i in range(8)] + [(74, 24 + 4 * i, 4) for i in range(6)]


def test_musicxml_of_the_papers_timing_has_eighths_in_full_bars(tmp_path):
    tokens = ["E4", "C#5", "B-3", "G2", "4.7.11", "0.4.7", "A4", "D5", "F3"] * 2
    _, treble, bass = read_musicxml(write_musicxml(fixed_step(tokens), tmp_path / "paper.musicxml"))
    for staff in (treble, bass):
        for measure in staff.getElementsByClass("Measure"):
            assert measure.duration.quarterLength == 4.0
        assert {float(n.quarterLength) for n in staff.flatten().notes} == {0.5}
    assert len(treble.getElementsByClass("Measure")) == 3  # 18 eighths
    assert [p.midi for n in bass.flatten().notes for p in n.pitches] == [58, 43, 53, 58, 43, 53]

    def rests(staff):
        return [(float(r.getOffsetInHierarchy(staff)), float(r.quarterLength)) for r in staff.recurse().notesAndRests
                if r.isRest]

    # A rest wherever the other hand plays, split at beats, and whole beats and half bars after the last note.
    assert rests(treble) == [(1.0, 1.0), (4.0, 0.5), (5.5, 0.5), (6.0, 0.5), (8.5, 0.5), (9.0, 1.0), (10.0, 2.0)]
    assert rests(bass) == [(0.0, 1.0), (2.0, 2.0), (4.5, 0.5), (5.0, 0.5), (6.5, 0.5), (7.0, 1.0), (8.0, 0.5),
                           (9.0, 1.0), (10.0, 2.0)]


def test_written_bars_of_a_metre_that_ends_inside_a_beat_are_full():
    from music21 import pitch

    from lstm_composer.render.notation import GRID, written

    # 3/8 (36 steps of 1/24 quarter): bar 1 ends halfway through its second quarter, inside the
    # rest between D5's 16th and F5's. A value run over the bar line, rests included, made an
    # overfull bar that music21 does not always mend, and MuseScore read every later note late.
    notes = [(0, 12, [72]), (24, 6, [74]), (42, 6, [77])]
    bars = written(notes, 2, 36, lambda bar: lambda midi: pitch.Pitch(midi=midi))
    assert [sum(e.quarterLength for e in bar) * GRID for bar in bars] == [36, 36]
    assert [(bar, e.offset * GRID, e.isRest) for bar, elements in enumerate(bars) for e in elements][:5] == [
        (0, 0, False), (0, 12, True), (0, 24, False), (0, 30, True), (1, 0, True)]


def test_musicxml_splits_a_chord_between_the_hands_so_that_neither_stretches_past_an_octave(tmp_path):
    events = [Event("0.4", 0.0, 1.0, 80, (48, 60, 64, 67, 72, 76)),  # C3 and C4 to E5: 16 semitones above C4
              Event("7.0.4", 1.0, 1.0, 80, (43, 60, 64, 67)),  # G2 | C4 E4 G4: both hands within an octave
              Event("0", 2.0, 1.0, 80, (36, 60, 84)),  # three Cs two octaves apart: no split helps
              Event("B3", 3.0, 1.0, 80)]
    _, treble, bass = read_musicxml(write_musicxml(events, tmp_path / "hands.musicxml"))

    def struck(staff):
        return [sorted(p.midi for p in n.pitches) for n in staff.flatten().notes]

    assert struck(bass) == [[48, 60], [43], [36]]
    assert struck(treble) == [[64, 67, 72, 76], [60, 64, 67], [60, 84], [59]]  # B3 after the right hand's C4

    # A line that crosses middle C stays with the hand that plays it: the right hand's B3 and A3
    # after its C4, the left hand's C4 to E4 after its B3.
    right = [Event(name, float(i), 1.0, 80) for i, name in enumerate(["G4", "E4", "C4", "B3", "A3", "B3", "C4"])]
    left = [Event(name, float(i), 1.0, 80) for i, name in enumerate(["C3", "E3", "G3", "B3", "C4", "D4", "E4"])]
    for line, staff in ((right, 0), (left, 1)):
        staves = read_musicxml(write_musicxml(line, tmp_path / "line.musicxml"))[1:]
        assert [len(s.flatten().notes) for s in staves] == ([7, 0] if staff == 0 else [0, 7])

    # A mark stands below the treble staff where it strikes a note, below the bass staff where only that does.
    bass_first = [Event("0", 0.0, 2.0, 110, (48, 55)), Event("4.7.0", 1.0, 2.0, 100, (64, 67, 72, 76))]
    _, treble, bass = read_musicxml(write_musicxml(bass_first, tmp_path / "bass_first.musicxml"))
    assert [[d.value for d in staff.recurse().getElementsByClass("Dynamic")] for staff in (treble, bass)] == [
        [], ["ff"]]


def test_dynamics_change_where_phrases_begin_and_hairpins_grow_within_them(tmp_path):
    from music21 import dynamics

    # Sixteen 4/4 bars of quarter-note C5s: a phrase at p; one that starts at p and grows to ff
    # in its second half; one at ff throughout, which a single soft note does not move; one
    # that begins at p and is back at ff for the most of it: no mark, a crescendo.
    velocities = [49] * 16 + [49] * 8 + [112] * 8 + [112] * 15 + [20] + [49] * 7 + [112] * 9
    events = [Event("C5", float(beat), 1.0, velocity) for beat, velocity in enumerate(velocities)]
    _, treble, _ = read_musicxml(write_musicxml(events, tmp_path / "phrases.musicxml"))
    assert [(d.value, d.getOffsetInHierarchy(treble)) for d in treble.recurse().getElementsByClass(
        dynamics.Dynamic)] == [("p", 0.0), ("ff", 32.0)]
    wedges = list(treble.recurse().getElementsByClass(dynamics.DynamicWedge))
    assert [(type(w).__name__, w.getFirst().getOffsetInHierarchy(treble), w.getLast().getOffsetInHierarchy(treble))
            for w in wedges] == [("Crescendo", 20.0, 27.0), ("Crescendo", 52.0, 59.0)]


def test_musicxml_writes_the_piano_extremes_under_octave_lines(tmp_path):
    from music21 import converter, spanner

    score = converter.parse(write_musicxml(fixed_step(["C8", "G7", "C4", "A0"]), tmp_path / "extremes.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [n.nameWithOctave for n in line.getSpannedElements()]) for line in lines] == [
        ("8va", ["C8", "G7"]), ("8vb", ["A0"])]
    assert [p.midi for n in score.flatten().notes for p in n.pitches] == [108, 103, 60, 21]  # as they sound


def test_musicxml_puts_a_high_passage_under_one_octave_line_and_leaves_a_lone_high_note_its_ledger_lines(tmp_path):
    from music21 import converter, spanner

    # Bar 1: a lone E6 among middle notes. Bar 2: a run about E6 (D6 and C6 between) over a
    # held E5 in a second voice, then F4, which ends the line.
    melody = ["F4", "E6", "F4", "A4", "E6", "D6", "F6", "C6", "G6", "E6", "F4", "C5"]
    events = [Event(token, 0.5 * i + (2.0 if i >= 4 else 0.0), 0.5, 80) for i, token in enumerate(melody)]
    events.append(Event("E5", 4.0, 4.0, 60))
    score = converter.parse(write_musicxml(events, tmp_path / "high.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, sorted(p.midi for n in line.getSpannedElements() for p in n.pitches)) for line in lines] == [
        ("8va", [76, 84, 86, 88, 88, 89, 91])]  # E6 and the held E5, D6, F6, C6, G6, E6
    assert sorted(p.midi for n in score.flatten().notes for p in n.pitches) == sorted(  # as they sound
        [65, 88, 65, 69, 88, 86, 89, 84, 91, 88, 65, 72, 76])


def test_a_bass_figure_about_the_threshold_goes_under_one_octave_line_not_one_a_beat(tmp_path):
    from music21 import converter, spanner

    # Two bars of the piano-midi model's: F1-F2 octaves, four lines below the bass staff,
    # between B-flat 2s, which read as well an octave up (just over the staff); then middle C.
    events = [Event("5", 0.5 * i, 0.25, 80, (29, 41)) if i % 2 == 0 else Event("B-2", 0.5 * i, 0.25, 80)
              for i in range(16)]
    score = converter.parse(write_musicxml(events + [Event("C4", 8.0, 1.0, 80)], tmp_path / "figure.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, len(line.getSpannedElements())) for line in lines] == [("8vb", 15)]  # to the last octave


def test_musicxml_puts_even_a_lone_note_beyond_three_ledger_lines_under_an_octave_line(tmp_path):
    from music21 import converter, spanner

    events = [Event(token, 0.5 * i, 0.5, 80) for i, token in enumerate(["C5", "G6", "C5", "D5"])]  # G6: four lines up
    events.append(Event("F1", 4.0, 1.0, 80))  # four lines down
    score = converter.parse(write_musicxml(events, tmp_path / "lone.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert sorted((line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines) == [
        ("8va", [91]), ("8vb", [29])]  # as they sound


def test_musicxml_puts_a_chord_reaching_beyond_three_ledger_lines_under_an_octave_line_whole(tmp_path):
    from music21 import converter, spanner

    events = [Event("C5", 0.0, 1.0, 80), Event("A4", 1.0, 1.0, 80, (69, 93)), Event("C5", 2.0, 2.0, 80)]  # A4 with A6
    score = converter.parse(write_musicxml(events, tmp_path / "reach.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines] == [
        ("8va", [69, 93])]  # as they sound; written A3 and A5


def test_a_bass_chord_from_the_bottom_octave_to_g_sharp_3_goes_under_an_octave_line_whole(tmp_path):
    from music21 import converter, spanner

    # D#1, A#2, D#3 and G#3 (a chord of the piano-midi model's): under 8vb, G#3 is written G#4,
    # three ledger lines over the bass staff, and D#1 written D#2, one under it.
    events = [Event("C3", 0.0, 1.0, 80, (48,)), Event("3.10.8", 1.0, 1.0, 80, (27, 46, 51, 56)),
              Event("C3", 2.0, 2.0, 80, (48,))]
    score = converter.parse(write_musicxml(events, tmp_path / "low.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines] == [
        ("8vb", [27, 46, 51, 56])]  # as they sound


def test_a_chord_too_wide_for_the_treble_staff_gives_its_lowest_note_to_the_bass(tmp_path):
    from music21 import converter, spanner

    # D#4 to A6 (a voicing of the bundled corpus): on the treble staff A6 needs a line, and
    # under one D#4 would be written D#3, four ledger lines down; D#4 goes to the bass staff.
    events = [Event("3.6.9.0", 0.0, 1.0, 80, (63, 66, 69, 72, 81, 93)), Event("C5", 1.0, 1.0, 80)]
    score = converter.parse(write_musicxml(events, tmp_path / "wide.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines] == [
        ("8va", [66, 69, 72, 81, 93])]  # as they sound
    assert [p.midi for n in score.parts[1].flatten().notes for p in n.pitches] == [63]


def test_a_high_note_held_over_a_line_below_it_is_written_up_to_where_the_line_stops(tmp_path):
    from music21 import converter, spanner

    # A4 with G#6 struck on beat 4 and held into bar 2 over C#4 to A#4 in the other voice: the
    # line ends where C#4 is struck, and the held chord is written up to there. Tied on past the
    # line, its G#6 would be written an octave higher than the note it is tied from.
    events = [Event("9.8", 3.0, 3.0, 80, (69, 92))] + [
        Event(str(pitch % 12), 4.0 + 0.5 * i, 0.5, 80, (pitch,)) for i, pitch in enumerate([61, 64, 70, 64])]
    score = converter.parse(write_musicxml(events, tmp_path / "held-high.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [[(n.getOffsetInHierarchy(score.parts[0]), [p.midi for p in n.pitches]) for n in line.getSpannedElements()]
            for line in lines] == [[(3.0, [69, 92])]]
    assert [note for note in sounding(score.parts[0]) if note[0] == 92] == [(92, 72, 24)]  # up to bar 2


def test_an_octave_line_from_a_second_voice_to_a_first_starts_before_it_stops(tmp_path):
    import warnings

    from music21 import converter, spanner

    # The bass: D1 held through the bar (the lower voice) under a line rising from A1 after a
    # rest (the upper voice, written first): the line from D1 to A1 would stop before it starts.
    line = ["A1", "D2", "F2", "C3", "A2", "D3", "F3"]
    events = [Event("D1", 0.0, 4.0, 80)] + [Event(t, 0.5 + 0.5 * i, 0.5, 80) for i, t in enumerate(line)]
    path = write_musicxml(events + [Event("C5", 4.0, 1.0, 80)], tmp_path / "voices.musicxml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # music21 warns, and drops the line, where it meets a stop first
        score = converter.parse(path)
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines] == [
        ("8vb", [26, 33])]  # D1 and A1 as they sound
    assert sorted(p.midi for n in score.flatten().notes for p in n.pitches)[:2] == [26, 33]


def test_an_octave_line_over_one_staff_keeps_its_number_while_lines_come_and_go_on_the_other(tmp_path):
    import xml.etree.ElementTree as ElementTree

    from music21 import converter, spanner

    # Seven bars: the right hand at the top throughout (one 8va line), the left hand at the
    # bottom in the first half of each bar (seven 8vb lines) and about A3 in the second.
    events = [Event(["C7", "D7", "E7"][i % 3], 0.5 * i, 0.5, 80) for i in range(56)]
    for bar in range(7):
        events += [Event(token, 4.0 * bar + i, 1.0, 80) for i, token in enumerate(["C1", "D1", "G3", "A3"])]
    path = write_musicxml(events + [Event("C4", 28.0, 1.0, 80)], tmp_path / "both.musicxml")
    open_lines, staves = {}, []  # number → the staff of the line open under it; each stop's staff and its line's
    for direction in ElementTree.parse(path).iter("direction"):
        for shift in direction.iter("octave-shift"):
            staff, number = direction.findtext("staff"), shift.get("number")
            if shift.get("type") == "stop":
                staves.append((staff, open_lines.pop(number)))
            else:
                assert number not in open_lines  # a reader would stop the open line here
                open_lines[number] = staff
    assert staves == [("2", "2")] * 6 + [("1", "1"), ("2", "2")] and not open_lines  # bar 7: the treble staff first
    lines = converter.parse(path).spannerBundle.getByClass(spanner.Ottava)
    assert sorted((line.type, len(line.getSpannedElements())) for line in lines) == [("8va", 56)] + [("8vb", 2)] * 7


def test_a_note_held_into_an_octave_line_from_another_voice_is_written_up_to_the_line(tmp_path):
    import warnings

    from music21 import converter, spanner

    from lstm_composer.metre import Metre

    # A bar of 3/4 from a generated piece: G#5 held (the first voice) when F6 (the second
    # voice) begins the line, F#6 (the first voice) ends it. Tied on under the line, G#5 would
    # change octave in its tie, and the line had no note of the first voice to start on: G#5
    # is written up to the line at most (F6, 21/24), and the line starts on the first voice's rest.
    rows = [("F5", 0.125, 0.125, [77]), ("F#3", 0.25, 0.125, [54]), ("5.8", 0.375, 0.125, [65, 68, 80]),
            ("5", 0.5, 0.125, [41, 53]), ("G#5", 0.625, 4.0, [80]), ("C#5", 0.75, 0.125, [73]),
            ("F6", 0.875, 0.125, [89]), ("F#5", 1.0, 4.0, [78]), ("F#6", 1.125, 0.5, [90]),
            ("2", 1.25, 8.0, [62, 74]), ("4.5", 1.375, 1.0, [64, 65, 76]), ("F#3", 1.5, 8.0, [54])]
    events = [Event(token, offset, duration, 80, pitches) for token, offset, duration, pitches in rows]
    path = write_musicxml(events, tmp_path / "held.musicxml", metre=Metre(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Could not import octave-shift": the line would be dropped
        score = converter.parse(path)
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [p.midi for n in line.getSpannedElements() for p in n.pitches]) for line in lines] == [
        ("8va", [89, 78, 90])]  # as they sound
    assert [(start, start + length <= 21) for pitch, start, length in sounding(score.parts[0]) if pitch == 80] == [
        (9, True), (15, True)]  # the chord's G#5, and the held one
    assert sorted({p.midi for n in score.flatten().notes for p in n.pitches}) == sorted(
        {p for _, _, _, pitches in rows for p in pitches})


def test_piano_roll_is_a_png_of_a_sensible_size(tmp_path):
    data = plot_piano_roll(PIECE, tmp_path / "roll.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 800 <= width <= 2400 and 400 <= height <= 1200


def test_audio_sounds_where_the_notes_do_and_lasts_as_long_as_the_midi(tmp_path):
    # `make test` installs fluidsynth and its soundfont (make audio-deps).
    # Two notes, two bars of rest, a low note and a chord: four seconds at 120 bpm, eight at 60.
    events = [Event("C4", 0.0, 1.0, 100), Event("E5", 1.0, 1.0, 60), Event("G2", 6.0, 0.5, 80),
              Event("0.4.7", 7.0, 1.0, 90)]
    renders = {}
    for tempo in (120, 60):
        midi = write_midi(events, tmp_path / f"piece-{tempo}.mid", tempo=tempo)
        renders[tempo] = read_midi_with_mido(midi).seconds, read_wav(write_audio(midi, tmp_path / f"piece-{tempo}.wav"))
    (midi_seconds, audio), (slow_midi_seconds, slow_audio) = renders[120], renders[60]
    assert (audio.rate, midi_seconds, slow_midi_seconds) == (44100, 4.0, 8.0)
    assert midi_seconds <= audio.seconds <= midi_seconds + 3.5  # the MIDI, then the piano's release
    assert slow_audio.seconds - audio.seconds == pytest.approx(slow_midi_seconds - midi_seconds, abs=0.05)

    quarter = 60 / 120
    struck = [audio.loudness(e.offset * quarter, (e.offset + e.duration) * quarter) for e in events]
    assert min(struck) > 100, struck  # each note sounds (16-bit samples, full scale 32768)
    rest = audio.loudness(2.0, 3.0)  # a second after E5's release, until G2
    after = audio.loudness(midi_seconds + 2.0, audio.seconds)
    assert max(rest, after) < 0.02 * min(struck), (rest, after, struck)


def test_audio_refuses_a_file_that_is_not_a_soundfont(tmp_path):
    midi = write_midi(fixed_step(["C4"]), tmp_path / "piece.mid")
    (tmp_path / "fake.sf2").write_bytes(b"not a soundfont")
    with pytest.raises(AudioUnavailable, match="not a SoundFont"):
        write_audio(midi, tmp_path / "piece.wav", soundfont=str(tmp_path / "fake.sf2"))


def test_audio_without_fluidsynth_says_how_to_install_it(tmp_path, monkeypatch):
    midi = write_midi(fixed_step(["C4"]), tmp_path / "piece.mid")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AudioUnavailable) as refused:
        write_audio(midi, tmp_path / "piece.wav")
    assert "fluidsynth" in str(refused.value) and "make audio-deps" in str(refused.value)
    assert not (tmp_path / "piece.wav").exists()


def test_the_score_and_the_midi_file_are_in_the_pieces_metre_and_key(tmp_path):
    """Bars of 3/4 from offset 0, the key signature of D minor, each pitch spelled in the key:
    read back by music21 from the MusicXML and by mido from the MIDI file."""
    import mido
    from music21 import key, meter

    from lstm_composer.form import KEY_NAMES
    from lstm_composer.metre import Metre

    d_minor = KEY_NAMES.index("D minor")
    events = [Event("D4", 0.0, 1.0, 80), Event("B-3", 1.0, 1.0, 80), Event("C#4", 2.0, 1.0, 80),
              Event("0.2.5", 3.0, 2.0, 80), Event("A3", 5.0, 1.0, 80)]  # two bars of 3/4
    score, treble, bass = read_musicxml(write_musicxml(events, tmp_path / "piece.musicxml", metre=Metre(3, 4),
                                                       keys=[(0, d_minor)]))
    assert [str(s.ratioString) for s in score.recurse().getElementsByClass(meter.TimeSignature)] == ["3/4", "3/4"]
    [signature, _] = score.recurse().getElementsByClass(key.KeySignature)
    assert signature.sharps == -1
    assert len(treble.getElementsByClass("Measure")) == 2
    names = [p.nameWithOctave for staff in (treble, bass) for n in staff.flatten().notes for p in n.pitches]
    assert {"B-3", "C#4", "D4", "A3"} <= set(names) and "A#3" not in names and "D-4" not in names
    estimated = read_musicxml(write_musicxml(events, tmp_path / "guessed.musicxml"))[0]  # its notes' key
    assert [k.sharps for k in estimated.recurse().getElementsByClass(key.KeySignature)][0] == -1

    midi = mido.MidiFile(write_midi(events, tmp_path / "piece.mid", metre=Metre(6, 8), keys=[(0, d_minor)]))
    meta = {message.type: message for message in midi.tracks[0] if message.is_meta}
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (6, 8)
    assert meta["key_signature"].key == "Dm"


def test_a_piece_that_modulates_gets_a_new_key_signature_where_its_passage_begins(tmp_path):
    """Eight bars of C major scales, then eight of E major: the key signatures of C and E major
    (at bar 9, where the passage in E begins) in the MusicXML (music21) and the MIDI file
    (mido), each note spelled in its bar's key."""
    import mido
    from music21 import key

    from lstm_composer.render.piece import PieceFiles, write_piece
    from lstm_composer.tokens import note_name

    c_major, e_major = (0, 2, 4, 5, 7, 9, 11, 12), (4, 6, 8, 9, 11, 13, 15, 16)
    events = [Event(note_name(60 + step), bar * 4 + i * 0.5, 0.5, 80)
              for bar, scale in enumerate([c_major] * 8 + [e_major] * 8) for i, step in enumerate(scale)]
    written = write_piece(events, "{}", PieceFiles(str(tmp_path / "piece.mid"), musicxml=True))
    score, treble, _ = read_musicxml(written.paths[2])
    signatures = [(s.measureNumber, s.sharps) for s in score.parts[0].recurse().getElementsByClass(key.KeySignature)]
    assert signatures == [(1, 0), (9, 4)]
    names = {p.name for n in treble.flatten().notes for p in n.pitches if n.measureNumber >= 9}
    assert {"F#", "G#", "C#", "D#"} <= names and not names & {"G-", "A-", "D-", "E-"}
    midi = mido.MidiFile(written.paths[0])
    time, found = 0, []
    for message in midi.tracks[0]:
        time += message.time
        if message.type == "key_signature":
            found.append((time, message.key))
    assert found == [(0, "C"), (32 * midi.ticks_per_beat, "E")]


def test_the_last_bars_keep_the_key_signature_before_them():
    """Sixteen bars of C major scales, then three of E major: a passage of eight bars in E would
    have its signature, but the last three bars, under half a passage, are written in C."""
    from lstm_composer.form import KEY_NAMES, passage_keys
    from lstm_composer.tokens import note_name

    c_major, e_major = (0, 2, 4, 5, 7, 9, 11, 12), (4, 6, 8, 9, 11, 13, 15, 16)

    def scales(*keys):
        return [Event(note_name(60 + step), bar * 4 + i * 0.5, 0.5, 80, (60 + step,))
                for bar, scale in enumerate(keys) for i, step in enumerate(scale)]

    assert [(bar, KEY_NAMES[k]) for bar, k in passage_keys(scales(*[c_major] * 16, *[e_major] * 3), 4.0)] \
        == [(0, "C major")]
    assert [(bar, KEY_NAMES[k]) for bar, k in passage_keys(scales(*[c_major] * 16, *[e_major] * 5), 4.0)] \
        == [(0, "C major"), (16, "E major")]  # five bars: over half a passage, a signature of their own


def test_a_passage_takes_the_key_signature_that_leaves_the_fewest_notes_needing_an_accidental(tmp_path):
    """A run of sixteenths in C major over F#3 and B2 held four bars: by how long each pitch
    class sounds the passage fits B major (five sharps), but only one of its 30 notes lies
    outside C major's signature. The score (music21) has no sharp or flat in its signature and
    one accidental (the F#); the mode is the profile's, A minor's or C major's."""
    import mido
    from music21 import key

    from lstm_composer.render.piece import PieceFiles, write_piece
    from lstm_composer.tokens import note_name

    run = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62] * 2
    events = [Event("F#3", 0.0, 16.0, 64), Event("B2", 0.0, 16.0, 64)]
    events += [Event(note_name(p), i / 4, 0.25, 64) for i, p in enumerate(run)]
    written = write_piece(sorted(events, key=lambda e: e.offset), "{}",
                          PieceFiles(str(tmp_path / "piece.mid"), musicxml=True))
    score = read_musicxml(written.paths[2])[0]
    assert {s.sharps for s in score.recurse().getElementsByClass(key.KeySignature)} == {0}
    assert sum(p.accidental is not None and p.accidental.displayStatus is not False
               for n in score.recurse().notes for p in n.pitches) == 1
    assert [m.key for m in mido.MidiFile(written.paths[0]).tracks[0] if m.type == "key_signature"] in (["Am"], ["C"])


def test_the_midi_file_and_the_score_spell_every_key_signature_alike(tmp_path):
    import mido
    from music21 import converter

    from lstm_composer.form import KEY_NAMES

    for key, name in enumerate(KEY_NAMES):
        events = fixed_step(["C4", "E4"])
        midi = mido.MidiFile(write_midi(events, tmp_path / f"{key}.mid", keys=[(0, key)]))
        written = [m.key for m in midi.tracks[0] if m.type == "key_signature"]
        score = converter.parse(write_musicxml(events, tmp_path / f"{key}.musicxml", keys=[(0, key)]))
        sharps = score.recurse().getElementsByClass("KeySignature")[0].sharps
        assert written == [mido.midifiles.meta._key_signature_decode[(sharps, int(name.endswith("minor")))]], name
