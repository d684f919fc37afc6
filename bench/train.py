"""Training throughput: the paper's Keras code against the project's presets, in one run.

    make bench-train      (python bench/train.py)

Sequences per second, each on the bundled midi_songs/ corpus and counted on the last of two
short epochs (the first pays for graph building):
- the paper's Keras model exactly as the paper writes it (Sequential; token id / vocabulary
  size as a scalar input; one-hot targets; recurrent dropout 0.3; numpy arrays in memory),
  in one process with one TensorFlow thread, so its figure is per core;
- the `paper` preset on one Horovod rank, and on two, on a Spark standalone cluster of two
  one-core workers started for the run;
- the `fast` preset on one rank.
The last line reads `scaling: N.Nx` (two ranks over one).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstm_composer.launch import job_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = job_environment(ROOT / "cluster" / "conf")  # for spark-submit and the cluster script
EPOCHS, STEPS = 2, 10
PORT = 7177


def paper_code(corpus: Path) -> float:
    """Sequences per second of the paper's own training code, on one thread."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.keras.layers import LSTM, Activation, BatchNormalization, Dense, Dropout
    from tensorflow.keras.models import Sequential
    from tensorflow.keras.utils import to_categorical

    from lstm_composer.tables import Corpus, read_token_stream
    from lstm_composer.tokens import Vocabulary
    import pyarrow.parquet as pq

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    notes = corpus / "notes"
    vocabulary = Vocabulary(pq.read_table(notes, columns=["token"])["token"].to_pylist())
    stream = read_token_stream(Corpus(str(corpus)), vocabulary).ids  # the paper: one stream of all notes
    sequence_length, n_vocab = 100, len(vocabulary)
    count = STEPS * 128
    network_input = np.array([stream[i:i + sequence_length] for i in range(count)])
    network_output = to_categorical([stream[i + sequence_length] for i in range(count)], num_classes=n_vocab)
    network_input = np.reshape(network_input, (count, sequence_length, 1)) / float(n_vocab)

    model = Sequential()
    model.add(LSTM(216, input_shape=(sequence_length, 1), recurrent_dropout=0.3, return_sequences=True))
    model.add(LSTM(316, return_sequences=True, recurrent_dropout=0.3))
    model.add(LSTM(316, recurrent_dropout=0.3))
    model.add(BatchNormalization())
    model.add(Dropout(0.3))
    model.add(Dense(256))
    model.add(Activation("relu"))
    model.add(BatchNormalization())
    model.add(Dropout(0.3))
    model.add(Dense(n_vocab))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")

    class EpochTimer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    timer = EpochTimer()
    model.fit(network_input, network_output, epochs=EPOCHS, batch_size=128, verbose=0, callbacks=[timer])
    return count / timer.seconds


def horovod_run(master: str, corpus: Path, scratch: Path, preset: str, ranks: int) -> float:
    """Sequences per second of a `jobs/train.py` run on the cluster, from its history.csv."""
    model_dir = scratch / f"{preset}-{ranks}"
    subprocess.run(
        [BIN / "spark-submit", "--master", master, "--conf", "spark.executor.cores=1",
         ROOT / "jobs" / "train.py", "--corpus", corpus, "--model-dir", model_dir, "--preset", preset,
         "--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS), "--num-proc", str(ranks),
         "--val-fraction", "0"],
        env=ENV, check=True, capture_output=True)
    from lstm_composer.model_dir import ModelDir

    return float(ModelDir(str(model_dir)).history()[-1]["sequences_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["paper"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # the paper's code, in a process of its own
        print(json.dumps(paper_code(args.corpus)))
        return

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        corpus = scratch / "corpus"
        subprocess.run([BIN / "spark-submit", "--master", "local[2]", ROOT / "jobs" / "parse.py",
                        "--input", ROOT / "midi_songs", "--output", corpus], env=ENV, check=True,
                       capture_output=True)
        one_core = {**ENV, "OMP_NUM_THREADS": "1"}  # as Spark sets it for a one-core task
        paper = json.loads(subprocess.run([sys.executable, __file__, "--phase", "paper", "--corpus", corpus],
                                          env=one_core, check=True, capture_output=True, text=True).stdout)
        print(f"paper's Keras code, one process, one thread: {paper:.1f} sequences/s")

        cluster = {**ENV, "STANDALONE_DIR": str(scratch / "cluster")}
        master = subprocess.run([ROOT / "cluster" / "standalone.sh", "up", "2", "--cores", "1",
                                 "--port", str(PORT)], env=cluster, check=True, capture_output=True,
                                text=True).stdout.strip()
        try:
            one = horovod_run(master, corpus, scratch, "paper", 1)
            print(f"paper preset, 1 Horovod rank (one-core worker): {one:.1f} sequences/s, "
                  f"{one / paper:.2f}x the paper's code per core (goal >= 1)")
            fast = horovod_run(master, corpus, scratch, "fast", 1)
            print(f"fast preset, 1 Horovod rank (one-core worker): {fast:.1f} sequences/s, "
                  f"{fast / paper:.2f}x the paper's code per core (goal >= 2)")
            two = horovod_run(master, corpus, scratch, "paper", 2)
            print(f"paper preset, 2 Horovod ranks (two one-core workers): {two:.1f} sequences/s")
        finally:
            subprocess.run([ROOT / "cluster" / "standalone.sh", "down"], env=cluster, check=False)
        print(f"scaling: {two / one:.1f}x")


if __name__ == "__main__":
    main()
