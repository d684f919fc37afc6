"""Evaluate a trained model on the pieces its run held out, and on pieces it generates (locally).

    python jobs/evaluate.py --model-dir models/run1 --pieces 3 --length 500

Prints per-head cross-entropy, perplexity and accuracy on the validation windows, and for each
generated piece its distinct tokens, onset gaps, durations and velocity bins and its copy
report; writes the same to <model-dir>/evaluation.json.
"""
import argparse
import sys

from lstm_composer.evaluate import evaluate, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--pieces", type=int, default=3, help="pieces to generate")
    parser.add_argument("--length", type=int, default=500, help="tokens per generated piece")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first generated piece")
    args = parser.parse_args()
    try:
        result = evaluate(args.model_dir, pieces=args.pieces, length=args.length, seed=args.seed)
    except ValueError as error:
        sys.exit(f"evaluate: {error}")
    print(summary(result))
    print(f"wrote {args.model_dir}/evaluation.json")


if __name__ == "__main__":
    main()
