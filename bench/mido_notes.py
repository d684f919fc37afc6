"""MIDI files read with mido, a reader that shares no code with the project's own: for checking
what the project writes and reads."""
from pathlib import Path

import mido


def mido_notes(path: Path) -> tuple[list[tuple[int, int, int, int]], int, list[tuple[float, float]]]:
    """(every note as (start tick, pitch, end tick, velocity), ticks per quarter, each time
    signature as (offset, bar length) in quarters). Read track by track: a note-on is paired with
    the first open note-off of its channel and pitch, and a note still sounding at its track's
    end is released there."""
    midi = mido.MidiFile(str(path))
    tpq, notes, signatures = midi.ticks_per_beat, [], []
    for track in midi.tracks:
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "time_signature":
                signatures.append((tick / tpq, 4 * message.numerator / message.denominator))
            elif message.type == "note_on" and message.velocity:
                sounding.setdefault((message.channel, message.note), []).append((tick, message.velocity))
            elif message.type in ("note_on", "note_off") and sounding.get((message.channel, message.note)):
                start, velocity = sounding[(message.channel, message.note)].pop(0)
                notes.append((start, message.note, tick, velocity))
        notes += [(start, note, tick, velocity) for (_, note), held in sounding.items() for start, velocity in held]
    return notes, tpq, sorted(signatures)
