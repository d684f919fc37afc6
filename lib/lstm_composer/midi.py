"""Standard MIDI File bytes → note events.

A small, strict reader written for this project: no Spark, no TensorFlow, no music21
streams. It reads every track of a format 0 or 1 file, pairs note-ons with note-offs
(a note-on with velocity 0 is a note-off), and reports what is wrong with a broken file
in a sentence a user can act on, by raising `MidiError`. `variable_length` encodes the
format's variable-length numbers for whatever writes MIDI bytes.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

PERCUSSION_CHANNEL = 9  # MIDI channel 10, counted from 0
DEFAULT_BPM = 120.0  # what MIDI plays before (or without) any tempo event

# Data bytes that follow each channel-message status (high nibble).
_CHANNEL_DATA_LENGTH = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_META_END_OF_TRACK = 0x2F
_META_TEMPO = 0x51
_META_TIME_SIGNATURE = 0x58
_VARIABLE_LENGTH_MAX = 0x0FFFFFFF  # four bytes, the most the standard allows


class MidiError(ValueError):
    """The bytes are not a MIDI file this reader can trust; the message says why."""


def variable_length(value: int) -> bytes:
    """`value` as a MIDI variable-length number (delta times, meta and sysex lengths): seven
    bits a byte, most significant first, the top bit set on every byte but the last."""
    if not 0 <= value <= _VARIABLE_LENGTH_MAX:
        raise ValueError(f"{value} is outside 0..{_VARIABLE_LENGTH_MAX}, what four bytes of a MIDI number hold")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


class NoteEvent(NamedTuple):
    """One sounding note: onset and release in ticks, as written in the file."""

    start: int
    pitch: int
    end: int
    velocity: int
    channel: int
    program: int
    track: int


@dataclass
class MidiSong:
    """Everything the tokenizer needs from one file."""

    ticks_per_quarter: int
    notes: list[NoteEvent] = field(default_factory=list)
    tempos: list[tuple[int, float]] = field(default_factory=list)  # (tick, beats per minute)
    time_signatures: list[tuple[int, str]] = field(default_factory=list)  # (tick, "3/4")
    percussion_notes: int = 0
    program_changes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (tick, track, channel, program)


def seconds_at(positions: Sequence[float], tempos: Sequence[tuple[float, float]],
               units_per_quarter: float = 1.0) -> np.ndarray:
    """Seconds from the start of the piece at each of `positions`, by the tempo map `tempos`:
    (position, beats per minute) pairs in the same unit as `positions` (ticks with the file's
    ticks per quarter, or quarter notes with 1). Before the first tempo event, and in a file
    without any, MIDI plays at 120 BPM; of two events at one position the later one holds."""
    changes = sorted(tempos, key=lambda change: change[0])  # stable: file order within a position
    starts = np.array([0.0] + [float(position) for position, _ in changes])
    seconds_per_unit = 60.0 / np.array([DEFAULT_BPM] + [bpm for _, bpm in changes]) / units_per_quarter
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(starts) * seconds_per_unit[:-1])])
    x = np.asarray(positions, dtype=np.float64)
    segment = np.maximum(np.searchsorted(starts, x, side="right") - 1, 0)
    return elapsed[segment] + (x - starts[segment]) * seconds_per_unit[segment]


def read_midi(data: bytes) -> MidiSong:
    """Parse Standard MIDI File bytes into note events, tempos and time signatures."""
    if len(data) == 0:
        raise MidiError("empty file (0 bytes)")
    if data[:4] != b"MThd":
        raise MidiError("not a MIDI file: it does not start with 'MThd'")
    if len(data) < 14:
        raise MidiError("truncated: the MIDI header is incomplete")
    header_length = int.from_bytes(data[4:8], "big")
    smf_format = int.from_bytes(data[8:10], "big")
    division = int.from_bytes(data[12:14], "big")
    if header_length < 6:
        raise MidiError(f"corrupt: header length {header_length} is below 6")
    if smf_format == 2:
        raise MidiError("SMF format 2 (independent sequences) is not supported")
    if smf_format not in (0, 1):
        raise MidiError(f"corrupt: unknown SMF format {smf_format}")
    if division & 0x8000:
        raise MidiError("SMPTE time division is not supported (only ticks per quarter note)")
    if division == 0:
        raise MidiError("corrupt: zero ticks per quarter note")

    song = MidiSong(ticks_per_quarter=division)
    pos = 8 + header_length
    track_index = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos:pos + 4]
        length = int.from_bytes(data[pos + 4:pos + 8], "big")
        body = pos + 8
        if chunk_id == b"MTrk":
            if body + length > len(data):
                raise MidiError(
                    f"truncated: track {track_index} declares {length} bytes "
                    f"but only {len(data) - body} remain")
            _read_track(data, body, body + length, track_index, song)
            track_index += 1
        pos = body + length  # any other chunk id is skipped, as the standard asks
    if track_index == 0:
        raise MidiError("no MTrk track chunk found")
    _share_programs_across_tracks(song)
    song.notes.sort()  # by onset, then pitch: NoteEvent's first fields
    return song


def _share_programs_across_tracks(song: MidiSong) -> None:
    """A channel's program holds for the whole file, not only the track that set it: a format-1
    file often sets programs in its first (setup) track and plays them in others. Each track's
    notes got their own track's programs while it was read; where a channel's program changes
    and its notes are not all in one track, each note gets the channel's last program change
    at or before its onset, in time order across tracks (at one tick, in track order)."""
    tracks: dict[int, set[int]] = {}
    for _, track, channel, _ in song.program_changes:
        tracks.setdefault(channel, set()).add(track)
    for note in song.notes:
        if note.channel in tracks:
            tracks[note.channel].add(note.track)
    shared = {channel for channel, seen in tracks.items() if len(seen) > 1}
    if not shared:
        return
    timelines = {channel: sorted((((tick, track), program) for tick, track, c, program in song.program_changes
                                  if c == channel), key=lambda change: change[0]) for channel in shared}
    keys = {channel: [key for key, _ in timeline] for channel, timeline in timelines.items()}
    for i, note in enumerate(song.notes):
        if note.channel in shared:
            last = bisect_right(keys[note.channel], (note.start, note.track)) - 1
            program = timelines[note.channel][last][1] if last >= 0 else 0
            if program != note.program:
                song.notes[i] = note._replace(program=program)


def _read_track(data: bytes, pos: int, end: int, track: int, song: MidiSong) -> None:
    # The hot loop of the parse job: bytes are read inline, not through helper calls.
    truncated = f"truncated: track {track} ends in the middle of an event"
    tick = 0
    running_status = 0
    programs = [0] * 16
    open_notes: dict[int, list[tuple[int, int, int]]] = {}  # channel << 7 | pitch → FIFO
    notes = song.notes
    new_note = tuple.__new__  # NoteEvent without the Python-level __new__ of NamedTuple

    def varlen() -> int:
        nonlocal pos
        value = 0
        for _ in range(4):
            if pos >= end:
                raise MidiError(truncated)
            b = data[pos]
            pos += 1
            value = (value << 7) | (b & 0x7F)
            if b < 0x80:
                return value
        raise MidiError(f"corrupt: track {track} has a variable-length number over 4 bytes")

    while pos < end:
        if data[pos] < 0x80:  # a one-byte delta time, by far the most common
            tick += data[pos]
            pos += 1
        else:
            tick += varlen()
        if pos >= end:
            raise MidiError(truncated)
        status = data[pos]
        if status < 0x80:  # running status: this byte is already the first data byte
            if not running_status:
                raise MidiError(f"corrupt: track {track} uses running status before any status byte")
            status = running_status
        else:
            pos += 1
        kind = status & 0xF0
        if kind == 0x90 or kind == 0x80:
            running_status = status
            if pos + 2 > end:
                raise MidiError(truncated)
            pitch, velocity = data[pos] & 0x7F, data[pos + 1] & 0x7F
            pos += 2
            channel = status & 0x0F
            key = channel << 7 | pitch
            if channel == PERCUSSION_CHANNEL:
                song.percussion_notes += kind == 0x90 and velocity > 0
            elif kind == 0x90 and velocity > 0:
                pending = open_notes.get(key)
                if pending is None:
                    open_notes[key] = [(tick, velocity, programs[channel])]
                else:
                    pending.append((tick, velocity, programs[channel]))
            else:
                pending = open_notes.get(key)
                if pending:
                    onset, on_velocity, program = pending.pop(0)
                    notes.append(new_note(NoteEvent, (onset, pitch, tick, on_velocity, channel, program, track)))
        elif kind in _CHANNEL_DATA_LENGTH:  # other channel messages: only programs matter
            running_status = status
            size = _CHANNEL_DATA_LENGTH[kind]
            if pos + size > end:
                raise MidiError(truncated)
            if kind == 0xC0:
                programs[status & 0x0F] = data[pos] & 0x7F
                song.program_changes.append((tick, track, status & 0x0F, data[pos] & 0x7F))
            pos += size
        elif status == 0xFF:
            running_status = 0
            if pos >= end:
                raise MidiError(truncated)
            meta_type = data[pos]
            pos += 1
            size = varlen()
            if pos + size > end:
                raise MidiError(truncated)
            payload = data[pos:pos + size]
            pos += size
            if meta_type == _META_END_OF_TRACK:
                break
            if meta_type == _META_TEMPO and size == 3:
                micros = int.from_bytes(payload, "big")
                if micros:
                    song.tempos.append((tick, round(60_000_000 / micros, 3)))
            elif meta_type == _META_TIME_SIGNATURE and size >= 2:
                song.time_signatures.append((tick, f"{payload[0]}/{2 ** min(payload[1], 6)}"))
        elif status == 0xF0 or status == 0xF7:
            running_status = 0
            size = varlen()
            if pos + size > end:
                raise MidiError(truncated)
            pos += size
        else:
            raise MidiError(f"corrupt: track {track} has status byte {status:#04x} "
                            f"at byte {pos - 1}, which a MIDI file cannot contain")

    # A note still sounding when its track ends is released there.
    for key, pending in open_notes.items():
        for onset, velocity, program in pending:
            notes.append(NoteEvent(onset, key & 0x7F, tick, velocity, key >> 7, program, track))
