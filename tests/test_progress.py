"""Rank output on the driver's console as it is printed, and rank 0's progress lines."""
import re
import subprocess
import time

from conftest import ROOT, copy_songs
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.hardware import cpu_flags
from lstm_composer.launch import job_environment
from lstm_composer.model_dir import ModelDir
from lstm_composer.progress import duration_text



def test_duration_text():
    assert [duration_text(s) for s in (0, 9.6, 65, 3725)] == ["0:00", "0:10", "1:05", "1:02:05"]


def test_rank_lines_reach_the_driver_while_training_runs(spark, tmp_path):
    parse_corpus(spark, ParseConfig(str(copy_songs(tmp_path)), str(tmp_path / "corpus")))
    # oneDNN limited as on a CPU without AVX-512: `--precision auto` must choose float32 there.
    env = job_environment(ROOT / "cluster" / "conf", ONEDNN_MAX_CPU_ISA="AVX2")
    command = ["spark-submit", "--master", "local[2]", str(ROOT / "jobs/train.py"), "--corpus", "corpus",
               "--model-dir", "model", "--preset", "tiny", "--precision", "auto", "--epochs", "3",
               "--num-proc", "2", "--batch-size", "2", "--progress-seconds", "0.1"]
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    arrivals = []  # (seconds since start, line) as the driver's console receives them
    started = time.monotonic()
    for line in driver.stdout:
        arrivals.append((time.monotonic() - started, line.rstrip("\n")))
    assert driver.wait(timeout=600) == 0, "\n".join(line for _, line in arrivals[-40:])

    rank0 = [(at, line[len("[0]<stdout>:"):]) for at, line in arrivals if line.startswith("[0]<stdout>:")]
    # The reason names what ruled bfloat16 out on this machine: the limit, or the CPU itself.
    reason = ("oneDNN limited to AVX2 by ONEDNN_MAX_CPU_ISA: no native bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags()
              else "CPU without AVX512-BF16 or AMX")
    assert any(line.startswith("training: ") and line.endswith(f"precision float32 ({reason})") for _, line in rank0), (
        [line for _, line in rank0 if line.startswith("training: ")])
    progress = re.compile(r"epoch (\d)/3 step \d+/\d+: [\d.]+ sequences/s, \d+:\d\d left in this epoch, "
                          r"\d+:\d\d in all; precision float32 \(")
    # 76 steps an epoch, each at least Horovod's 10 ms cycle: every epoch trains for longer than
    # the 0.1 s between progress lines, however fast the machine.
    epochs_with_progress = {progress.match(line)[1] for _, line in rank0 if progress.match(line)}
    assert epochs_with_progress == {"1", "2", "3"}
    ends = [at for at, line in rank0 if re.match(r"\d+/\d+ - .* - loss: .* - val_loss: ", line)]  # Keras's epoch lines
    assert len(ends) == 3
    # Buffered, all three epoch lines would arrive together when the job ends; live, they are
    # as far apart as the epochs took.
    trained = sum(float(row["seconds"]) for row in ModelDir(str(tmp_path / "model")).history()[1:])
    assert ends[2] - ends[0] > 0.5 * trained > 0
