import re
import wave

import pytest

from lstm_composer.midi import read_midi
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
    data = write_midi(events, tmp_path / "piece.mid", tempo=90, program=40).read_bytes()
    song = read_midi(data)
    assert data[8:12] == b"\x00\x00\x00\x01"  # format 0, one track
    assert song.ticks_per_quarter == 480
    assert song.tempos == [(0, 90.0)]
    assert song.time_signatures == [(0, "4/4")]
    assert [(n.start, n.pitch, n.end, n.velocity, n.program) for n in song.notes] == [
        (0, 60, 960, 100, 40), (240, 64, 480, 30, 40), (480, 64, 640, 64, 40), (480, 67, 640, 64, 40),
        (480, 71, 640, 64, 40), (720, 58, 840, 127, 40), (960, 43, 1680, 1, 40)]
    assert song.percussion_notes == 0 and {n.channel for n in song.notes} == {0}


def test_midi_releases_a_pitch_struck_again_while_it_sounds(tmp_path):
    path = write_midi([Event("C4", 0.0, 2.0, 80), Event("C4", 1.0, 0.5, 90)], tmp_path / "again.mid")
    assert [(n.start, n.end, n.velocity) for n in read_midi(path.read_bytes()).notes] == [(0, 480, 80), (480, 720, 90)]


def sounding(staff) -> list[tuple[int, int, int]]:
    """(pitch, onset, length) of each note as a reader hears it, ties joined, in 1/12 quarters."""
    notes = []
    held: dict[int, list[int]] = {}
    for element in staff.flatten().notes:
        for note in element.notes if element.isChord else [element]:
            tie = note.tie or element.tie
            start, length = round(element.offset * 12), round(element.quarterLength * 12)
            if tie is not None and tie.type in ("stop", "continue") and note.pitch.midi in held:
                held[note.pitch.midi][2] += length
            else:
                held[note.pitch.midi] = [note.pitch.midi, start, length]
                notes.append(held[note.pitch.midi])
    return sorted(tuple(n) for n in notes)


def test_musicxml_is_a_grand_staff_with_every_note_in_its_hand(tmp_path):
    from music21 import clef, converter, dynamics, layout, tempo

    path = write_musicxml(PIECE, tmp_path / "piece.musicxml", tempo=84)
    score = converter.parse(path)
    treble, bass = score.parts
    assert isinstance(treble.recurse().getElementsByClass(clef.Clef).first(), clef.TrebleClef)
    assert isinstance(bass.recurse().getElementsByClass(clef.Clef).first(), clef.BassClef)
    assert [group.symbol for group in score.getElementsByClass(layout.StaffGroup)] == ["brace"]
    assert [mark.number for mark in score.recurse().getElementsByClass(tempo.MetronomeMark)] == [84]
    assert treble.getInstrument().instrumentName == "Piano"
    assert [m.timeSignature.ratioString for m in treble.getElementsByClass("Measure") if m.timeSignature] == ["4/4"]
    assert len(treble.getElementsByClass("Measure")) == len(bass.getElementsByClass("Measure")) == 2

    # Onsets to the nearest 1/12 quarter (D5 at 2.26 → 27/12), releases to their beat's 16ths
    # (E-5's 2/12 → 3/12); the chords split by hand at middle C.
    assert sounding(treble) == [
        (60, 12, 4), (64, 12, 4), (64, 16, 4), (64, 60, 6), (67, 12, 4), (67, 60, 6), (69, 36, 24),
        (71, 60, 6), (72, 0, 12), (73, 20, 4), (74, 27, 3), (75, 24, 3)]
    # G2 keeps its half note under the B-flat: two voices.
    assert sounding(bass) == [(43, 0, 24), (53, 30, 18), (58, 6, 6)]

    def marks(staff):
        return [(d.value, d.getOffsetInHierarchy(staff)) for d in staff.recurse().getElementsByClass(dynamics.Dynamic)]

    # One mark where each hand's loudness changes, not one a note.
    assert marks(treble) == [("p", 0.0), ("ff", 2.0)]
    assert marks(bass) == [("pp", 0.0), ("ff", 2.5)]
    # Written at the note they belong to, not shifted back from a later one (MuseScore ignores such shifts).
    assert set(re.findall(r"<offset[^>]*>(-?\d+)</offset>", path.read_text())) <= {"0"}


def test_musicxml_of_the_papers_timing_has_eighths_in_full_bars(tmp_path):
    from music21 import converter

    tokens = ["E4", "C#5", "B-3", "G2", "4.7.11", "0.4.7", "A4", "D5", "F3"] * 2
    score = converter.parse(write_musicxml(fixed_step(tokens), tmp_path / "paper.musicxml"))
    treble, bass = score.parts
    for staff in (treble, bass):
        for measure in staff.getElementsByClass("Measure"):
            assert measure.duration.quarterLength == 4.0
        assert {float(n.quarterLength) for n in staff.flatten().notes} == {0.5}
    assert len(treble.getElementsByClass("Measure")) == 3  # 18 eighths
    assert [p.midi for n in bass.flatten().notes for p in n.pitches] == [58, 43, 53, 58, 43, 53]


def test_musicxml_writes_the_piano_extremes_under_octave_lines(tmp_path):
    from music21 import converter, spanner

    score = converter.parse(write_musicxml(fixed_step(["C8", "G7", "C4", "A0"]), tmp_path / "extremes.musicxml"))
    lines = score.spannerBundle.getByClass(spanner.Ottava)
    assert [(line.type, [n.nameWithOctave for n in line.getSpannedElements()]) for line in lines] == [
        ("8va", ["C8", "G7"]), ("8vb", ["A0"])]
    assert [p.midi for n in score.flatten().notes for p in n.pitches] == [108, 103, 60, 21]  # as they sound


def test_piano_roll_is_a_png_of_a_sensible_size(tmp_path):
    data = plot_piano_roll(PIECE, tmp_path / "roll.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 800 <= width <= 2400 and 400 <= height <= 1200


def test_audio_has_sound_for_as_long_as_the_piece(tmp_path):
    # `make test` installs fluidsynth and its soundfont (make audio-deps).
    import numpy as np

    midi = write_midi(fixed_step(["C4", "0.4.7", "G2", "E5"] * 2), tmp_path / "piece.mid", tempo=120)
    with wave.open(str(write_audio(midi, tmp_path / "piece.wav"))) as wav:
        rate, seconds = wav.getframerate(), wav.getnframes() / wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert rate == 44100
    assert 2.0 <= seconds <= 2.0 + 5  # 8 eighths at 120 bpm, then the piano's release
    assert np.abs(samples).max() > 1000


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
