"""Sequenced MIDI made to sound played: the test material for onset grouping.

A pianist's recording differs from the score typed into a sequencer in three ways this
module imitates: the notes of a chord start a few milliseconds apart, the tempo drifts
(rubato, written into the ticks under one nominal tempo, as a digital piano records it), and
velocities spread.
"""
from __future__ import annotations

import math

import numpy as np

from lstm_composer.midi import MidiSong, seconds_at
from midi_bytes import midi_file, off, on, tempo, track


def humanize(song: MidiSong, seed: int, chord_spread: float = 0.03, drift: float = 0.1,
             drift_period: float = 8.0, velocity_spread: int = 15, ticks_per_quarter: int = 384,
             nominal_bpm: float = 120.0) -> tuple[bytes, list[int]]:
    """One track of `song`'s notes as played: each note starts up to `chord_spread` seconds
    late, time runs up to `drift` faster or slower (a sine of `drift_period` seconds), and each
    velocity moves by up to `velocity_spread`; all at one nominal tempo. Returns the file's
    bytes and each note's onset tick, in the order of `song.notes`."""
    rng = np.random.default_rng(seed)
    starts = seconds_at([note.start for note in song.notes], song.tempos, song.ticks_per_quarter)
    ends = seconds_at([note.end for note in song.notes], song.tempos, song.ticks_per_quarter)

    def played(seconds: np.ndarray) -> np.ndarray:  # the drifting clock: its rate stays within 1 ± drift
        phase = 2 * math.pi * seconds / drift_period
        return seconds + drift * drift_period / (2 * math.pi) * (1 - np.cos(phase))

    onsets = played(starts) + rng.uniform(0.0, chord_spread, len(starts))
    releases = np.maximum(played(ends), onsets + 0.02)
    ticks_per_second = nominal_bpm / 60 * ticks_per_quarter
    onset_ticks = np.round(onsets * ticks_per_second).astype(int)
    release_ticks = np.maximum(np.round(releases * ticks_per_second).astype(int), onset_ticks + 1)
    velocities = np.clip([note.velocity + int(rng.integers(-velocity_spread, velocity_spread + 1))
                          for note in song.notes], 1, 127)
    messages = [(int(t), 1, on(note.pitch, int(v))) for note, t, v in zip(song.notes, onset_ticks, velocities)]
    messages += [(int(t), 0, off(note.pitch)) for note, t in zip(song.notes, release_ticks)]
    messages.sort(key=lambda message: (message[0], message[1]))  # at one tick, releases first
    events, tick = [(0, tempo(nominal_bpm))], 0
    for at, _, message in messages:
        events.append((at - tick, message))
        tick = at
    return midi_file(track(*events), smf_format=0, ticks_per_quarter=ticks_per_quarter), onset_ticks.tolist()
