"""Events → a Standard MIDI File: one track, one instrument, the tempo, time and key signatures."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lstm_composer.events import Event
from lstm_composer.form import KEY_NAMES
from lstm_composer.metre import Metre
from lstm_composer.midi import variable_length
from lstm_composer.render.output import prepared

TICKS_PER_QUARTER = 480  # divisible by 24 and 16: the score's grid of 32nds and sextuplets lands on whole ticks
# A MIDI tempo event holds microseconds per quarter note in 3 bytes: 16,777,215 at most.
_MAX_MICROS_PER_QUARTER = 0xFFFFFF
MIN_TEMPO = 60_000_000 / _MAX_MICROS_PER_QUARTER  # about 3.58 beats per minute
MAX_TEMPO = 60_000_000.0  # one microsecond per quarter note


def write_midi(events: Sequence[Event], path: str | Path, tempo: float = 120.0, program: int = 0,
               metre: Metre = Metre(4, 4), keys: Sequence[tuple[int, int]] = ()) -> Path:
    """A one-track Standard MIDI File: GM `program` on channel 1, `tempo` in beats per minute,
    the time signature of `metre` and the key signatures of `keys` ((bar, key) where each
    starts; a key is an index into `form.KEY_NAMES`).

    Notes may overlap (a long note under later ones). A pitch struck again while it still
    sounds is released at the new strike, as a piano key would be.
    """
    if not 0 <= program <= 127:
        raise ValueError(f"program {program} is outside General MIDI's 0..127")
    if not MIN_TEMPO <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo {tempo:g} is outside the {MIN_TEMPO:.2f} to {MAX_TEMPO:,.0f} beats per minute "
                         f"a MIDI tempo event can hold")
    channel = 0
    notes: dict[int, list[list[int]]] = {}  # pitch → [start, end, velocity] in ticks
    for event in sorted(events, key=lambda e: e.offset):
        start = round(event.offset * TICKS_PER_QUARTER)
        end = max(start + 1, round((event.offset + event.duration) * TICKS_PER_QUARTER))
        for pitch in event.pitches:
            struck = notes.setdefault(pitch, [])
            if struck and struck[-1][1] > start:
                if struck[-1][0] == start:  # the same pitch twice at one onset: keep the longer, louder
                    struck[-1][1:] = [max(struck[-1][1], end), max(struck[-1][2], event.velocity)]
                    continue
                struck[-1][1] = start
            struck.append([start, end, event.velocity])

    # (tick, order, bytes): at one tick, a key signature goes first, then releases, then strikes.
    messages = [(start, 1, bytes((0x90 | channel, pitch, velocity)))
                for pitch, struck in notes.items() for start, _, velocity in struck]
    messages += [(end, 0, bytes((0x80 | channel, pitch, 0)))
                 for pitch, struck in notes.items() for _, end, _ in struck]
    messages += [(round(bar * metre.quarters * TICKS_PER_QUARTER), -1, _key_signature(key)) for bar, key in keys]
    messages.sort(key=lambda m: (m[0], m[1], m[2][1]))
    micros_per_quarter = round(60_000_000 / tempo)
    track = bytearray()
    track += variable_length(0) + b"\xff\x51\x03" + micros_per_quarter.to_bytes(3, "big")
    track += variable_length(0) + b"\xff\x58\x04" + bytes((metre.numerator, metre.denominator.bit_length() - 1, 24, 8))
    track += variable_length(0) + bytes((0xC0 | channel, program))
    tick = 0
    for at, _, message in messages:
        track += variable_length(at - tick) + message
        tick = at
    track += variable_length(0) + b"\xff\x2f\x00"

    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += TICKS_PER_QUARTER.to_bytes(2, "big")
    path = prepared(path)
    path.write_bytes(header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track))
    return path


def _key_signature(key: int) -> bytes:
    """The meta event: the sharps (negative: flats) of the major key with the same signature, and the mode."""
    sharps = (key % 12 + 3 * (key // 12)) * 7 % 12
    tonic = KEY_NAMES[key].split()[0]
    if "-" in tonic or "#" not in tonic and sharps > 6:  # as the score spells it: C# major 7 sharps, E- minor 6 flats
        sharps -= 12
    return b"\xff\x59\x02" + bytes((sharps & 0xFF, key // 12))
