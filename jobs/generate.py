"""Generate a piece from a trained model directory, locally (no Spark).

    python jobs/generate.py --model-dir models/run1 --length 500 --seed 7 --output out/piece.mid \\
        --top-p 0.95 --musicxml --plot --audio

Writes the MIDI file, a report (`<output>.report.json`: what was copied from the corpus,
loops, distinct tokens) and, when asked, sheet music (MusicXML), a piano roll (PNG) and
audio (WAV, through FluidSynth: `make audio-deps`).
"""
import argparse
import sys
from pathlib import Path

from generation_flags import add_generation_flags, form, sampling
from lstm_composer.form import parse_key
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.redo import CANDIDATES, Bars
from lstm_composer.render import MAX_TEMPO, MIN_TEMPO, PieceFiles, write_piece
from lstm_composer.tokens import parse_onset_tolerance


def flag_type(parse):
    """An argparse type from a parser whose ValueError says what is wrong with the text."""
    def read(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_flags(parser)
    parser.add_argument("--primer", help="a MIDI file to continue (default: a random training window)")
    parser.add_argument("--keep-primer", action="store_true",
                        help="start the output with the primer file's own notes (default: only what follows them)")
    parser.add_argument("--redo", type=flag_type(Bars.parse), metavar="BARS",
                        help="with --primer: write bars such as 5-8 of the file anew and keep the rest note for note")
    parser.add_argument("--candidates", type=int, default=CANDIDATES,
                        help="drafts drawn, one kept: with --redo the passage after which the network finds the kept "
                             "bars likeliest, with --style the piece it finds most in the style")
    parser.add_argument("--key", type=flag_type(parse_key), metavar='"D minor"',
                        help="the key of the piece, any of the 24 (a training window moved into it, the key held, "
                             "its signature in the score); default: as the network goes, the signature from the notes")
    parser.add_argument("--style", help="one of the style labels the model learnt (train.py --style-from): a window "
                                         "of a training piece of that style, the network told the style; the best "
                                         "of --candidates such pieces")
    parser.add_argument("--onset-tolerance", type=parse_onset_tolerance, default=None, metavar="MS|auto",
                        help="how the primer's notes form tokens, as in jobs/parse.py (default: auto)")
    parser.add_argument("--bars", type=int,
                        help="a piece of this many bars (in place of --length) whose last bar holds the tonic chord, "
                             "the tonic in the bass")
    parser.add_argument("--density", type=lambda text: text if text in ("low", "medium", "high") else float(text),
                        metavar="D|low|medium|high",
                        help="onsets per quarter note to keep to, or the training pieces' lower quartile, median "
                             "or upper quartile (a model with a rhythm head)")
    parser.add_argument("--max-copy", type=int, default=16,
                        help="never draw a token that would copy a longer run from one corpus piece (0: any)")
    parser.add_argument("--tempo", type=float, default=120.0, help="beats per minute")
    parser.add_argument("--program", type=int, default=0, help="General MIDI instrument, 0-127 (0: piano)")
    parser.add_argument("--output", default="generated.mid", help="the MIDI file; other outputs go next to it")
    parser.add_argument("--musicxml", action="store_true", help="also write sheet music (.musicxml)")
    parser.add_argument("--plot", action="store_true", help="also write a piano roll (.png)")
    parser.add_argument("--audio", action="store_true", help="also render audio (.wav) with FluidSynth")
    args = parser.parse_args()
    if not 0 <= args.program <= 127:
        parser.error("--program must be 0-127")
    if not MIN_TEMPO <= args.tempo <= MAX_TEMPO:
        parser.error(f"--tempo {args.tempo:g} is outside what a MIDI file can hold: from {MIN_TEMPO:.2f} BPM "
                     f"(its tempo event stores at most 16,777,215 microseconds per quarter note) to {MAX_TEMPO:,.0f}")
    if Path(args.output).is_dir():
        parser.error(f"--output {args.output} is a folder: name the MIDI file to write, such as "
                     f"{Path(args.output) / 'piece.mid'}")
    files = PieceFiles(args.output, args.tempo, args.program, args.musicxml, args.plot, args.audio)
    try:
        piece = compose(GenerateConfig(model_dir=args.model_dir, length=args.length, seed=args.seed,
                                       sampling=sampling(args), primer_path=args.primer, max_copy=args.max_copy or None,
                                       onset_tolerance_ms=args.onset_tolerance, tempo=args.tempo, form=form(args),
                                       modulate=not args.hold_key, key=args.key, density=args.density,
                                       bars=args.bars, keep_primer=args.keep_primer, redo=args.redo,
                                       candidates=args.candidates, style=args.style))
    except ValueError as error:  # a bad flag, a damaged model directory, an unusable primer
        sys.exit(f"generate: {error}")
    try:
        written = write_piece(piece.events, piece.report.to_json(), files, piece.metre,
                              None if args.key is None else [(0, args.key)])
    except OSError as error:  # a folder that is not there or read-only, a full disk
        sys.exit(f"generate: cannot write {args.output}: {error}")
    print(piece.report.summary())
    paths = ", ".join(str(path.resolve()) for path in written.paths)
    if written.audio_missing:
        sys.exit(f"wrote {paths}; no audio: {written.audio_missing}")
    print(f"wrote {paths}")


if __name__ == "__main__":
    main()
