"""The model directory: what a training run writes, and how it is read back.

    config.json        the run's settings: preset values, corpus, validation pieces, ...
    vocab.json         {"tokens": [...]}: token id = index; an expressive model's class values too
    voicings.json      how the corpus voices each chord, for generation
    model.keras        the network with the lowest validation loss, plain Keras
    history.csv        one row per epoch: loss, val_loss, accuracy, val_accuracy, ...
    loss.png           the loss curves
    logs/              TensorBoard
    checkpoints/       last.json and best.json point at epoch-NNNN/ (weights and optimizer)

Every file is written to a temporary name and renamed, so a reader, or a run resumed after
a crash, never sees half a file. A missing or corrupt file is reported by name.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lstm_composer.expression import Expression
from lstm_composer.tokens import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
VOICINGS_FILE = "voicings.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
LOSS_PLOT = "loss.png"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_token_loss",
                   "sequences_per_second", "seconds")


class ModelDirError(ValueError):
    """A model directory that cannot be used as it is; the message names the file."""


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(text)
    os.replace(partial, path)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelDirError(f"{path} is missing: is {path.parent} a model directory of lstm-composer?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelDirError(f"{path} is corrupt (not valid JSON: {error})") from None


def read_vocabulary(model_dir: str | Path) -> Vocabulary:
    return Vocabulary.from_dict(read_json(Path(model_dir) / VOCAB_FILE))


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

    path = Path(model_dir) / VOICINGS_FILE
    return Voicings.from_dict(read_json(path)) if path.exists() else Voicings()


def read_expression(model_dir: str | Path) -> Expression | None:
    values = read_json(Path(model_dir) / VOCAB_FILE).get("expression")
    return Expression.from_dict(values) if values else None


@dataclass(frozen=True)
class Checkpoint:
    """A saved training state: after `epoch` (0-based), with that epoch's metrics."""

    epoch: int
    prefix: str  # what tf.train.Checkpoint.read takes
    metrics: dict


def _pointer(model_dir: Path, which: str) -> Path:
    return model_dir / CHECKPOINTS_DIR / f"{which}.json"


def read_checkpoint(model_dir: str | Path, which: str = "last") -> Checkpoint | None:
    """The `last` or `best` checkpoint of a run, or None if it has none yet."""
    pointer = _pointer(Path(model_dir), which)
    if not pointer.exists():
        return None
    record = read_json(pointer)
    prefix = pointer.parent / record["directory"] / "state"
    if not Path(f"{prefix}.index").is_file():
        raise ModelDirError(f"{pointer} names {prefix}.index, which is missing")
    return Checkpoint(epoch=int(record["epoch"]), prefix=str(prefix), metrics=record["metrics"])


def save_checkpoint(model_dir: Path, state, epoch: int, metrics: dict, is_best: bool) -> None:
    """Write `state` (a tf.train.Checkpoint) for `epoch`, point `last` (and `best`) at it,
    then delete states no pointer names."""
    root = model_dir / CHECKPOINTS_DIR
    directory = root / f"epoch-{epoch:04d}"
    shutil.rmtree(directory, ignore_errors=True)  # a half-written state of a killed run
    state.write(str(directory / "state"))
    record = json.dumps({"epoch": epoch, "directory": directory.name, "metrics": metrics}, indent=1)
    pointers = ["last", "best"] if is_best else ["last"]
    for which in pointers:
        write_atomic(_pointer(model_dir, which), record)
    kept = {read_json(_pointer(model_dir, which))["directory"]
            for which in ("last", "best") if _pointer(model_dir, which).exists()}
    for old in root.glob("epoch-*"):
        if old.name not in kept:
            shutil.rmtree(old, ignore_errors=True)


def trim_history(model_dir: Path, epochs: int) -> None:
    """Keep the history rows of the first `epochs` epochs: a run killed after writing an
    epoch's row but before its checkpoint trains that epoch again."""
    path = model_dir / HISTORY_FILE
    if not path.exists():
        return
    with path.open() as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    write_atomic(path, "".join(",".join(row) + "\n" for row in kept))


def append_history(model_dir: Path, epoch: int, logs: dict) -> None:
    """Add one epoch's row to history.csv (the whole file is rewritten, so never half a row)."""
    path = model_dir / HISTORY_FILE
    text = path.read_text() if path.exists() else ",".join(HISTORY_COLUMNS) + "\n"
    values = [str(epoch)] + [f"{float(logs[key]):.6g}" if key in logs else "" for key in HISTORY_COLUMNS[1:]]
    write_atomic(path, text + ",".join(values) + "\n")


def read_history(model_dir: str | Path) -> list[dict]:
    with (Path(model_dir) / HISTORY_FILE).open() as handle:
        return list(csv.DictReader(handle))


def load_network(model_dir: str | Path):
    """The best network of a run, as plain Keras."""
    import tensorflow as tf

    from lstm_composer.model import pointer_class

    pointer_class()  # registers the pointer head's layer, which a model may hold
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelDirError(f"{path} is missing: the run has not finished an epoch yet, "
                            f"or {path.parent} is not a model directory")
    try:
        return tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged zip
        raise ModelDirError(f"{path} is corrupt or not a Keras model file ({type(error).__name__})") from None


def plot_history(model_dir: Path) -> Path:
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
    axes.set_title(f"{model_dir.name}: loss per epoch")
    axes.legend()
    axes.grid(alpha=0.3)
    path = model_dir / LOSS_PLOT
    partial = path.with_name(f".partial-{path.name}")
    figure.savefig(partial, format="png", dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    os.replace(partial, path)
    return path
