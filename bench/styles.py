"""Does `generate --style` write in the style asked for? A classifier of real pieces decides.

    python bench/styles.py --model-dir models/quality-piano-midi/model --pieces 12 \
        [--style-guidance 0 1] [--candidates 1 8]

Takes the five labels of the model's corpus with the most training pieces (`train.py
--style-from`), and fits a classifier on their training pieces: one L2-penalised logistic
regression per label against the other four (`classifier.fit_logistic`), on each piece's
mean over its excerpts of the sixteen excerpt features of `jobs/evaluate.py` (`form.py`:
key, figures, bars, density, register, melody, rhythm, loudness), standardised. Each piece
goes to the label whose regression scores it highest. Each real piece of those labels is
assigned by a classifier fitted on the others (five folds), and --pieces pieces generated per
label with `--style` (seeds --first-seed, the next, ...), at each weight of --style-guidance
and each number of --candidates (drafts, the one the network finds most in the style kept), by
one fitted on all of them; every file is read with mido. It prints how often each goes to its
own label, beside chance (one in five). The goals (issue 31): generated pieces at least twice
chance, and at least 0.6x the real pieces' share.
"""
import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from lstm_composer.classifier import fit_logistic
from lstm_composer.events import Event
from lstm_composer.form import FEATURES, piece_features
from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.model_dir import ModelDir
from lstm_composer.redo import CANDIDATES
from lstm_composer.render import PieceFiles, write_piece
from lstm_composer.tables import piece_values
from lstm_composer.tokens import token_for
from mido_notes import mido_notes

LABELS = 5
FOLDS = 5


def onsets(path: Path) -> list[Event]:
    """The file's notes as onsets (`mido_notes`): the notes struck at one tick, the longest and loudest."""
    notes, tpq, _ = mido_notes(path)
    struck = {}
    for start, pitch, end, velocity in notes:
        struck.setdefault(start, []).append((pitch, end - start, velocity))
    return [Event(token_for(sorted({n for n, _, _ in notes})), start / tpq, max(max(d for _, d, _ in notes), 1) / tpq,
                  max(v for _, _, v in notes), tuple(sorted({n for n, _, _ in notes})))
            for start, notes in sorted(struck.items())]


def features(path: Path) -> np.ndarray:
    excerpts = piece_features(onsets(path))
    return np.nanmean([[excerpt[name] for name in FEATURES] for excerpt in excerpts], axis=0)


def classifier(fitted: list[str], real: dict[str, np.ndarray], labels: dict[str, str], chosen: list[str]):
    """A function from a piece's features to the label whose regression, fitted on the pieces
    `fitted`, scores it highest."""
    x = np.array([real[piece] for piece in fitted])
    mean, spread = np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-9

    def standard(rows: np.ndarray) -> np.ndarray:
        rows = (np.atleast_2d(rows) - mean) / spread
        return np.where(np.isnan(rows), 0.0, rows)

    weights = [fit_logistic(standard(x), np.array([labels[p] == label for p in fitted], dtype=float))
               for label in chosen]
    return lambda row: chosen[int(np.argmax([np.append(standard(row)[0], 1.0) @ w for w in weights]))]


def local(path: str) -> Path:
    return Path(path.removeprefix("file:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--pieces", type=int, default=12, help="generated pieces per label")
    parser.add_argument("--first-seed", type=int, default=0, help="the seed of each label's first piece")
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--style-guidance", type=float, nargs="+", default=[Sampling.style_guidance],
                        help="each weight of guidance to generate with (generate --style-guidance)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[CANDIDATES],
                        help="each number of drafts to keep the best of (generate --candidates)")
    args = parser.parse_args()
    model = ModelDir(args.model_dir).load()
    stream, held_out = model.tokens(), set(model.held_out)  # the labels' training pieces are counted
    labels = {piece: model.config.styles[label - 1] for piece, label in stream.piece_styles().items() if label}
    counts = Counter(label for piece, label in labels.items() if piece not in held_out)
    chosen = sorted(label for label, _ in counts.most_common(LABELS))
    paths = piece_values(model.corpus, "path")
    real = {piece: features(local(paths[piece])) for piece, label in sorted(labels.items()) if label in chosen}
    print(f"labels: {', '.join(f'{label} ({counts[label]} training pieces)' for label in chosen)}; "
          f"chance {1 / LABELS:.2f}", flush=True)
    # Each real piece assigned by a classifier fitted on the other folds' pieces.
    pieces = list(real)
    folds = np.random.default_rng(0).permutation(len(pieces)) % FOLDS
    own = []
    for fold in range(FOLDS):
        assign = classifier([pieces[i] for i in np.flatnonzero(folds != fold)], real, labels, chosen)
        own += [assign(real[pieces[i]]) == labels[pieces[i]] for i in np.flatnonzero(folds == fold)]
    print(f"real pieces assigned to their own label by a classifier fitted on the others ({FOLDS} folds): "
          f"{sum(own)} of {len(own)} ({np.mean(own):.2f})", flush=True)
    assigned = classifier(pieces, real, labels, chosen)
    for guidance in args.style_guidance:
        for candidates in args.candidates:
            generated_figures(args, model, Sampling(style_guidance=guidance), candidates, chosen, assigned,
                              float(np.mean(own)))


def generated_figures(args, model, sampling: Sampling, candidates: int, chosen: list[str], assigned,
                      real_share: float) -> None:
    """How often --pieces pieces generated per label with `sampling`, each the best of
    `candidates` drafts, are assigned to their label."""
    setting = f"--style-guidance {sampling.style_guidance:g} --candidates {candidates}"
    hits = []
    with tempfile.TemporaryDirectory() as scratch:
        for label in chosen:
            found = []
            for seed in range(args.first_seed, args.first_seed + args.pieces):
                piece = compose(GenerateConfig(args.model_dir, args.length, seed, style=label, sampling=sampling,
                                               candidates=candidates), model)
                path = Path(scratch) / f"{label}-{seed}.mid"
                write_piece(piece.events, piece.report.to_json(), PieceFiles(str(path)), piece.metre)
                found.append(assigned(features(path)))
            hits += [name == label for name in found]
            print(f"--style {label} {setting}: assigned "
                  f"{', '.join(f'{name} {n}' for name, n in Counter(found).most_common())}", flush=True)
    share = float(np.mean(hits))
    print(f"{setting}: generated pieces assigned to the style asked for: "
          f"{sum(hits)} of {len(hits)} ({share:.2f}: {share * LABELS:.1f}x chance, "
          f"{share / max(real_share, 1e-9):.2f}x the real pieces')", flush=True)

if __name__ == "__main__":
    main()
