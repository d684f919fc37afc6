"""Key and form in numbers: what makes a passage hang together, measured on excerpts.

A piece (its onsets: `tokens.Token` rows or generated `events.Event`s, offsets in quarter
notes) is cut into consecutive excerpts of `EXCERPT_BEATS` quarters from its first onset, and
each excerpt into windows of `WINDOW_BEATS`:
- **key clarity**: the correlation of each window's pitch classes (weighted by how long they
  sound) with the best of the 24 Krumhansl-Kessler key profiles, averaged over the windows;
- **key stability**: the share of neighbouring windows whose best key is the same;
- **figure recurrence**: the share of the top voice's figures of `FIGURE_INTERVALS` intervals
  (the highest pitch of each onset) that occur again, anywhere else in the excerpt;
- **bar similarity**: for each window, its best Jaccard similarity with another window of the
  excerpt, as sets of (onset within the window to a 1/12 beat, pitch), the other window
  transposed by whichever interval fits best; averaged over the windows.
`excerpt_features` gives these and twelve more (density, register, melody, rhythm, loudness)
for each excerpt: what `classifier.auc` tells generated excerpts from real ones with.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from lstm_composer.statistics import Onset

EXCERPT_BEATS = 32  # quarters per excerpt
WINDOW_BEATS = 8  # quarters per window: key, bars
FIGURE_INTERVALS = 5  # a figure: this many intervals of the top voice
GRID = 12  # onset positions per beat when windows are compared
MIN_WINDOW_ONSETS = 3  # a window with fewer onsets has no key and no bars to compare
PASSAGE_BEATS = 32  # quarters of a passage that has a key signature of its own (`passage_keys`)
# A passage takes a new key signature where that signature writes at least this share more of
# its notes without an accidental than the signature before.
KEY_CHANGE_MARGIN = 0.05
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # pitch classes above the tonic

# Krumhansl and Kessler's probe-tone ratings, tonic first.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
KEY_NAMES = tuple(f"{name} major" for name in ("C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B")) + \
    tuple(f"{name} minor" for name in ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B"))
FEATURES = ("key_clarity", "key_stability", "figure_recurrence", "bar_similarity", "onsets_per_beat",
            "notes_per_onset", "pitch_mean", "pitch_spread", "bass_mean", "top_step", "top_leap_share",
            "on_the_beat", "gap_variation", "duration_mean", "velocity_mean", "velocity_spread")
FORM_FEATURES = FEATURES[:4]


def _key_profiles() -> np.ndarray:
    """(24, 12): each key's profile over the pitch classes C..B, standardised; majors, then minors."""
    rows = [np.roll(profile, tonic) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    rows = np.array(rows, dtype=np.float64)
    return (rows - rows.mean(1, keepdims=True)) / rows.std(1, keepdims=True)


KEY_PROFILES = _key_profiles()
# (24 keys, 12 pitch classes): those each key's signature writes without an accidental (a minor
# key's are its relative major's).
SIGNATURE_CLASSES = np.array([[(pc - tonic) % 12 in MAJOR_SCALE for pc in range(12)]
                              for tonic in [*range(12), *((minor + 3) % 12 for minor in range(12))]])
PROFILE_TIEBREAK = 1e-3  # a key's profile fit, weighed against its signature's share of the notes


def key_scores(pitch_class_weights: np.ndarray) -> np.ndarray:
    """The Pearson correlation of a pitch-class distribution (12 weights, C first) with each of
    the 24 keys' profiles (`KEY_NAMES` order); all zeros for a distribution without variation."""
    weights = np.asarray(pitch_class_weights, dtype=np.float64)
    spread = weights.std()
    if spread == 0:
        return np.zeros(24)
    return KEY_PROFILES @ ((weights - weights.mean()) / spread) / 12


def window_key_labels(offsets: np.ndarray, durations: np.ndarray, note_tokens: np.ndarray, note_pitches: np.ndarray,
                      piece_starts: np.ndarray, beats: float = WINDOW_BEATS) -> np.ndarray:
    """The key (an index into `KEY_NAMES`) of the window of `beats` quarters (from each piece's
    offset 0) that each token falls in, from how long each pitch class sounds in it. A window of
    fewer than MIN_WINDOW_ONSETS onsets takes the key of the window before it in its piece (the
    first ones, the key of the first window that has one; a piece with none, C major).
    `note_tokens`, `note_pitches`: each pitch of each token, with the token's index."""
    piece = np.cumsum(np.isin(np.arange(len(offsets)), piece_starts)) - 1
    number = np.floor(np.asarray(offsets, dtype=np.float64) / beats).astype(np.int64)
    windows, token_window = np.unique(np.stack([piece, number], 1), axis=0, return_inverse=True)
    token_window = token_window.reshape(-1)
    weights = np.bincount(token_window[note_tokens] * 12 + note_pitches % 12,
                          weights=np.asarray(durations, dtype=np.float64)[note_tokens],
                          minlength=12 * len(windows)).reshape(-1, 12)
    spread = weights.std(1, keepdims=True)
    scores = ((weights - weights.mean(1, keepdims=True)) / np.where(spread > 0, spread, 1.0)) @ KEY_PROFILES.T
    keys = np.where(np.bincount(token_window, minlength=len(windows)) >= MIN_WINDOW_ONSETS, scores.argmax(1), -1)
    for i in range(len(windows)):  # forward: a thin window keeps the key before it
        if keys[i] < 0 and i and windows[i - 1, 0] == windows[i, 0]:
            keys[i] = keys[i - 1]
    for i in reversed(range(len(windows))):  # backward: the thin windows a piece begins with
        if keys[i] < 0 and i + 1 < len(windows) and windows[i + 1, 0] == windows[i, 0]:
            keys[i] = keys[i + 1]
    return np.maximum(keys, 0)[token_window].astype(np.int32)


_TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(text: str) -> int:
    """"D minor", "Bb major", "F# minor", "E- major" → the key's number (`KEY_NAMES`)."""
    words = text.replace("♯", "#").replace("♭", "b").split()
    tonic = words[0] if len(words) == 2 else ""
    if len(words) != 2 or words[1].lower() not in ("major", "minor") or tonic[:1].upper() not in _TONICS \
            or any(sign not in "#b-" for sign in tonic[1:]):
        raise ValueError(f"a key is a tonic and major or minor, such as \"D minor\" or \"Bb major\", not {text!r}")
    pitch_class = _TONICS[tonic[0].upper()] + tonic.count("#") - tonic.count("b") - tonic.count("-")
    return pitch_class % 12 + 12 * (words[1].lower() == "minor")


def transposed_key(key, semitones):
    """A key moved by `semitones`, its mode kept (numbers or arrays)."""
    return (key % 12 + semitones) % 12 + 12 * (key // 12)


def passage_keys(onsets: Sequence[Onset], bar_quarters: float, quarters: float = PASSAGE_BEATS,
                 margin: float = KEY_CHANGE_MARGIN) -> list[tuple[int, int]]:
    """(bar, key) where the piece's key signature changes, the first at bar 0: each passage of
    whole bars (as many as make about `quarters` quarters, from offset 0) takes the key that
    `signature_fit` scores highest where it scores at least `margin` above the key before, and
    otherwise stays in that key. A last passage shorter than half of one stays in the key
    before it: a signature for the last bar or two only is not how a page is written."""
    bars = max(1, round(quarters / bar_quarters))
    passages: dict[int, list[Onset]] = {}
    for onset in onsets:
        passages.setdefault(int(onset.offset / (bar_quarters * bars) + 1e-9), []).append(onset)
    changes: list[tuple[int, int]] = []
    for number in sorted(passages):
        if len(passages[number]) < MIN_WINDOW_ONSETS:
            continue
        scores = signature_fit(passages[number])
        best = int(np.argmax(scores))
        if not changes:
            changes.append((0, best))
        elif best != changes[-1][1] and scores[best] - scores[changes[-1][1]] > margin:
            changes.append((number * bars, best))
    end = max((onset.offset for onset in onsets), default=0.0) / bar_quarters  # bars to the last onset
    if len(changes) > 1 and changes[-1][0] == max(passages) * bars and end - changes[-1][0] < bars / 2:
        changes.pop()
    return changes or [(0, int(np.argmax(signature_fit(onsets))))]


def signature_fit(onsets: Sequence[Onset]) -> np.ndarray:
    """For each key (`KEY_NAMES`), the share of the onsets' notes its key signature writes without
    an accidental, and a thousandth of how well the key's profile fits them (`key_scores`): the
    signature that needs the fewest accidentals, and of a major key and its relative minor, which
    share it, the one the notes fit better."""
    counts = np.zeros(12)
    for onset in onsets:
        for pitch in onset.pitches:
            counts[pitch % 12] += 1
    inside = SIGNATURE_CLASSES @ counts / max(counts.sum(), 1)
    return inside + PROFILE_TIEBREAK * key_scores(pitch_class_weights(onsets))


def pitch_class_weights(onsets: Sequence[Onset], as_played: bool = False) -> np.ndarray:
    """How long each pitch class sounds, over the onsets: each pitch of an onset for its duration,
    or, `as_played`, until that pitch is struck again where that is sooner (as a piano key, and a
    MIDI file, sound it: a generated note may be held for bars under its own repetitions)."""
    weights, struck_next = np.zeros(12), {}
    for onset in sorted(onsets, key=lambda o: o.offset, reverse=True) if as_played else onsets:
        for pitch in onset.pitches:
            length = onset.duration
            if as_played:
                later = struck_next.get(pitch, np.inf)
                if later > onset.offset:  # (a pitch struck twice at one onset sounds whole both times)
                    length = min(length, later - onset.offset)
                struck_next[pitch] = onset.offset
            weights[pitch % 12] += length
    return weights


class Excerpt(NamedTuple):
    start: float  # quarter notes from the start of the piece
    onsets: list  # those that start in the excerpt, in order


def excerpts(onsets: Sequence[Onset], beats: float = EXCERPT_BEATS) -> list[Excerpt]:
    """The piece's whole excerpts of `beats` quarters, from its first onset to the end of its last
    note (a shorter end is left out)."""
    if not onsets:
        return []
    first, end = onsets[0].offset, max(onset.offset + onset.duration for onset in onsets)
    cut = [Excerpt(first + i * beats, []) for i in range(int((end - first + 1e-9) // beats))]
    for onset in onsets:
        index = int((onset.offset - first) // beats)
        if index < len(cut):
            cut[index].onsets.append(onset)
    return cut


def windows(excerpt: Excerpt, beats: float = WINDOW_BEATS) -> list[Excerpt]:
    """The excerpt cut into windows of `beats` quarters."""
    return excerpts_from(excerpt.onsets, excerpt.start, int(round(EXCERPT_BEATS / beats)), beats)


def excerpts_from(onsets: Sequence[Onset], start: float, count: int, beats: float) -> list[Excerpt]:
    cut = [Excerpt(start + i * beats, []) for i in range(count)]
    for onset in onsets:
        cut[min(max(int((onset.offset - start) // beats), 0), count - 1)].onsets.append(onset)
    return cut


def window_keys(excerpt: Excerpt) -> list[tuple[int, float] | None]:
    """Each window's best key (an index into `KEY_NAMES`) and its correlation; None for a window
    of fewer than MIN_WINDOW_ONSETS onsets."""
    keys = []
    for window in windows(excerpt):
        if len(window.onsets) < MIN_WINDOW_ONSETS:
            keys.append(None)
            continue
        scores = key_scores(pitch_class_weights(window.onsets))
        best = int(np.argmax(scores))
        keys.append((best, float(scores[best])))
    return keys


def key_clarity_and_stability(excerpt: Excerpt) -> tuple[float, float]:
    keys = window_keys(excerpt)
    found = [key for key in keys if key is not None]
    clarity = float(np.mean([score for _, score in found])) if found else float("nan")
    pairs = [(a[0], b[0]) for a, b in zip(keys, keys[1:]) if a is not None and b is not None]
    stability = float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")
    return clarity, stability


def top_voice(onsets: Sequence[Onset]) -> np.ndarray:
    return np.array([max(onset.pitches) for onset in onsets], dtype=np.int64)


def figure_recurrence(onsets: Sequence[Onset], intervals: int = FIGURE_INTERVALS) -> float:
    """The share of the top voice's figures of `intervals` intervals that occur again elsewhere."""
    steps = np.diff(top_voice(onsets))
    if len(steps) < intervals:
        return float("nan")
    figures = [tuple(steps[i:i + intervals]) for i in range(len(steps) - intervals + 1)]
    counts: dict[tuple, int] = {}
    for figure in figures:
        counts[figure] = counts.get(figure, 0) + 1
    return float(np.mean([counts[figure] > 1 for figure in figures]))


def bar_similarity(excerpt: Excerpt) -> float:
    """Each window's best Jaccard similarity with another window of the excerpt (the other
    transposed by the interval that fits best), averaged over the windows that have notes."""
    notes = []  # per window: (onset within it on the grid, pitch) of each distinct note
    for window in windows(excerpt):
        if len(window.onsets) >= MIN_WINDOW_ONSETS:
            found = {(int(round((onset.offset - window.start) * GRID)), pitch)
                     for onset in window.onsets for pitch in onset.pitches}
            notes.append(np.array(sorted(found), dtype=np.int64))
    if len(notes) < 2:
        return float("nan")
    best = []
    for i, mine in enumerate(notes):
        scores = []
        for j, other in enumerate(notes):
            if i != j:
                # |A ∩ (B + s)| is the number of note pairs at one onset whose pitches differ by s
                same_onset = mine[:, None, 0] == other[None, :, 0]
                shifts = (mine[:, None, 1] - other[None, :, 1])[same_onset]
                shared = int(np.bincount(shifts + 128).max()) if len(shifts) else 0
                scores.append(shared / (len(mine) + len(other) - shared))
        best.append(max(scores))
    return float(np.mean(best))


def excerpt_features(excerpt: Excerpt) -> dict[str, float]:
    """The FEATURES of one excerpt (nan where one cannot be measured)."""
    clarity, stability = key_clarity_and_stability(excerpt)
    onsets = excerpt.onsets
    pitches = np.array([p for onset in onsets for p in onset.pitches], dtype=np.float64)
    top = top_voice(onsets)
    steps = np.abs(np.diff(top))
    offsets = np.array([onset.offset for onset in onsets])
    gaps = np.diff(offsets)
    return {
        "key_clarity": clarity,
        "key_stability": stability,
        "figure_recurrence": figure_recurrence(onsets),
        "bar_similarity": bar_similarity(excerpt),
        "onsets_per_beat": len(onsets) / EXCERPT_BEATS,
        "notes_per_onset": len(pitches) / len(onsets),
        "pitch_mean": float(pitches.mean()),
        "pitch_spread": float(pitches.std()),
        "bass_mean": float(np.mean([min(onset.pitches) for onset in onsets])),
        "top_step": float(steps.mean()) if len(steps) else float("nan"),
        "top_leap_share": float(np.mean(steps > 7)) if len(steps) else float("nan"),
        "on_the_beat": float(np.mean(np.isclose((offsets + 0.5) % 1.0, 0.5, atol=1e-3))),
        "gap_variation": float(gaps.std() / gaps.mean()) if len(gaps) and gaps.mean() > 0 else float("nan"),
        "duration_mean": float(np.mean([onset.duration for onset in onsets])),
        "velocity_mean": float(np.mean([onset.velocity for onset in onsets])),
        "velocity_spread": float(np.std([onset.velocity for onset in onsets])),
    }


def piece_features(onsets: Sequence[Onset]) -> list[dict[str, float]]:
    """`excerpt_features` of each excerpt of a piece that has at least MIN_WINDOW_ONSETS onsets."""
    return [excerpt_features(excerpt) for excerpt in excerpts(onsets) if len(excerpt.onsets) >= MIN_WINDOW_ONSETS]
