"""Standard MIDI File bytes → note events.

A small, strict reader written for this project: no Spark, no TensorFlow, no music21
streams. It reads every track of a format 0 or 1 file, pairs note-ons with note-offs
(a note-on with velocity 0 is a note-off), and reports what is wrong with a broken file
in a sentence a user can act on, by raising `MidiError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PERCUSSION_CHANNEL = 9  # MIDI channel 10, counted from 0

# Data bytes that follow each channel-message status (high nibble).
_CHANNEL_DATA_LENGTH = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_META_END_OF_TRACK = 0x2F
_META_TEMPO = 0x51
_META_TIME_SIGNATURE = 0x58


class MidiError(ValueError):
    """The bytes are not a MIDI file this reader can trust; the message says why."""


@dataclass(frozen=True)
class NoteEvent:
    """One sounding note: onset and release in ticks, as written in the file."""

    start: int
    end: int
    pitch: int
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


class _Cursor:
    """Reads big-endian numbers and variable-length quantities from a byte range."""

    def __init__(self, data: bytes, start: int, end: int, where: str):
        self.data, self.pos, self.end, self.where = data, start, end, where

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MidiError(f"truncated: {self.where} ends in the middle of an event")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise MidiError(f"truncated: {self.where} ends in the middle of an event")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varlen(self) -> int:
        value = 0
        for _ in range(4):
            b = self.byte()
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise MidiError(f"corrupt: {self.where} has a variable-length number over 4 bytes")


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
    song.notes.sort(key=lambda n: (n.start, n.pitch, n.channel))
    return song


def _read_track(data: bytes, start: int, end: int, track: int, song: MidiSong) -> None:
    cursor = _Cursor(data, start, end, f"track {track}")
    tick = 0
    running_status = 0
    programs = [0] * 16
    open_notes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}  # (ch, pitch) → FIFO

    def close(channel: int, pitch: int, at: int) -> None:
        pending = open_notes.get((channel, pitch))
        if pending:
            onset, velocity, program = pending.pop(0)
            song.notes.append(NoteEvent(onset, max(at, onset), pitch, velocity,
                                        channel, program, track))

    while cursor.pos < end:
        tick += cursor.varlen()
        status = cursor.byte()
        if status < 0x80:  # running status: this byte is already the first data byte
            if not running_status:
                raise MidiError(f"corrupt: track {track} uses running status before any status byte")
            cursor.pos -= 1
            status = running_status
        kind = status & 0xF0
        if kind in _CHANNEL_DATA_LENGTH:
            running_status = status
            payload = cursor.take(_CHANNEL_DATA_LENGTH[kind])
            channel = status & 0x0F
            if kind == 0xC0:
                programs[channel] = payload[0] & 0x7F
            elif kind in (0x80, 0x90):
                pitch, velocity = payload[0] & 0x7F, payload[1] & 0x7F
                if channel == PERCUSSION_CHANNEL:
                    song.percussion_notes += kind == 0x90 and velocity > 0
                elif kind == 0x90 and velocity > 0:
                    open_notes.setdefault((channel, pitch), []).append(
                        (tick, velocity, programs[channel]))
                else:
                    close(channel, pitch, tick)
        elif status == 0xFF:
            running_status = 0
            meta_type = cursor.byte()
            payload = cursor.take(cursor.varlen())
            if meta_type == _META_END_OF_TRACK:
                break
            if meta_type == _META_TEMPO and len(payload) == 3:
                micros = int.from_bytes(payload, "big")
                if micros:
                    song.tempos.append((tick, round(60_000_000 / micros, 3)))
            elif meta_type == _META_TIME_SIGNATURE and len(payload) >= 2:
                song.time_signatures.append((tick, f"{payload[0]}/{2 ** min(payload[1], 6)}"))
        elif status in (0xF0, 0xF7):
            running_status = 0
            cursor.take(cursor.varlen())
        else:
            raise MidiError(f"corrupt: track {track} has status byte {status:#04x} "
                            f"at byte {cursor.pos - 1}, which a MIDI file cannot contain")

    # A note still sounding when its track ends is released there.
    for (channel, pitch), pending in open_notes.items():
        while pending:
            close(channel, pitch, tick)
