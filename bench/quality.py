"""What a model of a real corpus writes, judged by every yardstick of jobs/evaluate.py.

    make bench-quality        (python bench/quality.py --folder ../shared/midi/piano-midi --list modern-39.txt
                               then the same without --list: all its pieces)
    python bench/quality.py --folder ~/my-midi --minutes 20

Parses the folder's MIDI files (those named in --list, a file of paths relative to the folder,
when given), trains --preset with 2 Horovod ranks in local[2] for --minutes of wall-clock time
(the seeded split of every run: the same held-out pieces each time), keeps the epoch with the
lowest validation loss, and judges it with jobs/evaluate.py on --pieces generated pieces. Prints
the n-gram ratio, the feature overlaps, key and form, and the classifier's AUC, and keeps the
model directory (and its corpus) in --output for jobs/generate.py (and, trained with
--style-from, for bench/styles.py).
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstm_composer.launch import job_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = job_environment(ROOT / "cluster" / "conf")


def run(*command) -> str:
    result = subprocess.run([str(part) for part in command], env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command[:3]))} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def songs(folder: Path, listing: Path | None, scratch: Path) -> Path:
    """The folder itself, or a scratch folder holding copies of the files the list names."""
    if listing is None:
        return folder
    chosen = scratch / listing.stem
    chosen.mkdir()
    for line in listing.read_text().split():  # in their folders, which may name their styles
        (chosen / line).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / line, chosen / line)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="MIDI files, searched recursively")
    parser.add_argument("--list", help="a file in --folder naming the files to use, one path per line")
    parser.add_argument("--output", type=Path, help="where the corpus and model go (default: models/quality-<name>)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--steps-per-epoch", type=int, default=25, help="batches per rank and epoch")
    parser.add_argument("--val-steps", type=int, default=20, help="validation batches per rank (the same each epoch)")
    parser.add_argument("--style-from", help="each piece's style label, as train.py --style-from (folder, or a CSV)")
    args = parser.parse_args()
    name = Path(args.list).stem if args.list else args.folder.name
    output = args.output or ROOT / "models" / f"quality-{name}"
    if output.exists():
        parser.error(f"{output} exists: remove it, or choose another --output")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        source = songs(args.folder, args.folder / args.list if args.list else None, Path(scratch))
        print(run(BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "parse.py", "--input", source,
                  "--output", output / "corpus").strip().splitlines()[-1])
    print(run(BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "train.py", "--corpus", output / "corpus",
              "--model-dir", output / "model", "--preset", args.preset, "--epochs", "100000", "--num-proc", "2",
              "--max-minutes", args.minutes, "--steps-per-epoch", args.steps_per_epoch,
              "--val-steps", args.val_steps, *(["--style-from", args.style_from] if args.style_from else []))
          .strip().splitlines()[-1])
    printed = run(sys.executable, ROOT / "jobs" / "evaluate.py", "--model-dir", output / "model",
                  "--pieces", args.pieces)
    print(printed)
    evaluation = json.loads((output / "model" / "evaluation.json").read_text())
    form = evaluation["form"]
    print(f"{name}: ratio {evaluation['ratio_to_best_baseline']:.2f}x; overlap together "
          f"{evaluation['overlap_summary']['together']['ratio']:.3f} of the held-out pieces', lowest "
          f"{evaluation['overlap_summary']['generated_together_lowest']:.2f}; "
          + ", ".join(f"{feature.replace('_', ' ')} {ratio:.2f}x" for feature, ratio in form["ratio"].items())
          + f" (key clarity {form['generated']['together']['key_clarity']:.3f} against "
            f"{form['training']['together']['key_clarity']:.3f}); AUC {form['auc']['generated']:.2f}; "
            f"{(time.perf_counter() - started) / 60:.1f} minutes in all")


if __name__ == "__main__":
    main()
