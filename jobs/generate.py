"""Generate a piece from a trained model directory, locally (no Spark).

    python jobs/generate.py --model-dir models/run1 --length 500 --seed 7 --output out/piece.mid \\
        --top-p 0.95 --musicxml --plot --audio

Writes the MIDI file, a report (`<output>.report.json`: what was copied from the corpus,
loops, distinct tokens) and, when asked, sheet music (MusicXML), a piano roll (PNG) and
audio (WAV, through FluidSynth: `make audio-deps`).
"""
import argparse
import sys

from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.render import (MAX_TEMPO, MIN_TEMPO, AudioUnavailable, plot_piano_roll, write_audio, write_midi,
                                   write_musicxml)
from lstm_composer.tokens import parse_onset_tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--length", type=int, default=500, help="new tokens to generate")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same piece")
    parser.add_argument("--temperature", type=float, default=1.0, help="below 1 safer, above 1 wilder")
    parser.add_argument("--top-k", type=int, help="draw among the k likeliest tokens only (1: argmax)")
    parser.add_argument("--top-p", type=float, help="draw among the likeliest tokens that reach this probability")
    parser.add_argument("--loop-limit", type=int, default=24,
                        help="longest stretch repeating a pattern of up to 8 tokens (0: no limit)")
    parser.add_argument("--refresh", type=int, default=32,
                        help="rebuild the network's state from its last window every N tokens (0: carry it on)")
    parser.add_argument("--primer", help="a MIDI file to continue (default: a random training window)")
    parser.add_argument("--onset-tolerance", type=parse_onset_tolerance, default=None, metavar="MS|auto",
                        help="how the primer's notes form tokens, as in jobs/parse.py (default: auto)")
    parser.add_argument("--max-copy", type=int, help="resample while a longer run is copied from one corpus piece")
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

    try:
        config = GenerateConfig(model_dir=args.model_dir, length=args.length, seed=args.seed,
                                sampling=Sampling(args.temperature, args.top_k, args.top_p,
                                                  args.loop_limit or None, refresh=args.refresh or None),
                                primer_path=args.primer, max_copy=args.max_copy,
                                onset_tolerance_ms=args.onset_tolerance, tempo=args.tempo)
        piece = compose(config)
    except ValueError as error:  # a bad flag, a damaged model directory, an unusable primer
        sys.exit(f"generate: {error}")
    events = piece.events
    midi = write_midi(events, args.output, tempo=args.tempo, program=args.program)
    report = midi.with_suffix(".report.json")
    report.write_text(piece.report.to_json())
    written = [midi, report]
    if args.musicxml:
        written.append(write_musicxml(events, midi.with_suffix(".musicxml"),
                                      tempo=args.tempo, program=args.program))
    if args.plot:
        written.append(plot_piano_roll(events, midi.with_suffix(".png")))
    print(piece.report.summary())
    try:
        if args.audio:
            written.append(write_audio(midi, midi.with_suffix(".wav")))
    except AudioUnavailable as error:
        sys.exit(f"wrote {', '.join(str(path.resolve()) for path in written)}; no audio: {error}")
    print("wrote " + ", ".join(str(path.resolve()) for path in written))


if __name__ == "__main__":
    main()
