"""The model directory: what a training run writes, and how it is read back.

    config.json        the run's settings: preset values, corpus, validation pieces, ...
    vocab.json         {"tokens": [...]}: token id = index; an expressive model's class values too
    voicings.json      how the corpus voices each chord, for generation
    model.keras        the network with the lowest validation loss, plain Keras
    history.csv        one row per epoch: loss, val_loss, accuracy, val_accuracy, ...
    loss.png           the loss curves
    logs/              TensorBoard
    checkpoints/       last.json and best.json point at epoch-NNNN/ (weights and optimizer)

The directory is any location `storage` knows (a local path, s3://, gs://, hdfs://). Every
file is written atomically (`storage.write_bytes`), so a reader, or a run resumed after a
crash, never sees half a file. A missing or corrupt file is reported by name.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.storage import Workspace
from lstm_composer.tokens import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
VOICINGS_FILE = "voicings.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
LOSS_PLOT = "loss.png"
EVALUATION_FILE = "evaluation.json"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_token_loss",
                   "sequences_per_second", "seconds")


class ModelDirError(ValueError):
    """A model directory that cannot be used as it is; the message names the file."""


def file(model_dir: str | Path, *names: str) -> str:
    """The location of a file of the model directory."""
    return storage.join(str(model_dir), *names)


def write_atomic(path: str | Path, text: str) -> None:
    """A file of the model directory, written by storage's one atomic write."""
    storage.write_text(str(path), text)


def read_json(path: str | Path) -> dict:
    path = str(path)
    if not storage.is_file(path):
        raise ModelDirError(f"{path} is missing: is {storage.parent(path)} a model directory of lstm-composer?")
    try:
        return json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelDirError(f"{path} is corrupt (not valid JSON: {error})") from None


def read_vocabulary(model_dir: str | Path) -> Vocabulary:
    return Vocabulary.from_dict(read_json(file(model_dir, VOCAB_FILE)))


def vocabulary_json(vocabulary: Vocabulary, expression: Expression | None = None) -> str:
    """vocab.json: the tokens, and an expressive model's ioi/duration/velocity class values."""
    values = json.loads(vocabulary.to_json())
    if expression:
        values["expression"] = expression.to_dict()
    return json.dumps(values, indent=1)


def read_voicings(model_dir: str | Path):
    """The corpus's chord voicings (`voicing.Voicings`); empty ones for a directory written
    before they were kept (chords are then voiced from their bass upwards)."""
    from lstm_composer.voicing import Voicings

    path = file(model_dir, VOICINGS_FILE)
    return Voicings.from_dict(read_json(path)) if storage.is_file(path) else Voicings()


def read_expression(model_dir: str | Path) -> Expression | None:
    values = read_json(file(model_dir, VOCAB_FILE)).get("expression")
    return Expression.from_dict(values) if values else None


@dataclass(frozen=True)
class Checkpoint:
    """A saved training state: after `epoch` (0-based), with that epoch's metrics."""

    epoch: int
    prefix: str  # what tf.train.Checkpoint.read takes, once the folder is local
    metrics: dict
    directory: str = ""  # its folder under checkpoints/

    def local_prefix(self, workspace: Workspace) -> str:
        """The prefix inside `workspace`, downloading the state first when the directory is remote."""
        return os.path.join(workspace.fetch(CHECKPOINTS_DIR, self.directory), "state")


def _pointer(model_dir: str | Path, which: str) -> str:
    return file(model_dir, CHECKPOINTS_DIR, f"{which}.json")


def read_checkpoint(model_dir: str | Path, which: str = "last") -> Checkpoint | None:
    """The `last` or `best` checkpoint of a run, or None if it has none yet."""
    pointer = _pointer(model_dir, which)
    if not storage.exists(pointer):
        return None
    record = read_json(pointer)
    prefix = file(model_dir, CHECKPOINTS_DIR, record["directory"], "state")
    if not storage.is_file(f"{prefix}.index"):
        raise ModelDirError(f"{pointer} names {prefix}.index, which is missing")
    return Checkpoint(epoch=int(record["epoch"]), prefix=prefix, metrics=record["metrics"],
                      directory=record["directory"])


def save_checkpoint(workspace: Workspace, state, epoch: int, metrics: dict, is_best: bool) -> None:
    """Write `state` (a tf.train.Checkpoint) for `epoch` into the workspace and upload it, point
    `last` (and `best`) at it, then delete states no pointer names."""
    model_dir = workspace.uri
    directory = f"epoch-{epoch:04d}"
    storage.delete(file(model_dir, CHECKPOINTS_DIR, directory))  # a half-written state of a killed run
    workspace.forget(CHECKPOINTS_DIR, directory)
    state.write(workspace.path(CHECKPOINTS_DIR, directory, "state"))
    workspace.sync(CHECKPOINTS_DIR, directory)
    record = json.dumps({"epoch": epoch, "directory": directory, "metrics": metrics}, indent=1)
    pointers = ["last", "best"] if is_best else ["last"]
    for which in pointers:
        write_atomic(_pointer(model_dir, which), record)
    kept = {read_json(_pointer(model_dir, which))["directory"]
            for which in ("last", "best") if storage.exists(_pointer(model_dir, which))}
    for old in storage.list_names(file(model_dir, CHECKPOINTS_DIR)):
        if old.startswith("epoch-") and old not in kept:
            storage.delete(file(model_dir, CHECKPOINTS_DIR, old))
            workspace.forget(CHECKPOINTS_DIR, old)


def trim_history(model_dir: str | Path, epochs: int) -> None:
    """Keep the history rows of the first `epochs` epochs: a run killed after writing an
    epoch's row but before its checkpoint trains that epoch again."""
    path = file(model_dir, HISTORY_FILE)
    if not storage.exists(path):
        return
    rows = list(csv.reader(io.StringIO(storage.read_text(path))))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    write_atomic(path, "".join(",".join(row) + "\n" for row in kept))


def append_history(model_dir: str | Path, epoch: int, logs: dict) -> None:
    """Add one epoch's row to history.csv (the whole file is rewritten, so never half a row)."""
    path = file(model_dir, HISTORY_FILE)
    text = storage.read_text(path) if storage.exists(path) else ",".join(HISTORY_COLUMNS) + "\n"
    values = [str(epoch)] + [f"{float(logs[key]):.6g}" if key in logs else "" for key in HISTORY_COLUMNS[1:]]
    write_atomic(path, text + ",".join(values) + "\n")


def read_history(model_dir: str | Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(storage.read_text(file(model_dir, HISTORY_FILE)))))


def load_network(model_dir: str | Path):
    """The best network of a run, as plain Keras."""
    import tensorflow as tf

    import lstm_composer.model  # noqa: F401  (registers the pointer head's layer, which a model may hold)
    path = file(model_dir, MODEL_FILE)
    if not storage.is_file(path):
        raise ModelDirError(f"{path} is missing: the run has not finished an epoch yet, "
                            f"or {model_dir} is not a model directory")
    with tempfile.TemporaryDirectory(prefix="lstm-composer-") as scratch:
        local = storage.local_path(path)
        if local is None:  # Keras opens local files only
            local = os.path.join(scratch, MODEL_FILE)
            storage.get_file(path, local)
        try:
            return tf.keras.models.load_model(local, compile=False)
        except Exception as error:  # Keras raises many kinds for a damaged zip
            raise ModelDirError(f"{path} is corrupt or not a Keras model file ({type(error).__name__})") from None


def save_network(network, path: str | Path) -> None:
    """A Keras file at `path` (any location): saved by Keras into a scratch folder, then
    written there atomically."""
    with tempfile.TemporaryDirectory(prefix="lstm-composer-") as scratch:
        local = os.path.join(scratch, MODEL_FILE)
        network.save(local)
        storage.put_file(local, str(path))


def plot_history(model_dir: str | Path) -> str:
    """loss.png: training and validation loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = read_history(model_dir)
    figure, axes = pyplot.subplots(figsize=(7, 4))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        values = [float(row[key]) for row in rows if row.get(key)]
        if len(values) == len(epochs):
            axes.plot(epochs, values, marker="o", label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy")
    axes.set_title(f"{storage.name(str(model_dir))}: loss per epoch")
    axes.legend()
    axes.grid(alpha=0.3)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    path = file(model_dir, LOSS_PLOT)
    storage.write_bytes(path, image.getvalue())
    return path
