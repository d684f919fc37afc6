"""Data-parallel training with Horovod on Spark.

The driver builds the vocabulary with Spark and writes `config.json` and `vocab.json`;
`horovod.spark.run` then starts one rank per Spark task. Each rank reads the notes table
with pyarrow, streams its shard of windows, and trains with Horovod's
`DistributedOptimizer`; rank 0 alone writes `model.keras` (best loss so far) and
`history.csv`. The model directory must be reachable by the executor that runs rank 0
(any local path in local mode; shared storage on a cluster).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lstm_composer.presets import ModelConfig
from lstm_composer.tokens import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"


@dataclass(frozen=True)
class TrainConfig:
    corpus_path: str
    model_dir: str
    model: ModelConfig
    epochs: int
    num_proc: int
    seed: int = 0
    threads_per_rank: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be at least 1, got {self.num_proc}")
        if self.threads_per_rank < 1:
            raise ValueError(f"threads_per_rank must be at least 1, got {self.threads_per_rank}")

    @property
    def notes_path(self) -> str:
        return f"{self.corpus_path}/notes"


@dataclass(frozen=True)
class TrainSummary:
    model_dir: str
    epochs: int
    best_loss: float
    vocab_size: int
    windows: int


def absolute(path: str) -> str:
    """Ranks run in other working directories: make a plain local path absolute."""
    return path if "://" in path else os.path.abspath(path)


def build_vocabulary(spark, notes_path: str) -> Vocabulary:
    rows = spark.read.parquet(notes_path).select("token").distinct().collect()
    return Vocabulary(row.token for row in rows)


def write_run_files(config: TrainConfig, vocabulary: Vocabulary) -> None:
    model_dir = Path(config.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {"model": config.model.to_dict(), "corpus_path": config.corpus_path,
                "epochs": config.epochs, "num_proc": config.num_proc, "seed": config.seed}
    (model_dir / CONFIG_FILE).write_text(json.dumps(settings, indent=1))
    (model_dir / VOCAB_FILE).write_text(vocabulary.to_json())


def train(spark, config: TrainConfig) -> TrainSummary:
    """Build the vocabulary, then train on `config.num_proc` Horovod ranks."""
    import horovod.spark

    config = TrainConfig(**{**config.__dict__, "corpus_path": absolute(config.corpus_path),
                            "model_dir": absolute(config.model_dir)})
    vocabulary = build_vocabulary(spark, config.notes_path)
    write_run_files(config, vocabulary)
    local = spark.sparkContext.master.startswith("local")
    results = horovod.spark.run(
        train_rank,
        args=(config, vocabulary.tokens),
        num_proc=config.num_proc,
        use_gloo=True,
        nics=["lo"] if local else None,
        env={**os.environ, "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": "300"},
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    rank0 = next(r for r in results if r["rank"] == 0)
    return TrainSummary(model_dir=config.model_dir, epochs=config.epochs,
                        best_loss=rank0["best_loss"], vocab_size=len(vocabulary),
                        windows=rank0["windows"])


def train_rank(config: TrainConfig, vocab_tokens: list[str]) -> dict:
    """What each Horovod rank runs, on an executor. Returns a small summary to the driver."""
    import tensorflow as tf
    import horovod.tensorflow.keras as hvd

    from lstm_composer.dataset import make_dataset, read_token_stream, window_starts
    from lstm_composer.model import build_model, loss_name

    hvd.init()
    # Spark sets OMP_NUM_THREADS for the task; TensorFlow's own pools are set here.
    tf.config.threading.set_intra_op_parallelism_threads(config.threads_per_rank)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(config.seed + hvd.rank())

    model_config = config.model
    vocabulary = Vocabulary(vocab_tokens)
    stream = read_token_stream(config.notes_path, vocabulary)
    starts = window_starts(stream, model_config.sequence_length)
    steps = len(starts) // hvd.size() // model_config.batch_size
    if steps == 0:
        raise ValueError(
            f"the corpus gives {len(starts)} windows of {model_config.sequence_length} tokens, "
            f"fewer than batch_size {model_config.batch_size} × {hvd.size()} ranks: "
            f"add MIDI files or choose a smaller preset")
    dataset = make_dataset(stream, starts[hvd.rank()::hvd.size()], model_config,
                           len(vocabulary), seed=config.seed + hvd.rank())

    model = build_model(model_config, len(vocabulary))
    optimizer = tf.keras.optimizers.RMSprop(learning_rate=model_config.learning_rate * hvd.size())
    model.compile(loss=loss_name(model_config), optimizer=hvd.DistributedOptimizer(optimizer),
                  metrics=["accuracy"])

    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                 hvd.callbacks.MetricAverageCallback()]
    best = best_loss_saver(Path(config.model_dir) / MODEL_FILE, model_config, len(vocabulary))
    if hvd.rank() == 0:
        callbacks += [best, tf.keras.callbacks.CSVLogger(str(Path(config.model_dir) / HISTORY_FILE))]
    model.fit(dataset, steps_per_epoch=steps, epochs=config.epochs,
              verbose=2 if hvd.rank() == 0 else 0, callbacks=callbacks)
    return {"rank": hvd.rank(), "best_loss": best.best_loss, "windows": len(starts)}


def best_loss_saver(path: Path, model_config: ModelConfig, vocab_size: int):
    """A Keras callback keeping the weights with the lowest training loss, as the paper did.

    The file holds a plain, uncompiled copy of the network (no Horovod optimizer inside),
    written to a temporary name and renamed, so a reader never sees half a file.
    """
    import tensorflow as tf

    from lstm_composer.model import build_model

    class _BestLossSaver(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_loss = float("inf")

        def on_epoch_end(self, epoch, logs=None):
            loss = float((logs or {}).get("loss", float("inf")))
            if loss >= self.best_loss:
                return
            self.best_loss = loss
            plain = build_model(model_config, vocab_size)
            plain.set_weights(self.model.get_weights())
            partial = path.with_name(f".partial-{path.name}")
            plain.save(partial)
            os.replace(partial, path)

    return _BestLossSaver()
