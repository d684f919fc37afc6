"""Where a chord's notes go: voicings learned from the corpus, and the bass under them.

A chord token holds only pitch classes (`4.7.11`); the notes table's `pitches` column holds
how the corpus actually spread them over the keyboard. From it `Voicings` keeps, for each
chord shape seen from its bass (the pitch classes relative to the lowest note, and the bass's
octave), the spacings pianists used, with how often. A generated chord is then voiced over a
bass: the network's bass head chooses it when the model has one; otherwise the chord's most
usual bass note is placed in the octave nearest the previous bass, inside the range where the
corpus puts its chord basses. Everything is relative to the bass, so a transposed chord finds
the voicings of the chords it was transposed from. Of the voicings found, those whose top note
moves from the previous onset's top, and into a single note that follows, as the corpus's top
voice moves are preferred: a melody on top, not a top note that jumps wherever a voicing
happens to end. A chord struck again over the same bass keeps the voicing it had the first
time, as a pianist's hand does, so that a figure the network repeats sounds repeated.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from lstm_composer.tokens import HIGHEST_KEY, LOWEST_KEY, is_chord, note_pitch, token_pitches

SHAPES_KEPT = 16  # the most frequent voicings kept per chord shape and octave
LEAP_LIMIT = 24  # top-voice steps beyond two octaves share the outermost counts
# How strongly a voicing is chosen by the step its top note makes: the corpus's count of that
# step, plus one, to this power. At 1, generated top voices leapt over a fifth 42% of the time
# (the bundled pieces 28%); at 2, make run's classifier AUC fell on each of four sets of pieces.
STEP_POWER = 2


def relative_classes(pitches: Sequence[int]) -> str:
    """The pitch classes of a voicing relative to its lowest note, e.g. `0.4.7` for C-E-G over C."""
    bass = min(pitches)
    return ".".join(str(pc) for pc in sorted({(p - bass) % 12 for p in pitches}))


def chord_type(token: str) -> tuple[int, str]:
    """(first pitch class, the token's classes relative to it): `4.7.11` → (4, `0.3.7`)."""
    classes = [int(pc) for pc in token.split(".")]
    return classes[0], ".".join(str((pc - classes[0]) % 12) for pc in classes)


def allowed_basses(token: str) -> np.ndarray:
    """(128,) bool: the pitches that can be the lowest note of `token` on a piano, with room
    above them for the chord's other pitch classes."""
    allowed = np.zeros(128, dtype=bool)
    if is_chord(token):
        classes = {int(pc) for pc in token.split(".")}
        for pitch in range(LOWEST_KEY, HIGHEST_KEY + 1):
            span = max((pc - pitch) % 12 for pc in classes)
            allowed[pitch] = pitch % 12 in classes and pitch + span <= HIGHEST_KEY
    else:
        allowed[note_pitch(token)] = True
    return allowed


@dataclass
class Voicings:
    """How the corpus voices chords; saved as `voicings.json` in the model directory."""

    # "relative classes|bass octave" → [(intervals above the bass, count), ...], most frequent first
    shapes: dict[str, list[tuple[tuple[int, ...], int]]] = field(default_factory=dict)
    # chord type (relative to its first class) → {bass class relative to the first class: count}
    basses: dict[str, dict[int, int]] = field(default_factory=dict)
    bass_range: tuple[int, int] = (36, 60)  # where the corpus's chord basses lie (10th to 90th percentile)
    # semitones from one onset's highest pitch to the next one's, where the next is a chord
    # (clipped to ±LEAP_LIMIT) → how often
    top_steps: dict[int, int] = field(default_factory=dict)

    @classmethod
    def count(cls, rows: Iterable[tuple[str, Sequence[int], int]],
              top_steps: dict[int, int] | None = None) -> "Voicings":
        """From (token, pitches, how many times) rows of the notes table (single notes are
        skipped), and the top voice's steps into chords counted in order (`top_steps`)."""
        shapes: dict[str, Counter] = defaultdict(Counter)
        basses: dict[str, Counter] = defaultdict(Counter)
        bass_pitches: Counter = Counter()
        for token, pitches, times in rows:
            if not is_chord(token) or len(pitches) < 2:
                continue
            bass = min(pitches)
            shapes[f"{relative_classes(pitches)}|{bass // 12}"][tuple(p - bass for p in sorted(pitches))] += times
            first, kind = chord_type(token)
            basses[kind][(bass - first) % 12] += times
            bass_pitches[bass] += times
        bass_range = (36, 60)
        if bass_pitches:
            ordered = np.repeat(*zip(*sorted(bass_pitches.items())))
            bass_range = (int(np.percentile(ordered, 10)), int(np.percentile(ordered, 90)))
        return cls(shapes={key: counts.most_common(SHAPES_KEPT) for key, counts in shapes.items()},
                   basses={kind: dict(counts) for kind, counts in basses.items()}, bass_range=bass_range,
                   top_steps=dict(sorted((top_steps or {}).items())))

    def to_json(self) -> str:
        return json.dumps({"shapes": {key: [[list(shape), n] for shape, n in found]
                                      for key, found in sorted(self.shapes.items())},
                           "basses": {kind: {str(pc): n for pc, n in sorted(counts.items())}
                                      for kind, counts in sorted(self.basses.items())},
                           "bass_range": list(self.bass_range),
                           "top_steps": {str(step): n for step, n in sorted(self.top_steps.items())}},
                          separators=(",", ":"))

    @classmethod
    def from_dict(cls, values: dict) -> "Voicings":
        """The inverse of `to_json`; a file written before `top_steps` existed gives none."""
        return cls(shapes={key: [(tuple(shape), n) for shape, n in found] for key, found in values["shapes"].items()},
                   basses={kind: {int(pc): n for pc, n in counts.items()} for kind, counts in values["basses"].items()},
                   bass_range=tuple(values["bass_range"]),
                   top_steps={int(step): n for step, n in values.get("top_steps", {}).items()})

    def choose_bass(self, token: str, previous: int | None, rng: np.random.Generator) -> int:
        """A bass for a chord when the network has no bass head: a class drawn from how the
        corpus puts this kind of chord over its bass, in the octave nearest the previous bass
        (the middle of the corpus's bass range to begin with), kept inside that range."""
        first, kind = chord_type(token)
        counts = self.basses.get(kind) or {0: 1}
        classes = sorted(counts)
        weights = np.array([counts[pc] for pc in classes], dtype=np.float64)
        pitch_class = (first + classes[rng.choice(len(classes), p=weights / weights.sum())]) % 12
        low, high = self.bass_range
        target = (low + high) / 2 if previous is None else min(max(previous, low), high)
        candidates = [p for p in range(LOWEST_KEY, HIGHEST_KEY + 1) if p % 12 == pitch_class]
        return min(candidates, key=lambda p: (abs(p - target), p))

    def voice(self, token: str, bass: int, rng: np.random.Generator, previous_top: int | None = None,
              next_note: int | None = None) -> list[int]:
        """The pitches of `token` over `bass`: a voicing the corpus uses for this chord shape
        in this octave, else in any octave, else the classes stacked closely upwards; never off
        the piano. A voicing is drawn by how often the corpus uses it, times how often the
        corpus's top voice makes the step from `previous_top` (the last onset's highest pitch)
        to its top note, and from its top note to `next_note` (a single note that follows). A
        single pitch is itself."""
        if not is_chord(token):
            return [note_pitch(token)]
        classes = sorted({(int(pc) - bass) % 12 for pc in token.split(".")})
        relative = ".".join(map(str, classes))
        found = [(shape, n) for shape, n in self.shapes.get(f"{relative}|{bass // 12}", [])
                 if bass + shape[-1] <= HIGHEST_KEY]
        if not found:
            found = [(shape, n) for key, shapes in self.shapes.items() if key.split("|")[0] == relative
                     for shape, n in shapes if bass + shape[-1] <= HIGHEST_KEY]
        if found:
            weights = np.array([n for _, n in found], dtype=np.float64)
            if previous_top is not None and self.top_steps:
                weights *= [self.step_weight(bass + shape[-1] - previous_top) for shape, _ in found]
            if next_note is not None and self.top_steps:
                weights *= [self.step_weight(next_note - bass - shape[-1]) for shape, _ in found]
            shape = found[rng.choice(len(found), p=weights / weights.sum())][0]
            return [bass + interval for interval in shape]
        return [bass + interval for interval in classes if bass + interval <= HIGHEST_KEY]

    def step_weight(self, step: int) -> float:
        """How often the corpus's top voice moves by `step` semitones into a chord, plus one
        (a step it never made stays possible), to the power STEP_POWER."""
        return (self.top_steps.get(int(np.clip(step, -LEAP_LIMIT, LEAP_LIMIT)), 0) + 1.0) ** STEP_POWER


def voice_tokens(tokens: list[str], basses: np.ndarray | None, voicings: Voicings, previous: tuple[int, ...] | None,
                 rng: np.random.Generator, echoes: list[int] | None = None) -> list[tuple[int, ...]]:
    """The pitches of each token: single pitches as they are; chords over the bass the network
    drew (`basses`), or else over a bass chosen near the previous one, in a voicing the corpus
    uses for such chords, its top note led from the previous onset's and into a single note
    after it as the corpus leads it; a chord over a bass it was voiced over before, as it was then.
    `previous`: the pitches of the onset before the first token, if any. `echoes`: for each
    token, an earlier one it plays again (its pitches are taken as they are), or -1."""
    voiced = []
    first_voicing: dict[tuple[str, int], tuple[int, ...]] = {}  # (chord, bass) → its pitches the first time
    previous_bass = min(previous) if previous else None
    previous_top = max(previous) if previous else None
    for i, token in enumerate(tokens):
        if echoes is not None and echoes[i] >= 0:
            pitches = voiced[echoes[i]]
        else:
            if basses is not None:
                bass = int(basses[i])
            elif is_chord(token):
                bass = voicings.choose_bass(token, previous_bass, rng)
            else:
                bass = None
            if bass is None:
                pitches = tuple(token_pitches(token))
            elif (token, bass) in first_voicing:
                pitches = first_voicing[(token, bass)]
            else:
                following = tokens[i + 1] if i + 1 < len(tokens) else None
                next_note = note_pitch(following) if following is not None and not is_chord(following) else None
                pitches = first_voicing[(token, bass)] = tuple(voicings.voice(token, bass, rng, previous_top,
                                                                              next_note))
        voiced.append(pitches)
        previous_bass = min(pitches) if is_chord(token) or min(pitches) < 60 else previous_bass
        previous_top = max(pitches)
    return voiced
