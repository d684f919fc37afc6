"""Note events → tokens, and the vocabulary: the one owner of the token format.

A token is what sounds at one onset, in the paper's format:
- a single pitch is its name with octave, spelled as music21 spells MIDI pitches: `E4`, `C#5`, `B-3`;
- several pitches are a chord: their pitch classes in music21's normal order joined
  by dots: `4.7.11`. The octaves of a chord live in the `pitches` column, not in the token.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from lstm_composer.midi import MidiSong

_PITCH_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
_NAME_TO_CLASS = {name: pc for pc, name in enumerate(_PITCH_NAMES)}


def note_name(midi_pitch: int) -> str:
    """`60` → `C4`, with music21's default spelling of MIDI pitches."""
    return f"{_PITCH_NAMES[midi_pitch % 12]}{midi_pitch // 12 - 1}"


def note_pitch(name: str) -> int:
    """`C4` → `60`; the inverse of `note_name` from octave 0 up.

    music21's spelling is ambiguous below that: `E-1` is both E-flat 1 and E in octave -1;
    the flat, which a piano has, wins.
    """
    split = 2 if name[:2] in _NAME_TO_CLASS else 1
    return _NAME_TO_CLASS[name[:split]] + 12 * (int(name[split:]) + 1)


@lru_cache(maxsize=4096)
def normal_order(pitch_classes: frozenset[int]) -> tuple[int, ...]:
    """Forte's normal order, which is what music21's `Chord.normalOrder` returns.

    Of the rotations of the sorted classes, the one with the smallest span from first to
    last wins; ties go to the smaller intervals from the first class to the second, third, ...;
    a tie left after that goes to the rotation starting on the lowest class.
    """
    ordered = sorted(pitch_classes)
    rotations = [ordered[i:] + ordered[:i] for i in range(len(ordered))]

    def packing(rotation: list[int]) -> list[int]:
        first = rotation[0]
        return [(rotation[-1] - first) % 12] + [(pc - first) % 12 for pc in rotation[1:-1]]

    return tuple(min(rotations, key=packing))


def token_for(pitches: Sequence[int]) -> str:
    """The token for the distinct MIDI pitches struck at one onset."""
    if len(pitches) == 1:
        return note_name(pitches[0])
    order = normal_order(frozenset(p % 12 for p in pitches))
    return ".".join(str(pc) for pc in order)


def is_chord(token: str) -> bool:
    return token[0].isdigit()


def token_pitches(token: str, chord_octave: int = 4) -> list[int]:
    """MIDI pitches to play for a token; a chord's classes are voiced upwards from `chord_octave`."""
    if not is_chord(token):
        return [note_pitch(token)]
    base = 12 * (chord_octave + 1)
    pitches, previous = [], -1
    for pc in (int(part) for part in token.split(".")):
        pitch = base + pc
        while pitch <= previous:
            pitch += 12
        pitches.append(pitch)
        previous = pitch
    return pitches


@dataclass(frozen=True)
class Token:
    """One row of the notes table (without the piece id)."""

    position: int
    token: str
    pitches: list[int]
    offset: float
    duration: float
    velocity: int
    program: int


def tokenize(song: MidiSong) -> list[Token]:
    """Group the song's notes by onset tick: each onset becomes one token.

    The same pitch struck twice at one onset (two parts doubling it) counts once, with the
    longer duration and the louder velocity. A token's duration is its longest note's.
    """
    tpq = float(song.ticks_per_quarter)
    tokens: list[Token] = []
    notes = song.notes  # sorted by onset
    i = 0
    while i < len(notes):
        onset = notes[i].start
        j = i
        while j < len(notes) and notes[j].start == onset:
            j += 1
        group = notes[i:j]
        pitches = sorted({n.pitch for n in group})
        tokens.append(Token(
            position=len(tokens),
            token=token_for(pitches),
            pitches=pitches,
            offset=onset / tpq,
            duration=max(n.end - n.start for n in group) / tpq,
            velocity=max(n.velocity for n in group),
            program=min(group, key=lambda n: n.pitch).program,
        ))
        i = j
    return tokens


class Vocabulary:
    """Token ↔ integer id, sorted by token so the same corpus always gives the same ids."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens: list[str] = sorted(set(tokens))
        if not self.tokens:
            raise ValueError("the vocabulary is empty: the corpus has no tokens")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(json.loads(text)["tokens"])
