"""Standard MIDI File bytes written by the tests themselves, event by event."""
from __future__ import annotations

from lstm_composer.midi import variable_length as varlen  # checked against the standard's own table in test_midi


def track(*events: tuple[int, bytes], end: bool = True) -> bytes:
    """A track chunk from (delta ticks, event bytes) pairs, closed by end-of-track."""
    body = b"".join(varlen(delta) + data for delta, data in events)
    if end:
        body += b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def header(n_tracks: int, smf_format: int = 1, ticks_per_quarter: int = 480) -> bytes:
    return (b"MThd" + (6).to_bytes(4, "big") + smf_format.to_bytes(2, "big")
            + n_tracks.to_bytes(2, "big") + ticks_per_quarter.to_bytes(2, "big"))


def midi_file(*tracks: bytes, smf_format: int = 1, ticks_per_quarter: int = 480) -> bytes:
    return header(len(tracks), smf_format, ticks_per_quarter) + b"".join(tracks)


def on(pitch: int, velocity: int = 80, channel: int = 0) -> bytes:
    return bytes([0x90 | channel, pitch, velocity])


def off(pitch: int, channel: int = 0) -> bytes:
    return bytes([0x80 | channel, pitch, 0])


def program(number: int, channel: int = 0) -> bytes:
    return bytes([0xC0 | channel, number])


def tempo(bpm: float) -> bytes:
    return b"\xff\x51\x03" + round(60_000_000 / bpm).to_bytes(3, "big")


def melody(pitches: list[int], step: int = 240, channel: int = 0) -> bytes:
    """One track playing `pitches` one after another, each `step` ticks long."""
    events = []
    for pitch in pitches:
        events += [(0, on(pitch, channel=channel)), (step, off(pitch, channel=channel))]
    return track(*events)


def chords(groups: list[list[int]], step: int = 480) -> bytes:
    """One track striking each group of pitches together, one group per `step` ticks."""
    events = []
    for group in groups:
        events += [(0, on(p)) for p in group]
        events += [(step if i == 0 else 0, off(p)) for i, p in enumerate(group)]
    return track(*events)


def time_signature(numerator: int, denominator: int) -> bytes:
    return b"\xff\x58\x04" + bytes((numerator, denominator.bit_length() - 1, 24, 8))
