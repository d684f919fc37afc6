"""Scale: the parse job on 50,000 files and again with 1,000 new ones; a rank's token data with 1 and 2 ranks.

    make bench-scale      (python bench/scale.py)

Makes a synthetic corpus of distinct MIDI files from the bundled pieces (transposed, cut and
joined copies) in a temporary folder outside the repository, and runs, each in a fresh
process on local[2]:
1. the parse job on all of it: files per second, the driver's peak memory (its JVM, which
   hosts local[2]'s executors, and its Python), the Parquet files written;
2. the parse job again after adding `--new` files: seconds, and the bytes read in that run
   through Hadoop's file system (the JVM) and by the driver's Python, beside the size of the
   new files (a small re-run parses them on the driver); and a third time with nothing new, for
   what every run reads;
3. training for a few steps on the parsed notes table (at least 10 million tokens) with 1 rank,
   then with 2: each rank's token data (Arrow's peak while reading its shard, plus the arrays
   it keeps) and its process's peak memory.
The last two lines read `incremental: N.N%` (the second parse's time as a share of the first's)
and `rank memory: N.Nx` (the larger of the two ranks' token data over the single rank's).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from lstm_composer.midi import variable_length

ROOT = Path(__file__).resolve().parents[1]
TICKS = 480
MIB = 1 << 20


def standard_midi_file(notes: list[tuple[int, int, int, int]]) -> bytes:
    """Format 0, one track, 120 BPM: (start, end, pitch, velocity) notes in ticks of 480 a quarter."""
    events = [(start, 1, bytes((0x90, pitch, velocity))) for start, _, pitch, velocity in notes]
    events += [(end, 0, bytes((0x80, pitch, 0))) for _, end, pitch, _ in notes]
    events.sort(key=lambda event: (event[0], event[1]))
    body, tick = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20"), 0
    for at, _, data in events:
        body += variable_length(at - tick) + data
        tick = at
    body += b"\x00\xff\x2f\x00"
    return (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
            + TICKS.to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))


def bundled_songs() -> list[list[tuple[int, int, int, int]]]:
    """Each bundled piece's pitched notes at 480 ticks a quarter, by onset."""
    from lstm_composer.midi import PERCUSSION_CHANNEL, read_midi

    songs = []
    for path in sorted((ROOT / "midi_songs").glob("*.mid")):
        song = read_midi(path.read_bytes())
        scale = TICKS / song.ticks_per_quarter
        songs.append(sorted((round(n.start * scale), max(round(n.end * scale), round(n.start * scale) + 1), n.pitch,
                             n.velocity) for n in song.notes if n.channel != PERCUSSION_CHANNEL))
    return songs


def cut(song, rng, shortest: int, longest: int, shift: int, at: int) -> list[tuple[int, int, int, int]]:
    """A run of the song's notes, transposed by `shift` semitones, moved to start at tick `at`."""
    length = min(len(song), int(rng.integers(shortest, longest)))
    first = int(rng.integers(0, len(song) - length + 1))
    notes = song[first:first + length]
    origin = notes[0][0]
    return [(start - origin + at, end - origin + at, pitch + shift, velocity)
            for start, end, pitch, velocity in notes if 0 <= pitch + shift <= 127]


def variant(songs, number: int) -> bytes:
    """Variant `number`: a transposed cut of one piece, a third of them joined to a cut of another."""
    import numpy as np

    rng = np.random.default_rng(number)
    shift = int(rng.integers(-6, 7))
    notes = cut(songs[int(rng.integers(len(songs)))], rng, 300, 700, shift, 0)
    if rng.random() < 1 / 3:
        end = max(e for _, e, _, _ in notes) + TICKS
        notes += cut(songs[int(rng.integers(len(songs)))], rng, 100, 300, shift, end)
    return standard_midi_file(notes)


def make_corpus(folder: Path, first: int, count: int, seen: set[str]) -> tuple[int, int]:
    """`count` files of distinct content (by SHA-256) from variant `first` on, 1,000 a subfolder.
    Returns (next variant number, bytes written)."""
    songs = bundled_songs()
    number, written, total = first, 0, 0
    while written < count:
        data = variant(songs, number)
        number += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        path = folder / f"part-{written // 1000:03d}" / f"piece-{number:06d}.mid"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
        total += len(data)
    return number, total


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this environment's Python
    os.environ.setdefault("SPARK_CONF_DIR", str(ROOT / "cluster" / "conf"))
    return (SparkSession.builder.master("local[2]").appName("bench-scale")
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def hadoop_bytes_read(spark) -> int:
    statistics = spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(s.getBytesRead() for s in statistics if s.getScheme() == "file")


def parse_phase(corpus: str, output: str) -> dict:
    from lstm_composer.corpus import ParseConfig, parse_corpus

    started = time.perf_counter()
    spark = spark_session()
    before, driver_before = hadoop_bytes_read(spark), psutil.Process().io_counters().read_chars
    parse_started = time.perf_counter()
    summary = parse_corpus(spark, ParseConfig(corpus, output))
    parse_seconds = time.perf_counter() - parse_started
    read = hadoop_bytes_read(spark) - before
    driver_read = psutil.Process().io_counters().read_chars - driver_before
    spark.stop()
    return {"seconds": time.perf_counter() - started, "parse_seconds": parse_seconds, "bytes_read": read,
            "driver_bytes_read": driver_read,
            "files": summary.files, "parsed": summary.parsed, "known": summary.known,
            "duplicates": summary.duplicates, "failed": summary.failed, "tokens": summary.tokens}


def train_phase(corpus: str, model_dir: str, ranks: int) -> dict:
    from lstm_composer.presets import preset
    from lstm_composer.training import TrainConfig, train

    spark = spark_session()
    summary = train(spark, TrainConfig(corpus_path=corpus, model_dir=model_dir, model=preset("tiny"), epochs=1,
                                       num_proc=ranks, steps_per_epoch=3, val_steps=1))
    spark.stop()
    return {"token_bytes": list(summary.rank_token_bytes), "peak_rss": list(summary.rank_peak_rss),
            "train_windows": summary.train_windows}


def measured(phase: list[str]) -> tuple[dict, dict]:
    """Run a phase in a fresh process; (its result, peak RSS of its Python and of its JVM)."""
    import psutil

    process = subprocess.Popen([sys.executable, __file__, *phase], stdout=subprocess.PIPE, text=True)
    peaks = {"python": 0, "jvm": 0}

    def watch():
        parent = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peaks["python"] = max(peaks["python"], parent.memory_info().rss)
                for child in parent.children():
                    if "java" in child.name():
                        peaks["jvm"] = max(peaks["jvm"], child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = process.communicate()
    watcher.join()
    if process.returncode != 0:
        sys.exit(f"phase {phase[:2]} failed (exit {process.returncode})")
    return json.loads(output.strip().splitlines()[-1]), peaks


def parquet_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000, help="files of the first run")
    parser.add_argument("--new", type=int, default=1_000, help="files added for the second run")
    parser.add_argument("--min-tokens", type=int, default=10_000_000, help="the notes table must hold this many")
    parser.add_argument("--phase", choices=["parse", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "parse":
        print(json.dumps(parse_phase(args.corpus, args.output)))
        return
    if args.phase == "train":
        print(json.dumps(train_phase(args.corpus, args.output, args.ranks)))
        return

    work = Path(tempfile.mkdtemp(prefix="lstm-composer-scale-"))
    try:
        midi, corpus, seen = work / "midi", work / "corpus", set()
        started = time.perf_counter()
        number, first_bytes = make_corpus(midi / "first", 0, args.files, seen)
        print(f"synthetic corpus: {args.files:,} distinct files, {first_bytes / MIB:.1f} MiB, made from the "
              f"{len(bundled_songs())} bundled pieces in {time.perf_counter() - started:.0f} s ({work})", flush=True)

        first, first_peaks = measured(["--phase", "parse", "--corpus", str(midi), "--output", str(corpus)])
        notes_files, pieces_files = parquet_files(corpus / "notes"), parquet_files(corpus / "pieces")
        print(f"first run: {first['files']:,} files in {first['seconds']:.1f} s "
              f"({first['files'] / first['seconds']:.0f} files/s; parse_corpus alone {first['parse_seconds']:.1f} s), "
              f"{first['parsed']:,} parsed, {first['failed']} failed, {first['duplicates']} duplicates, "
              f"{first['tokens']:,} tokens; driver peak memory: JVM {first_peaks['jvm'] / MIB:,.0f} MiB, "
              f"Python {first_peaks['python'] / MIB:,.0f} MiB; output {notes_files + pieces_files} Parquet files "
              f"({notes_files} notes, {pieces_files} pieces)", flush=True)

        _, new_bytes = make_corpus(midi / "new", number, args.new, seen)
        second, _ = measured(["--phase", "parse", "--corpus", str(midi), "--output", str(corpus)])
        idle, _ = measured(["--phase", "parse", "--corpus", str(midi), "--output", str(corpus)])
        print(f"second run: {second['files']:,} files, {second['known']:,} known, {second['parsed']:,} parsed, in "
              f"{second['seconds']:.1f} s (parse_corpus alone {second['parse_seconds']:.1f} s); read "
              f"{second['bytes_read'] / MIB:.2f} MiB through Hadoop's file system and "
              f"{second['driver_bytes_read'] / MIB:.2f} MiB in the driver's Python, where the new files hold "
              f"{new_bytes / MIB:.2f} MiB and the known ones {first_bytes / MIB:.1f} MiB", flush=True)
        print(f"third run, nothing new: {idle['known']:,} known, {idle['parsed']} parsed, in {idle['seconds']:.1f} s; "
              f"read {idle['bytes_read'] / MIB:.2f} MiB through Hadoop's file system and "
              f"{idle['driver_bytes_read'] / MIB:.2f} MiB in the driver's Python (the pieces table, and modules "
              f"imported on first use): the second run read "
              f"{(second['driver_bytes_read'] - idle['driver_bytes_read']) / MIB:.2f} MiB more", flush=True)
        if first["tokens"] < args.min_tokens:
            sys.exit(f"the notes table has {first['tokens']:,} tokens, fewer than the {args.min_tokens:,} asked for")

        trained = {}
        for ranks in (1, 2):
            trained[ranks], _ = measured(["--phase", "train", "--corpus", str(corpus),
                                          "--output", str(work / f"model-{ranks}"), "--ranks", str(ranks)])
            print(f"{ranks} rank{'s' if ranks > 1 else ''}: token data "
                  f"{' / '.join(f'{b / MIB:,.0f}' for b in trained[ranks]['token_bytes'])} MiB per rank, "
                  f"(x{max(trained[ranks]['token_bytes']) / trained[1]['token_bytes'][0]:.3f} of 1 rank's), "
                  f"peak memory {' / '.join(f'{b / MIB:,.0f}' for b in trained[ranks]['peak_rss'])} MiB per rank "
                  f"({first['tokens'] + second['tokens']:,} tokens)", flush=True)
        print(f"incremental: {100 * second['seconds'] / first['seconds']:.1f}%")
        print(f"rank memory: {max(trained[2]['token_bytes']) / trained[1]['token_bytes'][0]:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
