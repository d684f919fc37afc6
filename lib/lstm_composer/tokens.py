"""Note events → tokens, and the vocabulary: the one owner of the token format.

A token is what sounds at one onset, in the paper's format:
- a single pitch is its name with octave, spelled as music21 spells MIDI pitches: `E4`, `C#5`, `B-3`;
- several pitches are a chord: their pitch classes in music21's normal order joined
  by dots: `4.7.11`. The octaves of a chord live in the `pitches` column, not in the token.

Which notes sound "at one onset": in a sequenced file (a score typed into a sequencer), the
notes that start on the same tick. A pianist never strikes a chord's notes on one tick, so in
a recording of someone playing the notes that start within a tolerance in real time of the
token's first note form the token (`tokenize`); `onset_tolerance` decides per file which rule
applies.
"""
from __future__ import annotations

import argparse
import json
from functools import cached_property, lru_cache
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from lstm_composer.midi import MidiSong, seconds_at

# Notes of a recording that start within this many milliseconds of a token's first note join
# it: on 1,067 recordings of pianists against the scores of the same pieces, the tolerance that
# splits the fewest chords and merges the fewest separate onsets (docs/results.md).
PERFORMED_TOLERANCE_MS = 50.0
# A file looks performed when fewer than this share of its onsets lie on the grid of sixteenths
# and triplet sixteenths (sequenced files: 49% and more; recordings: 19% at most).
PERFORMED_GRID_SHARE = 1 / 3

_PITCH_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
_NAME_TO_CLASS = {name: pc for pc, name in enumerate(_PITCH_NAMES)}
_NOTE_NAMES = tuple(f"{_PITCH_NAMES[p % 12]}{p // 12 - 1}" for p in range(128))


def note_name(midi_pitch: int) -> str:
    """`60` → `C4`, with music21's default spelling of MIDI pitches."""
    return _NOTE_NAMES[midi_pitch]


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
        return _NOTE_NAMES[pitches[0]]
    return _chord_token(frozenset(p % 12 for p in pitches))


@lru_cache(maxsize=4096)
def _chord_token(pitch_classes: frozenset[int]) -> str:
    return ".".join(str(pc) for pc in normal_order(pitch_classes))


def is_chord(token: str) -> bool:
    return token[0].isdigit()


LOWEST_KEY, HIGHEST_KEY = 21, 108  # A0 and C8, the piano's range


def transpose_token(token: str, semitones: int) -> str | None:
    """The token moved by `semitones`: a chord's pitch classes (in normal order again), a single
    pitch by the interval; None when a single pitch would leave the piano."""
    if is_chord(token):
        return _chord_token(frozenset((int(pc) + semitones) % 12 for pc in token.split(".")))
    pitch = note_pitch(token) + semitones
    return _NOTE_NAMES[pitch] if LOWEST_KEY <= pitch <= HIGHEST_KEY else None


def with_transpositions(tokens: Iterable[str], semitones: tuple[int, int]) -> set[str]:
    """The tokens and every transposition of them by an interval in the range: what a
    vocabulary must hold for training windows transposed by those intervals."""
    found = set(tokens)
    for token in list(found):
        for shift in range(semitones[0], semitones[1] + 1):
            moved = transpose_token(token, shift)
            if moved is not None:
                found.add(moved)
    return found


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


class Token(NamedTuple):
    """One row of the notes table (without the piece id), in the table's column order."""

    position: int
    token: str
    pitches: list[int]
    offset: float
    duration: float
    velocity: int
    program: int


def parse_onset_tolerance(text: str) -> float | None:
    """The `--onset-tolerance` flag: `auto` → None; milliseconds (0: exact ticks) → a float."""
    if text.strip().lower() == "auto":
        return None
    try:
        milliseconds = float(text)
    except ValueError:
        milliseconds = float("nan")
    if not 0.0 <= milliseconds < 1000.0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tolerance: give 'auto' or milliseconds from 0 (exact ticks) up to 999")
    return milliseconds


def looks_performed(song: MidiSong) -> bool:
    """Whether the song reads as a recording of someone playing rather than a sequenced score:
    one nominal tempo (the rubato is in the ticks, not in a tempo map) and fewer than a third
    of its onsets on the grid of sixteenths and triplet sixteenths."""
    if len({bpm for _, bpm in song.tempos}) > 1:
        return False
    onsets = {note.start for note in song.notes}
    tpq = song.ticks_per_quarter
    on_grid = sum(1 for tick in onsets if _on_grid(tick, tpq, 16) or _on_grid(tick, tpq, 12))
    return bool(onsets) and on_grid < PERFORMED_GRID_SHARE * len(onsets)


def _on_grid(tick: int, ticks_per_quarter: int, per_quarter: int) -> bool:
    """`tick` is the tick nearest a line of a grid of `per_quarter` lines per quarter note."""
    rest = tick * per_quarter % ticks_per_quarter
    return 2 * min(rest, ticks_per_quarter - rest) < per_quarter


def onset_tolerance(song: MidiSong, setting: float | None = None) -> float:
    """The tolerance (milliseconds) to tokenize `song` with: `setting`, or when it is None
    ("auto") `PERFORMED_TOLERANCE_MS` for a file that looks performed and 0 (exact ticks) for
    a sequenced one."""
    if setting is not None:
        return setting
    return PERFORMED_TOLERANCE_MS if looks_performed(song) else 0.0


def tokenize(song: MidiSong, tolerance_ms: float = 0.0) -> list[Token]:
    """Group the song's notes by onset: each group becomes one token.

    With `tolerance_ms` 0 a group is the notes that start on one tick. Otherwise it is the
    notes that start within `tolerance_ms` of the group's first note, in real time by the
    file's tempo map, and the token's offset is that first note's. The same pitch struck
    twice in a group (two parts doubling it) counts once, with the longer duration and the
    louder velocity. A token's duration is the median of its pitches' (generation holds every
    note of a chord that long: the longest would hold a whole chord as long as one part's held
    note under others' short ones), its program its lowest note's.
    """
    tpq = float(song.ticks_per_quarter)
    tokens: list[Token] = []
    notes = song.notes  # sorted by onset
    i, n = 0, len(notes)
    reach = None  # with a tolerance: each note's onset in seconds, and that plus the tolerance
    if tolerance_ms > 0 and notes:
        seconds = seconds_at([note.start for note in notes], song.tempos, song.ticks_per_quarter)
        reach = seconds.tolist(), (seconds + tolerance_ms / 1000 + 1e-9).tolist()
    while i < n:
        first = notes[i]
        onset = first.start
        j = i + 1
        if reach is None:
            while j < n and notes[j].start == onset:
                j += 1
        else:
            starts, limits = reach
            while j < n and starts[j] <= limits[i]:
                j += 1
        if j == i + 1:  # a single note, the common case
            tokens.append(Token(len(tokens), _NOTE_NAMES[first.pitch], [first.pitch], onset / tpq,
                                (first.end - onset) / tpq, first.velocity, first.program))
        else:
            group = notes[i:j]
            ends: dict[int, int] = {}  # pitch → its release, the latest where two parts double it
            for note in group:
                ends[note.pitch] = max(ends.get(note.pitch, note.end), note.end)
            pitches = sorted(ends)
            tokens.append(Token(
                len(tokens), token_for(pitches), pitches, onset / tpq,
                (_median(sorted(ends.values())) - onset) / tpq,
                max(note.velocity for note in group),
                min(group, key=lambda note: note.pitch).program,
            ))
        i = j
    return tokens


def _median(values: list[int]) -> float:
    """The median of sorted `values`, in plain Python: NumPy's costs more than the rest of a
    chord's token (it tripled `tokenize`'s time)."""
    middle = len(values) // 2
    return float(values[middle]) if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class Vocabulary:
    """Token ↔ integer id, sorted by token so the same corpus always gives the same ids."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens: list[str] = sorted(set(tokens))
        if not self.tokens:
            raise ValueError("the vocabulary is empty: the corpus has no tokens")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def chords(self) -> np.ndarray:
        """(tokens,) bool: which tokens are chords."""
        return np.array([is_chord(token) for token in self.tokens], dtype=bool)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens}, indent=1)

    @classmethod
    def from_dict(cls, values: dict) -> "Vocabulary":
        return cls(values["tokens"])

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls.from_dict(json.loads(text))
