"""Tokens → MIDI."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lstm_composer.tokens import is_chord, token_pitches

PAPER_STEP = 0.5  # quarter lengths between tokens, as the paper wrote them


def tokens_to_stream(tokens: Sequence[str], step: float = PAPER_STEP):
    """A music21 piano part with one note or chord every `step` quarter lengths."""
    from music21 import chord, instrument, note, stream

    part = stream.Part()
    part.insert(0, instrument.Piano())
    for i, token in enumerate(tokens):
        pitches = token_pitches(token)
        element = chord.Chord(pitches) if is_chord(token) else note.Note(pitches[0])
        element.quarterLength = step
        part.insert(i * step, element)
    return part


def write_midi(tokens: Sequence[str], path: str | Path, step: float = PAPER_STEP) -> Path:
    from music21 import midi

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi_file = midi.translate.streamToMidiFile(tokens_to_stream(tokens, step))
    path.write_bytes(midi_file.writestr())
    return path
