"""A composed piece → the files a user asked for, next to its MIDI file: the report always,
sheet music, a piano roll and audio on request."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lstm_composer.events import Event
from lstm_composer.form import passage_keys
from lstm_composer.metre import Metre
from lstm_composer.render.audio import AudioUnavailable, write_audio
from lstm_composer.render.midi import MAX_TEMPO, MIN_TEMPO, write_midi
from lstm_composer.render.output import prepared
from lstm_composer.render.piano_roll import plot_piano_roll
from lstm_composer.render.score import write_musicxml


@dataclass(frozen=True)
class PieceFiles:
    """Which files to write, and how the piece is played in them."""

    midi: str  # the MIDI file; the others go next to it, named after it
    tempo: float = 120.0  # beats per minute
    program: int = 0  # General MIDI instrument (0: piano)
    musicxml: bool = False
    piano_roll: bool = False
    audio: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.program <= 127:
            raise ValueError(f"program must be 0-127, got {self.program}")
        if not MIN_TEMPO <= self.tempo <= MAX_TEMPO:
            raise ValueError(f"tempo must be between {MIN_TEMPO:.2f} and {MAX_TEMPO:,.0f} BPM, got {self.tempo}")


@dataclass(frozen=True)
class Written:
    paths: list[Path]  # every file written, the MIDI file first
    audio_missing: str | None = None  # why no audio was rendered, when it was asked for and could not be


def write_piece(events: Sequence[Event], report_json: str, files: PieceFiles, metre: Metre = Metre(4, 4),
                keys: Sequence[tuple[int, int]] | None = None) -> Written:
    """The MIDI file, `<name>.report.json` and, as `files` asks, `<name>.musicxml`, `<name>.png`
    and `<name>.wav` (through FluidSynth: when it or a soundfont is missing, the rest is written
    and `audio_missing` says what to install), in bars of `metre` from offset 0, with the key
    signatures of `keys` ((bar, key) where each starts, `form.KEY_NAMES`; None: the keys its
    passages fit best, `form.passage_keys`)."""
    keys = passage_keys(events, float(metre.quarters)) if keys is None else keys
    midi = write_midi(events, files.midi, tempo=files.tempo, program=files.program, metre=metre, keys=keys)
    report = prepared(midi.with_suffix(".report.json"))
    report.write_text(report_json)
    paths = [midi, report]
    if files.musicxml:
        paths.append(write_musicxml(events, midi.with_suffix(".musicxml"), tempo=files.tempo, program=files.program,
                                    metre=metre, keys=keys))
    if files.piano_roll:
        paths.append(plot_piano_roll(events, midi.with_suffix(".png"), metre))
    if files.audio:
        try:
            paths.append(write_audio(midi, midi.with_suffix(".wav")))
        except AudioUnavailable as error:
            return Written(paths, str(error))
    return Written(paths)
