"""Presets compared at equal wall-clock time, on the paper-like corpus of modern-39.txt.

    make compare-presets      (python bench/compare_presets.py --minutes 6 paper fast)

Parses the 39 pieces, trains each preset with 2 Horovod ranks in local[2] for the same number
of minutes (same validation pieces, same capped validation batches), and writes
docs/presets-validation-loss.png (validation loss against minutes of training) and a
markdown table of the figures to standard output.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
            "SPARK_CONF_DIR": str(ROOT / "cluster" / "conf"), "TF_CPP_MIN_LOG_LEVEL": "2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "midi" / "piano-midi")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--steps-per-epoch", type=int, default=15)
    parser.add_argument("--val-steps", type=int, default=10)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "presets-validation-loss.png")
    args = parser.parse_args()

    from lstm_composer.model_dir import read_history

    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        songs = scratch / "modern-39"
        songs.mkdir()
        for line in (args.corpus / "modern-39.txt").read_text().split():
            shutil.copy(args.corpus / line, songs / Path(line).name)
        subprocess.run([BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "parse.py",
                        "--input", songs, "--output", scratch / "corpus"], env=env(), check=True,
                       capture_output=True)
        for name in args.presets:
            model_dir = scratch / name
            subprocess.run(
                [BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "train.py",
                 "--corpus", scratch / "corpus", "--model-dir", model_dir, "--preset", name,
                 "--epochs", "10000", "--num-proc", "2", "--max-minutes", str(args.minutes),
                 "--steps-per-epoch", str(args.steps_per_epoch), "--val-steps", str(args.val_steps)],
                env=env(), check=True, capture_output=True)
            rows = read_history(model_dir)
            elapsed, minutes = 0.0, []
            for row in rows:
                elapsed += float(row["seconds"]) / 60
                minutes.append(elapsed)
            curves[name] = (minutes, [float(row["val_loss"]) for row in rows], rows)

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for name, (minutes, losses, _) in curves.items():
        axes.plot(minutes, losses, marker="o", label=name)
    axes.set_xlabel("minutes of training (2 ranks, local[2])")
    axes.set_ylabel("validation cross-entropy")
    axes.set_title("modern-39: validation loss at equal wall-clock time")
    axes.legend()
    axes.grid(alpha=0.3)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=100, bbox_inches="tight")

    print("| preset | epochs | sequences/s | best validation loss | token perplexity | after minutes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (minutes, losses, rows) in curves.items():
        best = min(losses)
        speed = sum(float(row["sequences_per_second"]) for row in rows[1:]) / max(1, len(rows) - 1)
        print(f"| `{name}` | {len(rows)} | {speed:.0f} | {best:.3f} | {math.exp(best):.0f} | {minutes[-1]:.1f} |")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
