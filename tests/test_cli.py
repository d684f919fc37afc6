"""Flags that cannot make a valid run are refused at the command line, with the reason."""
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("job, flags, message", [
    ("train", ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ("train", ["--preset", "paper", "--rhythm", "seconds"], "rhythm 'seconds' needs a model with rhythm heads"),
    ("train", ["--progress-seconds", "0"], "progress_seconds must be positive"),
    ("generate", ["--tempo", "3.5"], "--tempo 3.5 is outside what a MIDI file can hold: from 3.58 BPM"),
    ("generate", ["--onset-tolerance", "fast"], "'fast' is not a tolerance"),
    ("parse", ["--onset-tolerance", "-3"], "'-3' is not a tolerance"),
])
def test_a_bad_flag_is_refused_before_anything_runs(job, flags, message):
    required = {"train": ["--corpus", "c", "--model-dir", "m"], "generate": ["--model-dir", "m"],
                "parse": ["--input", "i", "--output", "o"]}[job]
    result = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{job}.py"), *required, *flags],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
