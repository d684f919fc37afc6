"""Train the stacked LSTM data-parallel with Horovod on Spark, one rank per Spark task.

    spark-submit jobs/train.py --corpus data/corpus --model-dir models/run1 --preset paper --epochs 36 --num-proc 2
"""
import argparse
import sys
from dataclasses import replace

from pyspark.sql import SparkSession

from lstm_composer.locks import Busy
from lstm_composer.presets import PRESETS, preset
from lstm_composer.styles import StyleSource
from lstm_composer.training import TrainConfig, TrainingStopped, train


def flags() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="output folder of jobs/parse.py")
    parser.add_argument("--model-dir", required=True, help="where config.json, vocab.json, model.keras, history.csv go")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=36)
    parser.add_argument("--num-proc", type=int, default=2, help="Horovod ranks, one Spark task slot each")
    parser.add_argument("--batch-size", type=int, help="per rank; default: the preset's")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16", "auto"],
                        help="default: the preset's; auto: bfloat16 where a rank's hardware has it natively")
    parser.add_argument("--rhythm", choices=["beats", "seconds"],
                        help="unit of an expressive model's onset gaps and durations: beats (note values, for "
                             "sequenced files) or seconds (for recordings of playing); default: the preset's")
    parser.add_argument("--progress-seconds", type=float, default=30.0,
                        help="rank 0 prints the step, speed and time left at least this often")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of pieces held out for validation")
    parser.add_argument("--resume", nargs="?", const="last", choices=["last", "best"],
                        help="continue the run in --model-dir from its last checkpoint (or from its best: "
                             "--resume best, when the last is damaged)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run that --model-dir holds (its model.keras, history, checkpoints)")
    parser.add_argument("--update-corpus", action="store_true",
                        help="with --resume: train on from --corpus as it is now (new pieces included; pieces with "
                             "tokens the model does not know are left out), not from the copy the run began with")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another job writing --model-dir (default: refuse)")
    parser.add_argument("--steps-per-epoch", type=int, help="cap on batches per rank and epoch (smoke runs, benchmarks)")
    parser.add_argument("--val-steps", type=int, help="cap on validation batches per rank (the same ones each epoch)")
    parser.add_argument("--max-minutes", type=float, help="stop after the epoch in which this much time has passed")
    parser.add_argument("--patience", type=int, help="stop after this many epochs without a lower validation loss")
    parser.add_argument("--threads-per-rank", type=int, help="TensorFlow threads per rank; default: spark.task.cpus")
    parser.add_argument("--slot-wait", type=float, default=60.0,
                        help="seconds to wait for executors offering --num-proc task slots before giving up")
    parser.add_argument("--style-from", metavar="folder|FILE.csv[:PATH:LABEL]",
                        help="each piece's style label, for generate --style: the name of its file's folder, or a CSV "
                             "beside the corpus with the columns path and label (or the two named, as "
                             "metadata.csv:midi:composer)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    parser = flags()
    args = parser.parse_args()
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:  # flags that make no valid run are refused here, with the reason
        model = preset(args.preset)
        if args.batch_size is not None:
            model = replace(model, batch_size=args.batch_size)
        if args.precision:
            model = replace(model, precision=args.precision)
        if args.rhythm:
            model = replace(model, rhythm=args.rhythm, phase=model.phase and args.rhythm == "beats")
        config = TrainConfig(corpus_path=args.corpus, model_dir=args.model_dir, model=model,
                             epochs=args.epochs, num_proc=args.num_proc, seed=args.seed,
                             val_fraction=args.val_fraction, resume=args.resume is not None,
                             resume_from=args.resume or "last", overwrite=args.overwrite,
                             update_corpus=args.update_corpus, lock_wait=args.wait,
                             steps_per_epoch=args.steps_per_epoch,
                             val_steps=args.val_steps, max_minutes=args.max_minutes, patience=args.patience,
                             slot_wait=args.slot_wait,
                             threads_per_rank=args.threads_per_rank, progress_seconds=args.progress_seconds,
                             style_from=StyleSource.parse(args.style_from) if args.style_from else None)
    except ValueError as error:
        parser.error(str(error))

    spark = SparkSession.builder.appName("lstm-composer train").getOrCreate()
    try:
        summary = train(spark, config)
    except (ValueError, Busy, TrainingStopped) as error:  # the message says why, and what to do, on its last line
        sys.exit(f"train: {error}")
    except OSError as error:  # the model directory cannot be written: read-only, a full disk
        sys.exit(f"train: cannot write {args.model_dir}: {error}")
    finally:
        spark.stop()
    print(f"trained {summary.epochs} epochs with {summary.ranks} Horovod ranks on {summary.train_windows} windows "
          f"({summary.val_windows} held out), vocabulary {summary.vocab_size}; "
          f"best validation loss {summary.best_val_loss:.4f}; model in {summary.model_dir}"
          + (f"; {len(summary.left_out)} pieces of the corpus left out, holding tokens the model does not know "
             f"(train a new model to learn them)" if summary.left_out else ""))


if __name__ == "__main__":
    main()
