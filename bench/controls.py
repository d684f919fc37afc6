"""What the musician's controls of jobs/generate.py give, each read back by another reader.

    python bench/controls.py --model-dir models/run --pieces 12

--key: for each key of --keys (by default two the bundled corpus rarely uses), --pieces pieces
(seeds 0, 1, ...) written as MIDI files; the key music21 finds in each file against the key
asked for, by its default method (`analyze('key')`: Aarden-Essen profiles) and by
Krumhansl-Schmuckler's, and how many distinct tokens each piece draws (against the training
pieces' first --length tokens). --density: for each of low, medium and high (the training pieces'
quartiles of onsets per quarter) and --rates, the onsets per quarter mido counts in each file
against the rate asked for (within 20% is the goal). --bars: pieces of --bars bars; the bars
music21 counts in each MusicXML file, and whether the lowest note of the last chord mido reads
in the MIDI file is the tonic of the key music21 finds (Krumhansl-Schmuckler) in what sounds,
the MIDI file, and in the score, whose two voices a staff write some held notes shorter. --redo: bars
--redo-bars of each of --pieces MIDI files of --redo-from (files the model never trained on, by
default piano-midi's, sorted by name, those with fewer bars left out) written anew; whether
the other bars are the file's note for note, as mido reads both files and a piano plays them
(one strike per key and onset, the loudest and longest; a key struck again released there),
and the network's loss on the kept bars after the new passage against after the file's own,
also counted apart for the files whose kept bars take a fifth or more of their figures (4
tokens) from the redone bars alone: only the file's own passage lets the network copy those.
"""
import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import mido

from lstm_composer.form import KEY_NAMES, parse_key
from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.model_dir import ModelDir, TrainedModel
from lstm_composer.primers import read_file
from lstm_composer.redo import Bars, passage
from lstm_composer.render import PieceFiles, write_piece
from mido_notes import mido_notes

FIGURE = 4  # tokens in a figure that the kept bars may take from the redone passage
TAKEN = 0.2  # a share of such figures from which only the file's own passage lets the network copy


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


def bars_and_tonic_ending(path: Path) -> tuple[int, bool, bool]:
    """The bars of the MusicXML file beside `path` (music21), and whether the last onset's lowest
    MIDI note (mido) is the tonic of the key music21 finds in the MIDI file, and in the score."""
    from music21 import converter

    score = converter.parse(str(path.with_suffix(".musicxml")))
    notes, _ = note_ons(path)
    lowest = min(note for when, note in notes if when == notes[-1][0])
    heard, written = (found.analyze("KrumhanslSchmuckler").tonic.pitchClass
                      for found in (converter.parse(str(path)), score))
    bars = max(len(part.getElementsByClass("Measure")) for part in score.parts)
    return bars, lowest % 12 == heard, lowest % 12 == written


def onsets_per_quarter(path: Path) -> float:
    """Distinct note-on times per quarter note from the first onset to the last."""
    notes, ticks_per_quarter = note_ons(path)
    onsets = {tick for tick, _ in notes}
    return (len(onsets) - 1) / ((max(onsets) - min(onsets)) / ticks_per_quarter)


def as_played(path: Path) -> tuple[list[tuple[int, int, int, int]], list[tuple[float, float]]]:
    """((onset, pitch, length, velocity) in 480ths of a quarter, as a piano plays the file's
    notes (`mido_notes`), and the file's (offset, bar length) time signatures in quarters."""
    notes, tpq, signatures = mido_notes(path)
    strikes = {}
    for start, pitch, end, velocity in notes:
        start, end = round(start * 480 / tpq), round(end * 480 / tpq)
        louder, longer = strikes.get((start, pitch), (0, 0))
        strikes[(start, pitch)] = (max(velocity, louder), max(end, longer))
    played = []
    for (start, pitch), (velocity, end) in sorted(strikes.items(), key=lambda item: (item[0][1], item[0][0])):
        if played and played[-1][1] == pitch and played[-1][0] + played[-1][2] > start:
            played[-1] = (played[-1][0], pitch, start - played[-1][0], played[-1][3])
        played.append((start, pitch, end - start, velocity))
    return sorted(played), signatures or [(0.0, 4.0)]


def bar_start(signatures: list[tuple[float, float]], bar: int) -> float:
    """Where bar `bar` (from 1) begins, in quarters."""
    at, number = 0.0, 1
    for i, (offset, length) in enumerate(signatures):
        until = signatures[i + 1][0] if i + 1 < len(signatures) else float("inf")
        while at < until - 1e-9:
            if number == bar:
                return at
            at, number = at + length, number + 1
    return at


def redo_files(folder: str, model: TrainedModel, count: int, bars: Bars) -> list[Path]:
    """`count` MIDI files of `folder` that the model never trained on and that go on past `bars`."""
    from lstm_composer.piece import piece_id

    trained = set(model.tokens().piece_ids) - set(model.held_out)
    chosen = []
    for path in sorted(Path(folder).rglob("*.mid")):
        if piece_id(path.read_bytes()) in trained:
            continue
        notes, signatures = as_played(path)
        if notes and notes[-1][0] >= bar_start(signatures, bars.last + 2) * 480:
            chosen.append(path)
        if len(chosen) == count:
            break
    return chosen


def taken_from_passage(path: Path, bars: Bars, scored: int) -> float:
    """The share of the figures (FIGURE tokens) of the first `scored` tokens after `bars` that
    occur in the file's own `bars` and not before them."""
    piece, tokens, _ = read_file(str(path))
    parts = passage(str(path), piece, tokens, bars)

    def figures(part) -> list[tuple[str, ...]]:
        names = [token.token for token in part]
        return [tuple(names[i:i + FIGURE]) for i in range(len(names) - FIGURE + 1)]

    after, only = figures(parts.after[:scored]), set(figures(parts.within)) - set(figures(parts.before))
    return sum(figure in only for figure in after) / max(len(after), 1)


def redo_figures(args, model: TrainedModel, scratch: Path) -> None:
    bars = Bars.parse(args.redo_bars)
    identical, ratios, taken = [], [], []
    for seed, source in enumerate(redo_files(args.redo_from, model, args.pieces, bars)):
        piece = compose(GenerateConfig(args.model_dir, seed=seed, primer_path=str(source), redo=bars), model)
        path = written(piece, scratch / f"redo-{seed}.mid")
        (before, signatures), (after, _) = as_played(source), as_played(path)
        start, end = (480 * bar_start(signatures, bar) for bar in (bars.first, bars.last + 1))
        outside = [[n for n in notes if not start <= n[0] < end] for notes in (before, after)]
        identical.append(outside[0] == outside[1])
        ratios.append(piece.report.primer["kept_loss"] / piece.report.primer["kept_loss_after_original"])
        taken.append(taken_from_passage(source, bars, model.config.sequence_length // 2))
        print(f"--redo {bars} of {source.name}: kept bars identical {identical[-1]}, loss on them "
              f"{piece.report.primer['kept_loss']:.3f} (after the file's own bars "
              f"{piece.report.primer['kept_loss_after_original']:.3f}); {taken[-1]:.3f} of their first figures "
              f"from the redone bars alone", flush=True)
    print(f"--redo {bars}: kept bars identical in {sum(identical)} of {len(identical)}; loss on them after the new "
          f"passage / after the file's: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-"
          f"{max(ratios):.3f}, within 10% in {sum(r <= 1.1 for r in ratios)} of {len(ratios)}", flush=True)
    for name, few in ((f"under {TAKEN:g}", True), (f"{TAKEN:g} or more", False)):
        chosen = [r for r, share in zip(ratios, taken) if (share < TAKEN) == few]
        print(f"--redo {bars}, files whose kept bars take {name} of their first figures from the redone bars "
              f"alone: within 10% in {sum(r <= 1.1 for r in chosen)} of {len(chosen)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--keys", nargs="*", default=["F# major", "Eb minor"])
    parser.add_argument("--key-weight", type=float, default=Sampling().key_weight)
    parser.add_argument("--key-balance", type=float, default=Sampling().key_balance)
    parser.add_argument("--rates", nargs="*", type=float, default=[])
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--redo-from", default="../shared/midi/piano-midi")
    parser.add_argument("--redo-bars", default="5-8")
    parser.add_argument("--only", choices=["key", "bars", "density", "redo"], nargs="*",
                        default=["key", "bars", "density", "redo"], help="the controls to measure")
    args = parser.parse_args()
    model = ModelDir(args.model_dir).load()
    figures = {"redo": redo_figures, "key": key_figures, "bars": bars_figures, "density": density_figures}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.only:
            figures[name](args, model, Path(scratch))


def key_figures(args, model: TrainedModel, scratch: Path) -> None:
    sampling = Sampling(key_weight=args.key_weight, key_balance=args.key_balance)
    for name in args.keys:
        key = parse_key(name)
        config = GenerateConfig(args.model_dir, args.length, sampling=sampling, key=key)
        found, distinct = [], []
        for seed in range(args.pieces):
            piece = compose(replace(config, seed=seed), model)
            found.append(music21_keys(written(piece, scratch / f"key-{seed}.mid", [(0, key)])))
            distinct.append(len({event.token for event in piece.events[piece.primer_length:]}))
        for method, keys in zip(("default (Aarden-Essen)", "Krumhansl-Schmuckler"), zip(*found)):
            print(f"--key {name!r}: music21's {method} finds {KEY_NAMES[key]} in {sum(k == key for k in keys)} of "
                  f"{len(keys)} (found: {', '.join(KEY_NAMES[k] for k in keys)})", flush=True)
        print(f"--key {name!r}: distinct tokens per piece {sorted(distinct)}", flush=True)
    stream = model.tokens()
    pieces = [stream.piece(i) for i in stream.rows(set(stream.piece_ids) - set(model.held_out))]
    real = [len(set(piece[:args.length].tolist())) for piece in pieces if len(piece) >= args.length]
    print(f"the first {args.length} tokens of the {len(real)} training pieces as long: {min(real)}-{max(real)} "
          f"distinct, median {statistics.median(real)}", flush=True)


def bars_figures(args, model: TrainedModel, scratch: Path) -> None:
    ended = []
    for seed in range(args.pieces):
        path = scratch / f"bars-{seed}.mid"
        piece = compose(GenerateConfig(args.model_dir, seed=seed, bars=args.bars), model)
        write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path), musicxml=True), piece.metre)
        ended.append(bars_and_tonic_ending(path))
    print(f"--bars {args.bars}: music21 counts {', '.join(str(bars) for bars, _, _ in ended)} bars; the last "
          f"chord's bass is the tonic of the MIDI file's key in {sum(heard for _, heard, _ in ended)} of "
          f"{len(ended)}, of the score's in {sum(written for _, _, written in ended)}", flush=True)


def density_figures(args, model: TrainedModel, scratch: Path) -> None:
    levels = model.density_levels()
    for asked in [*levels, *args.rates]:
        rate = levels.get(asked, asked)
        measured = [onsets_per_quarter(written(compose(GenerateConfig(args.model_dir, args.length, seed,
                                                                      density=asked), model),
                                               scratch / f"density-{seed}.mid")) for seed in range(args.pieces)]
        within = sum(abs(m / rate - 1) <= 0.2 for m in measured)
        print(f"--density {asked} ({rate:.2f} onsets per quarter): measured median "
              f"{statistics.median(measured):.2f}, range {min(measured):.2f}-{max(measured):.2f}; within 20% in "
              f"{within} of {len(measured)}", flush=True)

if __name__ == "__main__":
    main()
