"""What the musician's controls of jobs/generate.py give, each read back by another reader.

    python bench/controls.py --model-dir models/run --pieces 12

--key: for each key of --keys (by default two the bundled corpus rarely uses), --pieces pieces
(seeds 0, 1, ...) written as MIDI files; the key music21 finds in each file against the key
asked for, by its default method (`analyze('key')`: Aarden-Essen profiles) and by
Krumhansl-Schmuckler's. --density: for each of low, medium and high (the training pieces'
quartiles of onsets per quarter) and --rates, the onsets per quarter mido counts in each file
against the rate asked for (within 20% is the goal). --bars: pieces of --bars bars; the bars
music21 counts in each MusicXML file, and whether the lowest note of the last chord mido reads
in the MIDI file is the tonic of the key music21 finds (Krumhansl-Schmuckler).
"""
import argparse
import statistics
import tempfile
from pathlib import Path

import mido

from lstm_composer.form import KEY_NAMES, parse_key
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.model_dir import ModelDir
from lstm_composer.render import PieceFiles, write_piece


def written(piece, path: Path, keys=None) -> Path:
    write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path)), piece.metre, keys)
    return path


def music21_keys(path: Path) -> tuple[int, int]:
    """The key of the file by music21's default method and by Krumhansl-Schmuckler's."""
    from music21 import converter

    score = converter.parse(str(path))
    return tuple(found.tonic.pitchClass + 12 * (found.mode == "minor")
                 for found in (score.analyze("key"), score.analyze("KrumhanslSchmuckler")))


def note_ons(path: Path) -> tuple[list[tuple[int, int]], int]:
    """(tick, MIDI note) of every note-on of the file, read with mido, and its ticks per quarter."""
    midi, tick, notes = mido.MidiFile(str(path)), 0, []
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        if message.type == "note_on" and message.velocity:
            notes.append((tick, message.note))
    return notes, midi.ticks_per_beat


def bars_and_tonic_ending(path: Path) -> tuple[int, bool]:
    """The bars of the MusicXML file beside `path` (music21), and whether the last onset's lowest
    MIDI note (mido) is the tonic of the key music21 finds in the score."""
    from music21 import converter

    score = converter.parse(str(path.with_suffix(".musicxml")))
    tonic = score.analyze("KrumhanslSchmuckler").tonic.pitchClass
    notes, _ = note_ons(path)
    lowest = min(note for when, note in notes if when == notes[-1][0])
    return max(len(part.getElementsByClass("Measure")) for part in score.parts), lowest % 12 == tonic


def onsets_per_quarter(path: Path) -> float:
    """Distinct note-on times per quarter note from the first onset to the last."""
    notes, ticks_per_quarter = note_ons(path)
    onsets = {tick for tick, _ in notes}
    return (len(onsets) - 1) / ((max(onsets) - min(onsets)) / ticks_per_quarter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--keys", nargs="*", default=["F# major", "Eb minor"])
    parser.add_argument("--rates", nargs="*", type=float, default=[])
    parser.add_argument("--bars", type=int, default=16)
    args = parser.parse_args()
    model = ModelDir(args.model_dir).load()
    seeds = range(args.pieces)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.keys:
            key = parse_key(name)
            found = [music21_keys(written(compose(GenerateConfig(args.model_dir, args.length, seed, key=key), model),
                                          Path(scratch) / f"key-{seed}.mid", [(0, key)])) for seed in seeds]
            for method, keys in zip(("default (Aarden-Essen)", "Krumhansl-Schmuckler"), zip(*found)):
                print(f"--key {name!r}: music21's {method} finds {KEY_NAMES[key]} in "
                      f"{sum(k == key for k in keys)} of {len(keys)} (found: {', '.join(KEY_NAMES[k] for k in keys)})",
                      flush=True)
        ended = []
        for seed in seeds:
            path = Path(scratch) / f"bars-{seed}.mid"
            piece = compose(GenerateConfig(args.model_dir, seed=seed, bars=args.bars), model)
            write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path), musicxml=True), piece.metre)
            ended.append(bars_and_tonic_ending(path))
        print(f"--bars {args.bars}: music21 counts {', '.join(str(bars) for bars, _ in ended)} bars; the last chord's "
              f"bass is the tonic in {sum(tonic for _, tonic in ended)} of {len(ended)}", flush=True)
        levels = model.density_levels()
        for asked in [*levels, *args.rates]:
            rate = levels.get(asked, asked)
            measured = [onsets_per_quarter(written(compose(GenerateConfig(args.model_dir, args.length, seed,
                                                                          density=asked), model),
                                                   Path(scratch) / f"density-{seed}.mid")) for seed in seeds]
            within = sum(abs(m / rate - 1) <= 0.2 for m in measured)
            print(f"--density {asked} ({rate:.2f} onsets per quarter): measured median {statistics.median(measured):.2f}, "
                  f"range {min(measured):.2f}-{max(measured):.2f}; within 20% in {within} of {len(measured)}",
                  flush=True)


if __name__ == "__main__":
    main()
