"""Fuzz the MIDI reader and the tokenizer with atheris (coverage-guided libFuzzer), starting
from real MIDI files.

    make fuzz                          (python tests/fuzz_midi.py --seconds 300)

The target is what an executor does with each file's bytes: `midi.read_midi`, then
`tokens.tokenize`. A `MidiError` is the reader rejecting bad bytes, as it should; any other
exception is a crash. The per-input time limit is the parse job's default `--file-timeout`
(60 s) and memory is capped at 2 GiB: a hang or a blow-up counts as a crash too. libFuzzer
writes the input of a crash to the artifacts folder (`crash-…`); copy its bytes into a
regression test in tests/test_midi.py. The last line reads
`fuzz: N inputs in S s, C crashes`.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [ROOT / "midi_songs", ROOT.parent / "shared" / "midi" / "piano-midi" / "midis"]


def fuzz_target(data: bytes) -> None:
    from lstm_composer.midi import MidiError, read_midi
    from lstm_composer.tokens import PERFORMED_TOLERANCE_MS, onset_tolerance, tokenize

    try:
        song = read_midi(data)
    except MidiError:
        return
    onset_tolerance(song)  # the auto rule reads every file
    for tolerance in (0.0, PERFORMED_TOLERANCE_MS):  # exact ticks, and grouped in real time
        tokens = tokenize(song, tolerance)
        for token in tokens:  # what the notes table promises
            assert token.duration >= 0 and 1 <= token.velocity <= 127 and token.pitches, token
        assert [t.position for t in tokens] == list(range(len(tokens)))
        assert all(a.offset < b.offset for a, b in zip(tokens, tokens[1:]))


def run_fuzzer(corpus: str, artifacts: str, seconds: int) -> None:
    """This process becomes libFuzzer; it exits when the time is up or at the first crash."""
    import atheris

    with atheris.instrument_imports():
        import lstm_composer.midi  # noqa: F401  (instrumented for coverage)
        import lstm_composer.tokens  # noqa: F401
    atheris.Setup([sys.argv[0], corpus, f"-max_total_time={seconds}", "-timeout=60", "-rss_limit_mb=2048",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1"], fuzz_target)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=300, help="how long to fuzz")
    parser.add_argument("--seeds", type=Path, nargs="+", default=SEEDS,
                        help="folders of MIDI files to start from (default: midi_songs/ and ../shared's corpus)")
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"), help="where crash inputs go")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # (corpus, artifacts) in the child
    args = parser.parse_args()
    if args.worker:
        run_fuzzer(*args.worker, args.seconds)
        return

    args.artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as corpus:  # libFuzzer adds the inputs it finds interesting
        seeds = [p for folder in args.seeds if folder.is_dir() for p in sorted(folder.rglob("*.mid"))]
        for i, path in enumerate(seeds):
            shutil.copy(path, Path(corpus) / f"seed-{i:04d}.mid")
        result = subprocess.run([sys.executable, __file__, "--seconds", str(args.seconds),
                                 "--worker", corpus, str(args.artifacts.resolve())],
                                capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    log = result.stdout + result.stderr
    runs = re.search(r"Done (\d+) runs in (\d+) second", log) or re.search(r"stat::number_of_executed_units: (\d+)", log)
    crashes = sorted(p.name for p in args.artifacts.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    if result.returncode != 0 or not runs:
        print(log[-4000:], file=sys.stderr)
    inputs = runs.group(1) if runs else "?"
    print(f"seeds: {len(seeds)} files; artifacts: {args.artifacts}")
    print(f"fuzz: {inputs} inputs in {args.seconds} s, {len(crashes)} crashes" + (f": {', '.join(crashes)}" if crashes else ""))
    sys.exit(0 if result.returncode == 0 and runs and not crashes else 1)


if __name__ == "__main__":
    main()
