"""Recordings of pianists against the scores of the same pieces: tokens, onset grouping, rhythm.

    make bench-recordings RECORDINGS=/path/to/asap-dataset   (python bench/recordings.py --folder ...)

The folder holds, anywhere below it, folders with one score (`midi_score.mid`) and any number
of recordings of that piece (every other `.mid`): the layout of the ASAP dataset
(github.com/fosfrancesco/asap-dataset, score and performance MIDI of the same piano pieces).
Nothing here is copied into the repository.

1. Tokens: for each recording, its tokens against its score's, read as the parse job reads
   them with exact ticks and with the default (auto) grouping: the median ratio, the share of
   chords among tokens, notes per token, and which files the auto rule reads as performed.
2. Where ASAP's beat annotations lie beside the files (`<name>_annotations.txt`,
   `midi_score_annotations.txt`): each score note is matched to the recording's note of the
   same pitch nearest its expected time (the beats mapped linearly), and for several
   tolerances it counts the score's chords whose notes end up in more than one token
   (split) and the pairs of consecutive score onsets that end up in one token (merged).
3. Rhythm classes of the recordings' tokens (auto grouping): how often the onset gap's
   note-value class equals the score's for the same two onsets, with the file's nominal
   quarter, with the piece's true mean quarter and with the true quarter beat by beat (both
   from the annotations); and how far the classes of each unit round gaps and durations.
"""
import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from lstm_composer.expression import NOTE_VALUES, SECOND_VALUES, nearest
from lstm_composer.midi import read_midi, seconds_at
from lstm_composer.tokens import looks_performed, onset_tolerance, tokenize

TOLERANCES_MS = (0, 20, 30, 40, 45, 50, 55, 60, 80)
MATCH_WINDOW = 0.2  # seconds around a score note's expected time in which its recorded note is sought


def pairs(folder: Path) -> list[tuple[Path, list[Path]]]:
    """(score, recordings) for every folder that holds a `midi_score.mid` and other MIDI files."""
    found = []
    for score in sorted(folder.rglob("midi_score.mid")):
        recordings = sorted(p for p in score.parent.glob("*.mid") if p.name != score.name)
        if recordings:
            found.append((score, recordings))
    return found


def token_stats(tokens) -> tuple[int, int, int]:
    """tokens, chords, notes (distinct pitches summed over tokens)"""
    return len(tokens), sum(len(t.pitches) > 1 for t in tokens), sum(len(t.pitches) for t in tokens)


def beat_times(path: Path) -> np.ndarray | None:
    """The beat and downbeat times (seconds) of an ASAP annotation file, or None."""
    if not path.exists():
        return None
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return np.array([float(row[0]) for row in rows if row[2].split(",")[0] in ("b", "db", "bR")])


def onset_seconds(song) -> np.ndarray:
    return seconds_at([note.start for note in song.notes], song.tempos, song.ticks_per_quarter)


def match_notes(score, recording, expected: np.ndarray, played: np.ndarray) -> np.ndarray:
    """For each score note, the index of the recording's note of the same pitch nearest its
    expected time (within MATCH_WINDOW, each recorded note used once, closest pairs first), or -1."""
    match = -np.ones(len(score.notes), dtype=np.int64)
    by_pitch = defaultdict(list)
    for j, note in enumerate(recording.notes):
        by_pitch[note.pitch].append(j)
    score_by_pitch = defaultdict(list)
    for i, note in enumerate(score.notes):
        score_by_pitch[note.pitch].append(i)
    for pitch, score_notes in score_by_pitch.items():
        candidates = np.array(by_pitch.get(pitch, []), dtype=np.int64)
        if not len(candidates):
            continue
        pairs_ = []
        for i in score_notes:
            distance = np.abs(played[candidates] - expected[i])
            for k in np.flatnonzero(distance < MATCH_WINDOW):
                pairs_.append((distance[k], i, int(candidates[k])))
        used = set()
        for _, i, j in sorted(pairs_):
            if match[i] < 0 and j not in used:
                match[i] = j
                used.add(j)
    return match


def token_of_each_note(song, tolerance_ms: float) -> np.ndarray:
    """The index of the token each note of `song` ends up in (tokens are runs of notes in onset order)."""
    tpq = song.ticks_per_quarter
    token_ticks = np.array([round(t.offset * tpq) for t in tokenize(song, tolerance_ms)])
    return np.searchsorted(token_ticks, [note.start for note in song.notes], side="right") - 1


def grouping_errors(score, match: np.ndarray, tokens_of: np.ndarray) -> tuple[int, int, int, int]:
    """(score chords fully matched, of them split over tokens, consecutive matched onsets, of them merged)"""
    onsets = defaultdict(list)
    for i, note in enumerate(score.notes):
        onsets[note.start].append(i)
    chords = split = consecutive = merged = 0
    previous = None
    for start in sorted(onsets):
        notes = onsets[start]
        matched = [match[i] for i in notes]
        if len({score.notes[i].pitch for i in notes}) > 1 and min(matched) >= 0:
            chords += 1
            split += len({tokens_of[j] for j in matched}) > 1
        current = {tokens_of[j] for j in matched if j >= 0}
        if previous and current:
            consecutive += 1
            merged += bool(current & previous)
        previous = current or None
    return chords, split, consecutive, merged


def rhythm_agreement(score, match: np.ndarray, played: np.ndarray, score_seconds: np.ndarray,
                     score_beats: np.ndarray, beats: np.ndarray, nominal_quarter: float) -> dict:
    """Gap classes of consecutive fully matched score onsets inside the annotated beats, against
    the score's own class."""
    onsets = defaultdict(list)
    for i, note in enumerate(score.notes):
        onsets[note.start].append(i)
    rows = []  # (score quarter, score seconds, recording onset seconds)
    for start in sorted(onsets):
        matched = [match[i] for i in onsets[start]]
        inside = score_beats[0] <= score_seconds[onsets[start][0]] <= score_beats[-1]  # where beats are known
        if min(matched) >= 0 and inside:
            rows.append((start / score.ticks_per_quarter, score_seconds[onsets[start][0]],
                         min(played[j] for j in matched)))
    if len(rows) < 3:
        return {}
    table = np.array(rows)
    quarters, gaps = np.diff(table[:, 0]), np.diff(table[:, 2])
    values = (0.0,) + NOTE_VALUES
    truth = nearest(values, quarters)
    mean_quarter = (table[-1, 2] - table[0, 2]) / (table[-1, 0] - table[0, 0])
    local_quarter = np.diff(np.interp(table[:, 1], score_beats, beats)) / quarters
    return {"pairs": len(gaps), **{name: int((nearest(values, gaps / quarter) == truth).sum()) for name, quarter in
                                   (("nominal", nominal_quarter), ("mean", mean_quarter), ("local", local_quarter))}}


def rounding_error(values, x: np.ndarray) -> np.ndarray:
    """|nearest class value - x| / x"""
    values = np.asarray(values)
    return np.abs(values[nearest(tuple(values), x)] - x) / x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, help="scores (midi_score.mid) beside recordings of the same pieces")
    args = parser.parse_args()
    found = pairs(Path(args.folder))
    if not found:
        raise SystemExit(f"no folder under {args.folder} holds a midi_score.mid and recordings")
    began = time.perf_counter()

    totals = {kind: np.zeros(3, dtype=np.int64) for kind in ("score", "exact", "auto")}
    ratios = {"exact": [], "auto": []}
    performed = {"recordings": 0, "scores": 0}
    errors = {ms: np.zeros(4, dtype=np.int64) for ms in TOLERANCES_MS}
    agreement = defaultdict(int)
    gaps, durations, quarter_gaps, quarter_durations = [], [], [], []
    aligned = 0
    for score_path, recordings in found:
        score = read_midi(score_path.read_bytes())
        score_tokens = token_stats(tokenize(score, onset_tolerance(score)))
        performed["scores"] += looks_performed(score)
        score_seconds = onset_seconds(score)
        score_beats = beat_times(score_path.with_name("midi_score_annotations.txt"))
        for path in recordings:
            recording = read_midi(path.read_bytes())
            exact = tokenize(recording, 0)
            tolerance = onset_tolerance(recording)
            grouped = tokenize(recording, tolerance)
            performed["recordings"] += looks_performed(recording)
            for kind, tokens in (("score", None), ("exact", exact), ("auto", grouped)):
                stats = score_tokens if tokens is None else token_stats(tokens)
                totals[kind] += stats
                if tokens is not None:
                    ratios[kind].append(stats[0] / score_tokens[0])

            tempo_map = [(tick / recording.ticks_per_quarter, bpm) for tick, bpm in recording.tempos]
            offsets = np.array([t.offset for t in grouped])
            ends = offsets + np.array([t.duration for t in grouped])
            onsets_s = seconds_at(offsets, tempo_map)
            gaps.append(np.diff(onsets_s))
            durations.append(seconds_at(ends, tempo_map) - onsets_s)
            quarter_gaps.append(np.diff(offsets))
            quarter_durations.append(ends - offsets)

            beats = beat_times(path.with_name(f"{path.stem}_annotations.txt"))
            if score_beats is None or beats is None or len(beats) != len(score_beats):
                continue
            aligned += 1
            played = onset_seconds(recording)
            match = match_notes(score, recording, np.interp(score_seconds, score_beats, beats), played)
            for ms in TOLERANCES_MS:
                errors[ms] += grouping_errors(score, match, token_of_each_note(recording, ms))
            nominal_quarter = 60.0 / (recording.tempos[0][1] if recording.tempos else 120.0)
            for key, value in rhythm_agreement(score, match, played, score_seconds, score_beats, beats,
                                               nominal_quarter).items():
                agreement[key] += value

    n = sum(len(recordings) for _, recordings in found)
    print(f"{n} recordings of {len(found)} scores ({time.perf_counter() - began:.0f} s)")
    print(f"read as performed by the auto rule: {performed['recordings']} of {n} recordings, "
          f"{performed['scores']} of {len(found)} scores")
    print("\n1. tokens (summed over recordings; each score counted once per recording of it)")
    print("| | tokens | chords among tokens | notes per token | median tokens / score's |")
    print("| --- | --- | --- | --- | --- |")
    for kind, label in (("score", "scores"), ("exact", "recordings, exact ticks (0)"),
                        ("auto", "recordings, auto (50 ms)")):
        tokens, chords, notes = totals[kind]
        median = f"{statistics.median(ratios[kind]):.3f}" if kind in ratios else "1"
        print(f"| {label} | {tokens:,} | {chords / tokens:.1%} | {notes / tokens:.2f} | {median} |")

    if aligned:
        print(f"\n2. grouping against the score, {aligned} recordings aligned by their beat annotations")
        print("| tolerance | score chords split over tokens | consecutive score onsets merged | errors |")
        print("| --- | --- | --- | --- |")
        for ms in TOLERANCES_MS:
            chords, split, consecutive, merged = errors[ms]
            print(f"| {ms} ms | {split / chords:.1%} of {chords:,} | {merged / consecutive:.1%} of {consecutive:,} "
                  f"| {split + merged:,} |")
        pairs_ = agreement["pairs"]
        print(f"\n3a. onset-gap class (note values) equal to the score's, {pairs_:,} gaps")
        for key, label in (("nominal", "the file's nominal quarter (what training sees)"),
                           ("mean", "the piece's true mean quarter (a perfect tempo estimate)"),
                           ("local", "the true quarter beat by beat (a perfect beat tracker)")):
            print(f"- {label}: {agreement[key] / pairs_:.1%}")

    gaps, durations = np.concatenate(gaps), np.concatenate(durations)
    quarter_gaps, quarter_durations = np.concatenate(quarter_gaps), np.concatenate(quarter_durations)
    keep = (gaps > 0) & (quarter_gaps > 0)
    print(f"\n3b. rounding of the recordings' {keep.sum():,} onset gaps and {len(durations):,} durations")
    print("| unit | gaps: median / 90th percentile error | durations: median / 90th percentile error "
          "| durations below the smallest class |")
    print("| --- | --- | --- | --- |")
    for unit, values, g, d in (("beats (note values of the file's quarter)", NOTE_VALUES, quarter_gaps[keep],
                                quarter_durations), ("seconds", SECOND_VALUES, gaps[keep], durations)):
        g_error, d_error = rounding_error(values, g), rounding_error(values, np.maximum(d, 1e-6))
        below = (d < values[0]).mean()
        print(f"| {unit} | {np.median(g_error):.1%} / {np.percentile(g_error, 90):.1%} | "
              f"{np.median(d_error):.1%} / {np.percentile(d_error, 90):.1%} | {below:.1%} |")


if __name__ == "__main__":
    main()
