"""Readers that share no code with the project's writers, for checking what they write:
mido for MIDI files, music21 for MusicXML, Python's wave module and numpy for WAV files."""
from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MidiContents:
    notes: list[tuple[float, int, float, int, int]]  # (onset, pitch, duration, velocity, program), quarter lengths
    tempos: list[tuple[float, float]]  # (onset, beats per minute)
    time_signatures: list[tuple[float, str]]
    ticks_per_quarter: int
    tracks: int
    seconds: float  # how long the file plays, as mido reckons it


def read_midi_with_mido(path: str | Path) -> MidiContents:
    """Every note of every track, a note-on paired with the first open note-off of its
    channel and pitch, sorted by onset and pitch."""
    import mido

    song = mido.MidiFile(str(path))
    quarter = song.ticks_per_beat
    notes, tempos, signatures = [], [], []
    for track in song.tracks:
        tick = 0
        programs = [0] * 16
        sounding: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for message in track:
            tick += message.time
            if message.type == "program_change":
                programs[message.channel] = message.program
            elif message.type == "note_on" and message.velocity > 0:
                sounding.setdefault((message.channel, message.note), []).append(
                    (tick, message.velocity, programs[message.channel]))
            elif message.type in ("note_on", "note_off"):
                start, velocity, program = sounding[(message.channel, message.note)].pop(0)
                notes.append((start / quarter, message.note, (tick - start) / quarter, velocity, program))
            elif message.type == "set_tempo":
                tempos.append((tick / quarter, round(mido.tempo2bpm(message.tempo), 3)))
            elif message.type == "time_signature":
                signatures.append((tick / quarter, f"{message.numerator}/{message.denominator}"))
        assert not any(sounding.values()), f"{path}: notes never released: {sounding}"
    return MidiContents(sorted(notes), tempos, signatures, quarter, len(song.tracks), song.length)


def played(events) -> list[tuple[float, int, float, int]]:
    """What a list of `Event`s asks a player for: (onset, pitch, duration, velocity) per pitch."""
    return sorted((e.offset, pitch, e.duration, e.velocity) for e in events for pitch in e.pitches)


def assert_midi_plays(path: str | Path, events, tempo: float, program: int) -> None:
    """The MIDI file plays exactly `events` (none of whose pitches is struck again while it
    sounds), at `tempo`, on `program`: note by note, onsets and durations within half a tick."""
    contents = read_midi_with_mido(path)
    assert contents.tempos == [(0.0, tempo)]
    assert {program} == {note[4] for note in contents.notes}
    half_tick = 0.5 / contents.ticks_per_quarter
    written = [(onset, pitch, duration, velocity) for onset, pitch, duration, velocity, _ in contents.notes]
    expected = played(events)
    assert [(p, v) for _, p, _, v in written] == [(p, v) for _, p, _, v in expected]
    for got, want in zip(written, expected):
        assert abs(got[0] - want[0]) <= half_tick and abs(got[2] - want[2]) <= half_tick, (got, want)


SCORE_GRID = 24  # sheet music is written on a grid of 1/24 quarter (32nds and sextuplets)


def sounding(staff) -> list[tuple[int, int, int]]:
    """(pitch, onset, length) of each note of a music21 staff as a reader hears it, ties
    joined, in 1/SCORE_GRID quarters."""
    notes = []
    held: dict[int, list[int]] = {}
    for element in staff.flatten().notes:
        for note in element.notes if element.isChord else [element]:
            tie = note.tie or element.tie
            start, length = round(element.offset * SCORE_GRID), round(element.quarterLength * SCORE_GRID)
            if tie is not None and tie.type in ("stop", "continue") and note.pitch.midi in held:
                held[note.pitch.midi][2] += length
            else:
                held[note.pitch.midi] = [note.pitch.midi, start, length]
                notes.append(held[note.pitch.midi])
    return sorted(tuple(n) for n in notes)


def assert_hands_split(treble: set[tuple[int, int]], bass: set[tuple[int, int]]) -> None:
    """The (pitch, onset) notes of the two staves split each onset as a pianist reads it: at
    one pitch, no note more than two ledger lines off its staff (A3 to E4 lie between them), and
    elsewhere than at middle C only where middle C would stretch a hand past an octave, or for
    a lone note (which goes to the hand nearest it)."""
    for onset in {onset for _, onset in treble | bass}:
        high = sorted(pitch for pitch, at in treble if at == onset)
        low = sorted(pitch for pitch, at in bass if at == onset)
        assert not (high and low) or low[-1] < high[0], (onset, low, high)
        assert all(pitch >= 57 for pitch in high) and all(pitch <= 64 for pitch in low), (onset, low, high)
        if len(high + low) > 1 and (any(pitch >= 60 for pitch in low) or any(pitch < 60 for pitch in high)):
            at_middle_c = ([p for p in low + high if p < 60], [p for p in low + high if p >= 60])
            assert any(hand and hand[-1] - hand[0] > 12 for hand in at_middle_c), (onset, low, high)


def voice_lengths(staff) -> list[list[float]]:
    """For each measure of a music21 staff, the summed quarter lengths of the notes, chords and
    rests of each voice (of the measure itself when it has no voices)."""
    lengths = []
    for measure in staff.getElementsByClass("Measure"):
        voices = list(measure.voices) or [measure]
        lengths.append([float(sum(e.quarterLength for e in voice.notesAndRests)) for voice in voices])
    return lengths


def read_musicxml(path: str | Path):
    """(score, treble staff, bass staff) as music21 parses the file, with the check that every
    voice of every bar is full (notes and rests add up to a bar of the score's time signature)."""
    from music21 import converter, meter

    score = converter.parse(str(path))
    assert len(score.parts) == 2, f"{path}: {len(score.parts)} staves, not a grand staff"
    treble, bass = score.parts
    for staff in (treble, bass):
        assert len(staff.getElementsByClass("Measure")) == len(treble.getElementsByClass("Measure"))
        [signature] = staff.recurse().getElementsByClass(meter.TimeSignature)
        bar = float(signature.barDuration.quarterLength)
        for number, voices in enumerate(voice_lengths(staff), start=1):
            full = voices and all(abs(length - bar) < 1e-9 for length in voices)
            assert full, f"{path}: bar {number} holds {voices}, not {bar}"
    return score, treble, bass


def musicxml_title(path: str | Path) -> str | None:
    """The work title a notation program shows, read from the XML itself."""
    from xml.etree import ElementTree

    return ElementTree.parse(str(path)).getroot().findtext("work/work-title")


@dataclass(frozen=True)
class Audio:
    rate: int
    seconds: float
    samples: np.ndarray  # float, channels averaged

    def loudness(self, start: float, end: float) -> float:
        """Root mean square of the samples between two times, in seconds."""
        part = self.samples[int(start * self.rate):int(end * self.rate)]
        return float(np.sqrt(np.mean(part ** 2))) if len(part) else 0.0


def read_wav(path: str | Path) -> Audio:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2, "16-bit samples expected"
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        rate, channels = wav.getframerate(), wav.getnchannels()
    samples = frames.reshape(-1, channels).astype(np.float64).mean(axis=1)
    return Audio(rate, len(samples) / rate, samples)
