import pytest

from lstm_composer.midi import MidiError, read_midi, variable_length
from midi_bytes import header, melody, midi_file, off, on, program, tempo, track


def notes_of(data):
    return [(n.start, n.end, n.pitch, n.velocity) for n in read_midi(data).notes]


def test_notes_keep_ticks_velocity_and_order():
    data = midi_file(melody([60, 62]), ticks_per_quarter=96)
    song = read_midi(data)
    assert song.ticks_per_quarter == 96
    assert notes_of(data) == [(0, 240, 60, 80), (240, 480, 62, 80)]


def test_note_on_with_velocity_zero_ends_the_note():
    data = midi_file(track((0, on(60, 90)), (480, on(60, 0))))
    assert notes_of(data) == [(0, 480, 60, 90)]


def test_running_status_reuses_the_last_status_byte():
    data = midi_file(track((0, b"\x90\x3c\x50"), (240, b"\x3c\x00"), (0, b"\x3e\x50"), (240, b"\x3e\x00")))
    assert notes_of(data) == [(0, 240, 60, 80), (240, 480, 62, 80)]


def test_a_note_that_never_ends_is_released_when_its_track_ends():
    data = midi_file(track((0, on(60)), (960, b"\xff\x01\x01x")))
    assert notes_of(data) == [(0, 960, 60, 80)]


def test_percussion_channel_is_counted_but_not_kept():
    song = read_midi(midi_file(track((0, on(36, channel=9)), (240, off(36, channel=9)), (0, on(60)), (240, off(60)))))
    assert [n.pitch for n in song.notes] == [60]
    assert song.percussion_notes == 1


def test_programs_tempos_and_parts_are_kept():
    first = track((0, tempo(90)), (0, program(40)), (0, on(67)), (480, off(67)))
    second = track((0, program(0, channel=1)), (0, on(48, channel=1)), (960, off(48, channel=1)))
    song = read_midi(midi_file(first, second))
    assert [(n.pitch, n.program, n.channel, n.track) for n in song.notes] == [(48, 0, 1, 1), (67, 40, 0, 0)]
    assert song.tempos == [(0, 90.0)]


def test_unknown_chunks_are_skipped():
    data = header(1) + b"XFIH" + (3).to_bytes(4, "big") + b"abc" + melody([64])
    assert notes_of(data) == [(0, 240, 64, 80)]


# The examples of the Standard MIDI File specification (1.0), "Variable-Length Quantities".
SPEC_NUMBERS = {0x00: "00", 0x40: "40", 0x7F: "7F", 0x80: "81 00", 0x2000: "C0 00", 0x3FFF: "FF 7F",
                0x4000: "81 80 00", 0x100000: "C0 80 00", 0x1FFFFF: "FF FF 7F", 0x200000: "81 80 80 00",
                0x8000000: "C0 80 80 00", 0xFFFFFFF: "FF FF FF 7F"}


def test_variable_length_numbers_are_the_standards():
    assert {value: variable_length(value).hex(" ").upper() for value in SPEC_NUMBERS} == SPEC_NUMBERS
    for value in (-1, 0x10000000):
        with pytest.raises(ValueError, match="outside"):
            variable_length(value)
    # and the reader counts ticks from them: a note after the longest delta there is
    assert notes_of(midi_file(track((0x0FFFFFFF, on(60)), (1, off(60))))) == [(0x0FFFFFFF, 0x10000000, 60, 80)]


def test_a_note_off_releases_the_earliest_of_several_open_notes_of_its_pitch():
    data = midi_file(track((0, on(60, 50)), (240, on(60, 90)), (240, off(60)), (240, off(60))))
    assert notes_of(data) == [(0, 480, 60, 50), (240, 720, 60, 90)]


def test_sysex_events_are_skipped_and_end_running_status():
    sysex = b"\xf0" + variable_length(200) + bytes(199) + b"\xf7"  # a two-byte length
    escape = b"\xf7" + variable_length(2) + b"\x90\x40"  # an escape: raw bytes, not a note
    data = midi_file(track((0, on(60)), (240, sysex), (0, off(60)), (0, escape), (240, on(62)), (240, off(62))))
    assert notes_of(data) == [(0, 240, 60, 80), (480, 720, 62, 80)]
    with pytest.raises(MidiError, match="running status before any status byte"):
        read_midi(midi_file(track((0, on(60)), (240, sysex), (0, b"\x3c\x00"))))


def test_smpte_time_division_is_refused_with_a_reason():
    smpte = (0xE7 << 8 | 40).to_bytes(2, "big")  # -25 frames per second, 40 ticks per frame
    data = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + smpte + melody([60])
    with pytest.raises(MidiError, match="SMPTE time division is not supported"):
        read_midi(data)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"RIFF....WAVEfmt ", "not a MIDI file"),
    (midi_file(melody([60]), smf_format=2), "format 2"),
    (midi_file(melody([60, 62, 64]))[:-7], "truncated"),
    (header(1), "no MTrk"),
    (midi_file(track((0, b"\x3c\x50")), ), "running status before any status byte"),
])
def test_broken_files_are_refused_with_a_reason(data, reason):
    with pytest.raises(MidiError, match=reason):
        read_midi(data)


def test_a_program_set_in_the_setup_track_reaches_the_notes_of_other_tracks():
    # Format 1: track 0 sets channel 0 to program 40 at the start and to 73 at tick 960;
    # track 1 plays channel 0; track 2 sets its own channel 1 to 19 and plays it.
    setup = track((0, tempo(100)), (0, program(40)), (960, program(73)))
    strings = track((0, on(67)), (480, off(67)), (480, on(69)), (480, off(69)))
    organ = track((0, program(19, channel=1)), (0, on(48, channel=1)), (960, off(48, channel=1)))
    song = read_midi(midi_file(setup, strings, organ))
    assert [(n.start, n.pitch, n.program) for n in song.notes] == [(0, 48, 19), (0, 67, 40), (960, 69, 73)]


def test_a_later_tracks_program_change_applies_from_its_tick_on():
    early = track((0, on(60)), (480, off(60)), (480, on(62)), (480, off(62)))
    later = track((900, program(5)))
    assert [n.program for n in read_midi(midi_file(early, later)).notes] == [0, 5]
