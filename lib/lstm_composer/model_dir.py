"""The model directory: what a training run writes, and how it is read back.

    config.json        the run's settings (`RunSettings`): preset values, corpus, held-out pieces, ...
    vocab.json         {"tokens": [...]}: token id = index; an expressive model's class values too
    voicings.json      how the corpus voices each chord, for generation
    model.keras        the network with the lowest validation loss, plain Keras
    history.csv        one row per epoch: loss, val_loss, accuracy, val_accuracy, ...
    loss.png           the loss curves
    evaluation.json    what `jobs/evaluate.py` measured
    logs/              TensorBoard
    checkpoints/       last.json and best.json point at epoch-NNNN/ (weights and optimizer)
    corpus/            the corpus as training found it (its notes and pieces tables, copied): what
                       a resumed run trains on and what generation and evaluation read, so the
                       model keeps working when its corpus grows, moves or is deleted

`ModelDir` owns every one of these: nobody else builds their paths or reads them. The
directory is any location `storage` knows (a local path, s3://, gs://, hdfs://). Every file is
written atomically (`storage.write_bytes`), so a reader, or a run resumed after a crash, never
sees half a file. A missing or corrupt file is reported by name. `ModelDir.load` gives a
`TrainedModel`: everything generation and evaluation need.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.presets import ModelConfig
from lstm_composer.originality import TokenIndex
from lstm_composer.sampling import mode_shares, pitch_classes, repeat_cap
from lstm_composer.statistics import density_levels
from lstm_composer.storage import Workspace
from lstm_composer.tables import (Corpus, TokenStream, copy_corpus, piece_onsets, piece_values,
                                  read_token_stream)
from lstm_composer.tokens import Vocabulary
from lstm_composer.voicing import Voicings

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
VOICINGS_FILE = "voicings.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
LOSS_PLOT = "loss.png"
EVALUATION_FILE = "evaluation.json"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
CORPUS_DIR = "corpus"
CORPUS_COPYING = "_corpus-copying"  # the copy before it is complete
RUN_FILES = (MODEL_FILE, HISTORY_FILE, CONFIG_FILE, VOCAB_FILE, VOICINGS_FILE, CHECKPOINTS_DIR, LOSS_PLOT,
             EVALUATION_FILE, LOGS_DIR, CORPUS_DIR, CORPUS_COPYING)
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_token_loss",
                   "sequences_per_second", "seconds")


class ModelDirError(ValueError):
    """A model directory that cannot be used as it is; the message names the file."""


@dataclass(frozen=True)
class RunSettings:
    """config.json: how the run was set up. `held_out` is stored as `validation_pieces`."""

    model: ModelConfig
    corpus_path: str
    epochs: int | None = None
    num_proc: int | None = None
    seed: int = 0
    val_fraction: float | None = None
    held_out: tuple[str, ...] = ()  # the pieces no training window came from

    def to_json(self) -> str:
        return json.dumps({"model": self.model.to_dict(), "corpus_path": self.corpus_path, "epochs": self.epochs,
                           "num_proc": self.num_proc, "seed": self.seed, "val_fraction": self.val_fraction,
                           "validation_pieces": list(self.held_out)}, indent=1)

    @classmethod
    def from_dict(cls, values: dict) -> "RunSettings":
        values = dict(values)
        held_out = tuple(values.pop("validation_pieces", None) or ())
        return cls(model=ModelConfig.from_dict(values.pop("model")), held_out=held_out, **values)


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


@dataclass(frozen=True)
class ModelDir:
    """A model directory at `uri`."""

    uri: str

    def file(self, *names: str) -> str:
        """The location of a file of the directory."""
        return storage.join(str(self.uri), *names)

    def read_json(self, *names: str) -> dict:
        path = self.file(*names)
        if not storage.is_file(path):
            raise ModelDirError(f"{path} is missing: is {self.uri} a model directory of lstm-composer?")
        try:
            return json.loads(storage.read_text(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelDirError(f"{path} is corrupt (not valid JSON: {error})") from None

    def write_text(self, name: str, text: str) -> None:
        storage.write_text(self.file(name), text)

    def settings(self) -> RunSettings:
        try:
            return RunSettings.from_dict(self.read_json(CONFIG_FILE))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ModelDirError):
                raise
            raise ModelDirError(f"{self.file(CONFIG_FILE)} is not a run's settings ({type(error).__name__}: "
                                f"{error})") from None

    def write_settings(self, settings: RunSettings) -> None:
        self.write_text(CONFIG_FILE, settings.to_json())

    def run_files(self) -> list[str]:
        """The names of a run's files and folders that the directory holds."""
        return [name for name in RUN_FILES if storage.exists(self.file(name))]

    def clear(self) -> None:
        """Delete every file of a run (before a new run replaces it)."""
        for name in RUN_FILES:
            storage.delete(self.file(name))

    def vocabulary(self) -> Vocabulary:
        values = self.read_json(VOCAB_FILE)
        if not (isinstance(values, dict) and isinstance(values.get("tokens"), list)
                and all(isinstance(token, str) for token in values["tokens"])):
            raise ModelDirError(f"{self.file(VOCAB_FILE)} is not a vocabulary (an object with a list of token "
                                f"strings, \"tokens\"): it was changed by hand or comes from elsewhere")
        return Vocabulary.from_dict(values)

    def expression(self) -> Expression | None:
        """An expressive model's class values, saved beside its vocabulary."""
        values = self.read_json(VOCAB_FILE).get("expression")
        try:
            return Expression.from_dict(values) if values else None
        except (KeyError, TypeError, ValueError) as error:
            raise ModelDirError(f"{self.file(VOCAB_FILE)} has expression classes of the wrong shape "
                                f"({type(error).__name__}: {error})") from None

    def check_writable(self) -> None:
        """A `ModelDirError` now, rather than after minutes of work, when nothing can be written here."""
        probe = self.file(f"_probe-{os.getpid()}")
        try:
            storage.write_text(probe, "")
            storage.delete(probe)
        except OSError as error:
            raise ModelDirError(f"cannot write in {self.uri} ({error}): make it writable, or copy the model "
                                f"directory somewhere that is") from None

    def write_vocabulary(self, vocabulary: Vocabulary, expression: Expression | None = None) -> None:
        values = json.loads(vocabulary.to_json())
        if expression:
            values["expression"] = expression.to_dict()
        self.write_text(VOCAB_FILE, json.dumps(values, indent=1))

    def voicings(self) -> Voicings:
        """The corpus's chord voicings; empty ones for a directory written before they were kept
        (chords are then voiced from their bass upwards)."""
        return Voicings.from_dict(self.read_json(VOICINGS_FILE)) if storage.is_file(self.file(VOICINGS_FILE)) \
            else Voicings()

    def write_voicings(self, voicings: Voicings) -> None:
        self.write_text(VOICINGS_FILE, voicings.to_json())

    def write_evaluation(self, result: dict) -> None:
        self.write_text(EVALUATION_FILE, json.dumps(result, indent=1))

    def _pointer(self, which: str) -> str:
        return self.file(CHECKPOINTS_DIR, f"{which}.json")

    def checkpoint(self, which: str = "last") -> Checkpoint | None:
        """The `last` or `best` checkpoint of a run, or None if it has none yet."""
        if not storage.exists(self._pointer(which)):
            return None
        record = self.read_json(CHECKPOINTS_DIR, f"{which}.json")
        prefix = self.file(CHECKPOINTS_DIR, record["directory"], "state")
        if not storage.is_file(f"{prefix}.index"):
            raise ModelDirError(f"{self._pointer(which)} names {prefix}.index, which is missing")
        return Checkpoint(epoch=int(record["epoch"]), prefix=prefix, metrics=record["metrics"],
                          directory=record["directory"])

    def save_checkpoint(self, workspace: Workspace, state, epoch: int, metrics: dict, is_best: bool) -> None:
        """Write `state` (a tf.train.Checkpoint) for `epoch` into the workspace (of this
        directory) and upload it, point `last` (and `best`) at it, then delete states no
        pointer names."""
        directory = f"epoch-{epoch:04d}"
        storage.delete(self.file(CHECKPOINTS_DIR, directory))  # a half-written state of a killed run
        workspace.forget(CHECKPOINTS_DIR, directory)
        state.write(workspace.path(CHECKPOINTS_DIR, directory, "state"))
        workspace.sync(CHECKPOINTS_DIR, directory)
        record = json.dumps({"epoch": epoch, "directory": directory, "metrics": metrics}, indent=1)
        for which in ["last", "best"] if is_best else ["last"]:
            storage.write_text(self._pointer(which), record)
        kept = {self.read_json(CHECKPOINTS_DIR, f"{which}.json")["directory"]
                for which in ("last", "best") if storage.exists(self._pointer(which))}
        for old in storage.list_names(self.file(CHECKPOINTS_DIR)):
            if old.startswith("epoch-") and old not in kept:
                storage.delete(self.file(CHECKPOINTS_DIR, old))
                workspace.forget(CHECKPOINTS_DIR, old)

    def keep_corpus(self, source: Corpus, known: Vocabulary | None = None) -> tuple[Corpus, list[str]]:
        """Copy the corpus into the directory (whole, or not at all), in place of the copy it
        had; with `known`, without the pieces that hold other tokens. (Its copy, those pieces.)"""
        copying = Corpus(self.file(CORPUS_COPYING))
        storage.delete(copying.root)
        left_out = copy_corpus(source, copying, known)
        storage.delete(self.file(CORPUS_DIR))
        storage.rename(copying.root, self.file(CORPUS_DIR))
        return Corpus(self.file(CORPUS_DIR)), left_out

    def corpus(self, settings: RunSettings) -> Corpus:
        """The directory's copy of its corpus; for a model trained before copies were kept, the
        corpus where it was."""
        kept = Corpus(self.file(CORPUS_DIR))
        return kept if storage.exists(kept.notes) else Corpus(settings.corpus_path)

    def point_last_at(self, which: str) -> None:
        """Make the `which` checkpoint the last one, the one a resumed run goes on from."""
        if which != "last":
            storage.write_text(self._pointer("last"), storage.read_text(self._pointer(which)))

    def trim_history(self, epochs: int) -> None:
        """Keep the history rows of the first `epochs` epochs: a run killed after writing an
        epoch's row but before its checkpoint trains that epoch again."""
        path = self.file(HISTORY_FILE)
        if not storage.exists(path):
            return
        rows = list(csv.reader(io.StringIO(storage.read_text(path))))
        kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
        storage.write_text(path, "".join(",".join(row) + "\n" for row in kept))

    def append_history(self, epoch: int, logs: dict) -> None:
        """Add one epoch's row to history.csv (the whole file is rewritten, so never half a row)."""
        path = self.file(HISTORY_FILE)
        text = storage.read_text(path) if storage.exists(path) else ",".join(HISTORY_COLUMNS) + "\n"
        values = [str(epoch)] + [f"{float(logs[key]):.6g}" if key in logs else "" for key in HISTORY_COLUMNS[1:]]
        storage.write_text(path, text + ",".join(values) + "\n")

    def history(self) -> list[dict]:
        return list(csv.DictReader(io.StringIO(storage.read_text(self.file(HISTORY_FILE)))))

    def load_network(self):
        """The best network of the run, as plain Keras."""
        import tensorflow as tf

        path = self.file(MODEL_FILE)
        if not storage.is_file(path):
            raise ModelDirError(f"{path} is missing: the run has not finished an epoch yet, "
                                f"or {self.uri} is not a model directory")
        with tempfile.TemporaryDirectory(prefix="lstm-composer-") as scratch:
            local = storage.local_path(path)
            if local is None:  # Keras opens local files only
                local = os.path.join(scratch, MODEL_FILE)
                storage.get_file(path, local)
            try:
                return tf.keras.models.load_model(local, compile=False)
            except Exception as error:  # Keras raises many kinds for a damaged zip
                raise ModelDirError(f"{path} is corrupt or not a Keras model file ({type(error).__name__})") from None

    def save_network(self, network) -> None:
        """model.keras: saved by Keras into a scratch folder, then written here atomically."""
        with tempfile.TemporaryDirectory(prefix="lstm-composer-") as scratch:
            local = os.path.join(scratch, MODEL_FILE)
            network.save(local)
            storage.put_file(local, self.file(MODEL_FILE))

    def plot_history(self) -> str:
        """loss.png: training and validation loss per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        rows = self.history()
        figure, axes = pyplot.subplots(figsize=(7, 4))
        epochs = [int(row["epoch"]) + 1 for row in rows]
        for key, label in (("loss", "training"), ("val_loss", "validation")):
            values = [float(row[key]) for row in rows if row.get(key)]
            if len(values) == len(epochs):
                axes.plot(epochs, values, marker="o", label=label)
        axes.set(xlabel="epoch", ylabel="cross-entropy", title=f"{storage.name(str(self.uri))}: loss per epoch")
        axes.legend()
        axes.grid(alpha=0.3)
        image = io.BytesIO()
        figure.savefig(image, format="png", dpi=100, bbox_inches="tight")
        pyplot.close(figure)
        storage.write_bytes(self.file(LOSS_PLOT), image.getvalue())
        return self.file(LOSS_PLOT)

    def load(self) -> "TrainedModel":
        """Everything checked, and a `ModelDirError` naming the file that is missing or corrupt;
        a vocabulary that does not fit the network is refused too."""
        settings, vocabulary, network = self.settings(), self.vocabulary(), self.load_network()
        shape = network.output_shape
        outputs = (shape[0] if isinstance(shape, list) else shape)[-1]  # the token head's
        if outputs != len(vocabulary):
            raise ModelDirError(f"{self.file(VOCAB_FILE)} has {len(vocabulary)} tokens but {self.file(MODEL_FILE)} "
                                f"predicts {outputs}: they come from different runs")
        expression = self.expression()
        if settings.model.expressive and expression is None:
            raise ModelDirError(f"{self.file(VOCAB_FILE)} has no expression classes, which the "
                                f"{settings.model.name} model needs")
        return TrainedModel(network=network, settings=settings, corpus=self.corpus(settings), vocabulary=vocabulary,
                            expression=expression if settings.model.expressive else None, voicings=self.voicings())


@dataclass(frozen=True)
class TrainedModel:
    """What a model directory holds for generation and evaluation: the network, the run's
    settings, its vocabulary and class values, how its corpus voices chords, and its corpus."""

    network: object
    settings: RunSettings
    corpus: Corpus  # the model directory's copy (`ModelDir.corpus`)
    vocabulary: Vocabulary
    expression: Expression | None  # an expressive model's class values
    voicings: Voicings = field(default_factory=Voicings)

    @property
    def config(self) -> ModelConfig:
        return self.settings.model

    @property
    def held_out(self) -> tuple[str, ...]:
        return self.settings.held_out

    def tokens(self) -> TokenStream:
        """The corpus's tokens, read once per loaded model."""
        return self._tokens

    @cached_property
    def _time_signatures(self) -> dict[str, list[tuple[float, str]]]:
        return {piece: [(change["offset"], change["signature"]) for change in changes or []]
                for piece, changes in piece_values(self.corpus, "time_signatures").items()}

    def time_signatures(self) -> dict[str, list[tuple[float, str]]]:
        """Each corpus piece's time signatures (offset, "3/4"), read once per loaded model."""
        return self._time_signatures

    @cached_property
    def _density_levels(self) -> dict[str, float]:
        return density_levels(onsets for piece, onsets in piece_onsets(self.corpus).items()
                              if piece not in self.held_out)

    @cached_property
    def token_index(self) -> TokenIndex:
        """Where each token occurs in the corpus (`originality.TokenIndex`), built once per loaded model."""
        return TokenIndex.of(self.tokens().ids)

    @cached_property
    def training_tokens(self) -> np.ndarray:
        """Whether each token of the corpus lies in a training piece (not a held-out one)."""
        stream, held_out = self.tokens(), set(self.held_out)
        return np.repeat([piece not in held_out for piece in stream.piece_ids], np.diff(stream.bounds))

    @cached_property
    def mode_shares(self) -> np.ndarray:
        """The training pieces' shares of pitch classes in each mode (`sampling.mode_shares`),
        counted once per loaded model."""
        stream, training = self.tokens(), self.training_tokens
        return mode_shares(stream.ids[training], stream.key[training], pitch_classes(tuple(self.vocabulary.tokens)))

    @cached_property
    def _repeat_caps(self) -> dict[float, int]:
        return {}

    def repeat_cap(self, quantile: float) -> int:
        """How often one token may be drawn in `sampling.REPEAT_WINDOW` tokens, by the training
        pieces' windows (`sampling.repeat_cap`), counted once per loaded model and quantile."""
        if quantile not in self._repeat_caps:
            stream = self.tokens()
            training = stream.rows(set(stream.piece_ids) - set(self.held_out))
            self._repeat_caps[quantile] = repeat_cap([stream.piece(i) for i in training], quantile)
        return self._repeat_caps[quantile]

    def density_levels(self) -> dict[str, float]:
        """The training pieces' onsets per quarter named low, medium and high, read once per loaded model."""
        return self._density_levels

    @cached_property
    def _tokens(self) -> TokenStream:
        try:
            return read_token_stream(self.corpus, self.vocabulary, self.expression, bass=self.config.bass,
                                     styles=self.config.styles,
                                     key=self.config.key, metre=self.config.metre)
        except FileNotFoundError:
            raise ModelDirError(f"the corpus this model was trained on, {self.corpus.notes}, is not there: it is "
                                f"needed for a training window to start from and for the copy report") from None
