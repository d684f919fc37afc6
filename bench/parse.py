"""Parse speed: the paper's music21 loop against the project's Spark parse job, in one run.

    make bench-parse      (python bench/parse.py --corpus ../shared/midi/piano-midi)

Each phase runs in a fresh process. Prints files per second for the paper's loop (music21 `converter.parse`, one file after another,
on the 39 pieces of modern-39.txt), for the whole Spark job (local[2], session start included,
every file of the corpus) and for the parse step alone on one core, and their ratios.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def paper_loop(paths: list[Path]) -> list[list[str]]:
    """The paper's extraction, as it wrote it: the first instrument part, notes and chords."""
    from music21 import chord, converter, instrument, note

    pieces = []
    for path in paths:
        notes = []
        pieces.append(notes)
        # music21 keeps a pickle of every file it parses (in its scratch folder, /tmp/music21)
        # and reads that instead on the next run: 3 to 5 times faster, but not parsing. The
        # paper parsed each file once; so does this loop, and it writes no pickle either.
        midi = converter.parse(path, forceSource=True, storePickle=False)
        parts = instrument.partitionByInstrument(midi)
        elements = parts.parts[0].recurse() if parts else midi.flatten().notes
        for element in elements:
            if isinstance(element, note.Note):
                notes.append(str(element.pitch))
            elif isinstance(element, chord.Chord):
                notes.append(".".join(str(n) for n in element.normalOrder))
    return pieces


def spark_job(folder: Path, output: Path):
    from pyspark.sql import SparkSession

    from lstm_composer.corpus import ParseConfig, parse_corpus

    spark = (SparkSession.builder.master("local[2]").appName("bench-parse")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    summary = parse_corpus(spark, ParseConfig(str(folder), str(output)))
    spark.stop()
    return summary


def parse_step(paths: list[Path]) -> int:
    from lstm_composer.piece import parse_piece

    return sum(len(parse_piece(str(p), p.read_bytes())[1]) for p in paths)


def measure(phase: str, corpus: Path) -> dict:
    """Run one phase in a fresh Python process, so no phase pays for another's memory or JVM."""
    result = subprocess.run([sys.executable, __file__, "--corpus", str(corpus), "--phase", phase],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_phase(phase: str, corpus: Path) -> dict:
    warnings.filterwarnings("ignore")  # music21 warns about every piano-midi.de track name
    folder = corpus / "midis"
    start = time.perf_counter()
    if phase == "paper":
        paths = [corpus / line for line in (corpus / "modern-39.txt").read_text().split()]
        pieces = paper_loop(paths)
        figures = {"files": len(paths), "tokens": sum(map(len, pieces)), "files_without_tokens": sum(not p for p in pieces)}
    elif phase == "job":
        with tempfile.TemporaryDirectory() as scratch:
            summary = spark_job(folder, Path(scratch) / "corpus")
        figures = {"files": summary.files, "tokens": summary.tokens, "summary": str(summary)}
    else:
        paths = sorted(folder.rglob("*.mid"))
        figures = {"files": len(paths), "tokens": parse_step(paths)}
    seconds = time.perf_counter() - start
    return {**figures, "seconds": seconds, "files_per_second": figures["files"] / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/midi/piano-midi"))
    parser.add_argument("--phase", choices=["paper", "job", "step"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.corpus)))
        return

    paper = measure("paper", args.corpus)
    print(f"paper loop (music21 converter.parse, sequential): {paper['files']} files, {paper['tokens']} tokens "
          f"({paper['files_without_tokens']} files with none: the first-part rule), "
          f"{paper['seconds']:.1f} s, {paper['files_per_second']:.2f} files/s")
    job = measure("job", args.corpus)
    print(f"spark parse job (local[2], session start included): {job['summary']}; "
          f"{job['seconds']:.1f} s, {job['files_per_second']:.1f} files/s")
    step = measure("step", args.corpus)
    print(f"parse step alone (one core): {step['files']} files, {step['tokens']} tokens, "
          f"{step['seconds']:.1f} s, {step['files_per_second']:.1f} files/s")
    print(f"whole job: {job['files_per_second'] / paper['files_per_second']:.1f}x the paper's files per second "
          f"(goal >= 20x)")
    print(f"parse step per core: {step['files_per_second'] / paper['files_per_second']:.1f}x (goal >= 50x)")


if __name__ == "__main__":
    main()
