"""Generate a piece from a trained model directory, locally (no Spark).

    python jobs/generate.py --model-dir models/run1 --length 500 --seed 7 --output generated.mid
"""
import argparse
import sys

from lstm_composer.generate import GenerateConfig, generate
from lstm_composer.render import write_midi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--length", type=int, default=500, help="tokens to generate")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same piece")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--output", default="generated.mid")
    args = parser.parse_args()
    config = GenerateConfig(model_dir=args.model_dir, length=args.length, seed=args.seed,
                            temperature=args.temperature)

    try:
        tokens = generate(config)
    except ValueError as error:  # a damaged model directory: the message names the file
        sys.exit(f"generate: {error}")
    path = write_midi(tokens, args.output)
    print(f"wrote {len(tokens)} tokens to {path.resolve()}")


if __name__ == "__main__":
    main()
