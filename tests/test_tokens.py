import json

import pytest
from music21 import chord, pitch

from lstm_composer.midi import MidiSong, NoteEvent
from lstm_composer.tokens import (Vocabulary, normal_order, note_name, note_pitch, token_for, token_pitches,
                                  tokenize)


def test_note_names_are_music21s_spelling_and_invert():
    for midi_number in range(128):
        assert note_name(midi_number) == pitch.Pitch(midi=midi_number).nameWithOctave
    for midi_number in range(12, 128):  # below octave 0, music21's names are ambiguous
        assert note_pitch(note_name(midi_number)) == midi_number


@pytest.mark.parametrize("pitches, token", [
    ([64], "E4"),
    ([61], "C#4"),
    ([60, 64, 67], "0.4.7"),
    ([64, 67, 71], "4.7.11"),
    ([55, 62, 71, 76], "11.2.4.7"),
    ([48, 60], "0"),
])
def test_token_format(pitches, token):
    assert token_for(pitches) == token


def test_normal_order_is_music21s_for_every_fifth_pitch_class_set():
    # Checked for all 4095 sets once (37 s); every fifth keeps the suite quick.
    for mask in range(1, 4096, 5):
        classes = [pc for pc in range(12) if mask >> pc & 1]
        assert list(normal_order(frozenset(classes))) == chord.Chord([60 + pc for pc in classes]).normalOrder


def test_token_pitches_voice_chords_upwards_from_octave_four():
    assert token_pitches("E-4") == [63]
    assert token_pitches("4.7.11") == [64, 67, 71]
    assert token_pitches("11.2.4.7") == [71, 74, 76, 79]


def test_onsets_become_tokens_across_parts_with_doubled_pitches_merged():
    note = lambda start, end, p, vel, ch: NoteEvent(start=start, pitch=p, end=end, velocity=vel, channel=ch,
                                                  program=0, track=ch)
    song = MidiSong(ticks_per_quarter=96, notes=[
        note(0, 96, 60, 70, 0), note(0, 384, 64, 90, 1), note(0, 48, 67, 60, 1), note(0, 72, 60, 100, 1),
        note(96, 144, 72, 50, 0),
    ])
    tokens = tokenize(song)
    assert [(t.position, t.token, t.pitches, t.offset, t.duration, t.velocity) for t in tokens] == [
        (0, "0.4.7", [60, 64, 67], 0.0, 1.0, 100),  # the median of C's 1 (the longer of two), E's 4 and G's 0.5
        (1, "C5", [72], 1.0, 0.5, 50),
    ]


def test_vocabulary_round_trip():
    vocabulary = Vocabulary(["E4", "0.4.7", "E4", "C#5"])
    assert vocabulary.tokens == ["0.4.7", "C#5", "E4"]
    restored = Vocabulary.from_json(vocabulary.to_json())
    assert restored == vocabulary
    assert json.loads(vocabulary.to_json()) == {"tokens": ["0.4.7", "C#5", "E4"]}
    assert restored.decode(restored.encode(["E4", "0.4.7"])) == ["E4", "0.4.7"]


def test_empty_vocabulary_is_refused():
    with pytest.raises(ValueError, match="empty"):
        Vocabulary([])
