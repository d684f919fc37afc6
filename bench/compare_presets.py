"""Presets compared at equal wall-clock time, on the paper-like corpus of modern-39.txt.

    make compare-presets      (python bench/compare_presets.py --minutes 6 paper paper-alt fast expressive small)

Parses the 39 pieces, trains each preset with 2 Horovod ranks in local[2] for the same number
of minutes (same validation pieces, same capped validation batches during training), then
evaluates each kept model with jobs/evaluate.py: its perplexity on the held-out pieces beside
the n-gram models' on the same targets, its context curve, and three generated 500-token
pieces against the training pieces. Writes docs/presets-validation-loss.png (the token head's
validation loss against minutes of training) and markdown tables to standard output.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lstm_composer.launch import job_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = job_environment(ROOT / "cluster" / "conf")  # for spark-submit and the cluster script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "midi" / "piano-midi")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--steps-per-epoch", type=int, default=15)
    parser.add_argument("--val-steps", type=int, default=10)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "presets-validation-loss.png")
    parser.add_argument("--keep", type=Path, help="parse the corpus and train each model into this folder, and "
                        "keep them there (for jobs/evaluate.py and jobs/generate.py later)")
    args = parser.parse_args()
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep} is not empty: a model directory there would be resumed, not trained anew")

    from lstm_composer.model_dir import ModelDir

    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        work = args.keep or scratch  # a kept model needs its corpus kept with it
        songs = scratch / "modern-39"
        songs.mkdir()
        for line in (args.corpus / "modern-39.txt").read_text().split():
            shutil.copy(args.corpus / line, songs / Path(line).name)
        subprocess.run([BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "parse.py",
                        "--input", songs, "--output", work / "corpus"], env=ENV, check=True,
                       capture_output=True)
        for name in args.presets:
            model_dir = work / name
            subprocess.run(
                [BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "train.py",
                 "--corpus", work / "corpus", "--model-dir", model_dir, "--preset", name,
                 "--epochs", "10000", "--num-proc", "2", "--max-minutes", str(args.minutes),
                 "--steps-per-epoch", str(args.steps_per_epoch), "--val-steps", str(args.val_steps)],
                env=ENV, check=True, capture_output=True)
            rows = ModelDir(str(model_dir)).history()
            elapsed, minutes = 0.0, []
            for row in rows:
                elapsed += float(row["seconds"]) / 60
                minutes.append(elapsed)
            subprocess.run([sys.executable, ROOT / "jobs" / "evaluate.py", "--model-dir", model_dir],
                           env=ENV, check=True, capture_output=True)
            evaluation = json.loads((model_dir / "evaluation.json").read_text())
            curves[name] = (minutes, [float(row["val_token_loss"]) for row in rows], rows, evaluation)

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for name, (minutes, losses, _, _) in curves.items():
        axes.plot(minutes, losses, marker="o", label=name)
    axes.set_xlabel("minutes of training (2 ranks, local[2])")
    axes.set_ylabel("validation cross-entropy of the token head")
    axes.set_title("modern-39: validation loss at equal wall-clock time")
    axes.legend()
    axes.grid(alpha=0.3)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=100, bbox_inches="tight")

    print("| preset | epochs | sequences/s | targets | token perplexity | best n-gram, same targets | ratio | "
          "token accuracy | full context vs 4 tokens | BatchNorm inference / training mode: held-out; training pieces |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (minutes, _, rows, evaluation) in curves.items():
        token = evaluation["validation"]["token"]
        speed = sum(float(row["sequences_per_second"]) for row in rows[1:]) / max(1, len(rows) - 1)
        best = evaluation["baselines"][evaluation["best_baseline"]]["perplexity"]
        curve = evaluation["context_curve"]
        gain = "-"
        if "4" in curve:
            change = 100 * (1 - curve["full"] / curve["4"])
            gain = f"{abs(change):.1f}% {'lower' if change >= 0 else 'higher'}"
        check = evaluation.get("batch_norm_check")
        norm = "-"
        if check:
            own = check["training_pieces"]
            norm = (f"{check['inference']:.3f} / {check['training_mode']:.3f}; "
                    f"{own['inference']:.3f} / {own['training_mode']:.3f}")
        print(f"| `{name}` | {len(rows)} | {speed:.0f} | {evaluation['targets']} | {token['perplexity']:.1f} | "
              f"{best:.1f} ({evaluation['best_baseline']}) | **{evaluation['ratio_to_best_baseline']:.2f}x** | "
              f"{token['accuracy']:.3f} | {gain} | {norm} |")
    print()
    print("| preset | generated piece | distinct tokens | onset gaps | durations | velocity bins | longest copy | "
          "overlap with the training pieces |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (_, _, _, evaluation) in curves.items():
        for i, piece in enumerate(evaluation["generated"]):
            print(f"| `{name}` | {i} | {piece['distinct_tokens']} | {piece['distinct_onset_gaps']} | "
                  f"{piece['distinct_durations']} | {piece['distinct_velocity_bins']} | "
                  f"{piece['longest_copy']['length']} | {piece['overlaps']['mean']:.2f} |")
        summary = evaluation["overlap_summary"]
        print(f"| `{name}` | all three, together | | | | | | {summary['together']['generated']['mean']:.2f} |")
    summary = next(iter(curves.values()))[3]["overlap_summary"]
    print(f"held-out pieces against the training pieces: {summary['by_piece']['held_out']['mean']:.2f} piece by "
          f"piece, {summary['together']['held_out']['mean']:.2f} together")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
