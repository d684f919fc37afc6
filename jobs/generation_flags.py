"""The flags that jobs/generate.py and jobs/evaluate.py share: which model, how long a piece, and
how its positions are drawn."""
import argparse

from lstm_composer.reprise import Form
from lstm_composer.sampling import Sampling


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--length", type=int, default=500, help="new tokens per piece")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same piece")
    parser.add_argument("--temperature", type=float, default=1.0, help="below 1 safer, above 1 wilder")
    parser.add_argument("--gap-temperature", type=float, default=Sampling.gap_temperature,
                        help="the onset gaps' temperature, as a share of --temperature (1: the same)")
    parser.add_argument("--top-k", type=int, help="draw among the k likeliest tokens only (1: argmax)")
    parser.add_argument("--top-p", type=float, default=0.9,
                        help="draw among the likeliest notes that reach this share of the notes' probability, and "
                             "the likeliest chords likewise (1: all)")
    parser.add_argument("--loop-limit", type=int, default=24,
                        help="longest stretch repeating a pattern of up to 8 tokens (0: no limit)")
    parser.add_argument("--repeat-quantile", type=float, default=0.99,
                        help="no token drawn more often in 64 tokens than in this share of the training "
                             "pieces' windows (0: no cap)")
    parser.add_argument("--refresh", type=int, default=32,
                        help="rebuild the network's state from its last window every N tokens (0: carry it on)")
    parser.add_argument("--key-weight", type=float, default=Sampling.key_weight,
                        help="how strongly tokens that fit the key are preferred, for a model told its key (0: not)")
    parser.add_argument("--key-balance", type=float, default=3.0,
                        help="with --key: how firmly each pitch class is kept near its share in the corpus's "
                             "passages in that mode (0: not)")
    parser.add_argument("--style-guidance", type=float, default=Sampling.style_guidance,
                        help="with --style: how far each prediction is pushed from the network's told no style "
                             "(0: not; twice as slow)")
    parser.add_argument("--hold-key", action="store_true",
                        help="keep the key the piece starts in (default: change it as the corpus does)")
    parser.add_argument("--reprise", type=float, default=Form.share, metavar="SHARE",
                        help="share of two-bar windows that begin by playing an earlier one again (0: none)")


def sampling(args: argparse.Namespace) -> Sampling:
    """The sampling the flags ask for; a ValueError names a flag that makes none."""
    return Sampling(args.temperature, gap_temperature=args.gap_temperature, top_k=args.top_k, top_p=args.top_p,
                    loop_limit=args.loop_limit or None, repeat_quantile=args.repeat_quantile or None,
                    refresh=args.refresh or None, key_weight=args.key_weight, key_balance=args.key_balance,
                    style_guidance=args.style_guidance)


def form(args: argparse.Namespace) -> Form | None:
    return Form(share=args.reprise) if args.reprise else None
