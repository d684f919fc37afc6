"""Evaluate a trained model on the pieces its run held out, and on pieces it generates (locally).

    python jobs/evaluate.py --model-dir models/run1 --pieces 12 --length 500

Prints per-head cross-entropy, perplexity and accuracy on the held-out pieces beside n-gram
models', the context curve, and how close generated pieces (drawn with the same sampling flags
as jobs/generate.py) and the held-out pieces come to the training pieces; writes the same to
<model-dir>/evaluation.json.
"""
import argparse
import sys

from generation_flags import add_generation_flags, form, sampling
from lstm_composer.evaluate import evaluate, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_flags(parser)
    parser.add_argument("--pieces", type=int, default=12, help="pieces to generate (seeds --seed, --seed + 1, ...)")
    args = parser.parse_args()
    if args.pieces < 1:
        parser.error(f"--pieces must be at least 1, got {args.pieces}")
    try:
        result = evaluate(args.model_dir, pieces=args.pieces, length=args.length, seed=args.seed,
                          sampling=sampling(args), form=form(args), modulate=not args.hold_key)
    except ValueError as error:
        sys.exit(f"evaluate: {error}")
    except OSError as error:  # evaluation.json could not be written after all: a full disk
        sys.exit(f"evaluate: cannot write {args.model_dir}/evaluation.json: {error}")
    print(summary(result))
    print(f"wrote {args.model_dir}/evaluation.json")


if __name__ == "__main__":
    main()
