"""A short run of the parser fuzzer (`make fuzz` runs it for 5 minutes)."""
import re
import subprocess
import sys

from conftest import ROOT


def test_a_short_fuzz_run_finds_no_crash(tmp_path):
    # From the bundled songs only: libFuzzer reads every seed before it fuzzes (`make fuzz` adds ../shared's 337).
    result = subprocess.run([sys.executable, str(ROOT / "tests/fuzz_midi.py"), "--seconds", "10",
                             "--seeds", str(ROOT / "midi_songs"), "--artifacts", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    summary = re.search(r"fuzz: (\d+) inputs in 10 s, (\d+) crashes", result.stdout)
    seeds = re.search(r"seeds: (\d+) files", result.stdout)
    assert summary and seeds, result.stdout + result.stderr[-3000:]
    assert int(summary.group(1)) > int(seeds.group(1)) > 0  # it went on past its seeds (how far is the machine's)
    assert result.returncode == 0 and summary.group(2) == "0", result.stdout + result.stderr[-3000:]
