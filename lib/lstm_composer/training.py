"""Data-parallel training with Horovod on Spark: the driver's side.

The driver takes the model directory's lock (one writer at a time), checks that the cluster
has a task slot for every rank, reads the vocabulary and each piece's token count from the
notes table, holds out a seeded share of the pieces, cuts the pieces into one range per rank
(`shards.plan_shards`) and checks that each rank has a batch to train on; only then does it
write `config.json`, `vocab.json` and `voicings.json` (`prepare_run`). A directory that holds
a run is trained over only with `resume` or `overwrite`. `horovod.spark.run` starts one rank
per Spark task, each running `rank.train_rank` on a `RankTask` of plain values. A run that was
killed continues from its last checkpoint with `resume`. When a rank fails, `stopped_message`
says which, what is saved, and on its last line the rank's own reason with advice that fits.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import NamedTuple

from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.model_dir import CONFIG_FILE, MODEL_FILE, ModelDir, ModelDirError, RunSettings
from lstm_composer.presets import ModelConfig
from lstm_composer.locks import Lock
from lstm_composer.progress import ConsoleRelay, Failure, first_line
from lstm_composer.rank import RankTask, train_rank
from lstm_composer.shards import ShardPlan, hold_out, plan_shards
from lstm_composer.styles import StyleSource, read_labels
from lstm_composer.tables import Corpus, label_notes, notes_summary, notes_voicings, piece_values
from lstm_composer.tokens import Vocabulary, with_transpositions


@dataclass(frozen=True)
class TrainConfig:
    corpus_path: str
    model_dir: str
    model: ModelConfig
    epochs: int
    num_proc: int
    seed: int = 0
    val_fraction: float = 0.1
    resume: bool = False
    resume_from: str = "last"  # the checkpoint a resumed run goes on from: "last", or "best" when last is damaged
    overwrite: bool = False  # a new run may replace whatever run the model directory holds
    # A resumed run trains on from the corpus at `corpus_path` as it is now (grown by a re-parse),
    # not from the copy it began with; pieces with tokens the model does not know are left out.
    update_corpus: bool = False
    lock_wait: float = 0.0  # seconds to wait for another job writing the model directory
    threads_per_rank: int | None = None  # TensorFlow threads per rank; default: spark.task.cpus
    steps_per_epoch: int | None = None  # at most this many batches per rank and epoch
    val_steps: int | None = None  # at most this many validation batches per rank (the same ones each epoch)
    max_minutes: float | None = None  # stop after the epoch in which this much time has passed
    patience: int | None = None  # stop after this many epochs without a lower validation loss
    slot_wait: float = 60.0  # seconds to wait for executors to offer `num_proc` task slots
    progress_seconds: float = 30.0  # rank 0 prints a progress line at least this often during an epoch
    style_from: StyleSource | None = None  # where each piece's style label comes from (`styles.py`); None: no labels

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be at least 1, got {self.num_proc}")
        if self.resume_from not in ("last", "best"):
            raise ValueError(f"resume_from must be 'last' or 'best', got {self.resume_from!r}")
        if self.update_corpus and not self.resume:
            raise ValueError("--update-corpus goes with --resume: a new run reads the corpus as it is anyway")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in the model directory and --overwrite replaces it: "
                             "choose one")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.threads_per_rank is not None and self.threads_per_rank < 1:
            raise ValueError(f"threads_per_rank must be at least 1, got {self.threads_per_rank}")
        for label, value in (("steps_per_epoch", self.steps_per_epoch), ("val_steps", self.val_steps),
                             ("max_minutes", self.max_minutes), ("slot_wait", self.slot_wait),
                             ("patience", self.patience), ("progress_seconds", self.progress_seconds)):
            if value is not None and value <= 0:
                raise ValueError(f"{label} must be positive, got {value}")

    @property
    def corpus(self) -> Corpus:
        return Corpus(self.corpus_path)


@dataclass(frozen=True)
class TrainSummary:
    model_dir: str
    epochs: int  # trained in this call
    ranks: int  # Horovod ranks that reported back
    best_val_loss: float
    vocab_size: int
    train_windows: int
    val_windows: int
    rank_token_bytes: tuple[int, ...] = ()  # per rank: memory its token data took (Arrow's peak while reading + arrays)
    rank_peak_rss: tuple[int, ...] = ()  # per rank: the process's peak resident memory
    left_out: tuple[str, ...] = ()  # pieces of an updated corpus with tokens the model does not know


class PreparedRun(NamedTuple):
    """What the driver read or wrote before starting the ranks."""

    model: ModelConfig  # the preset's, with the style labels the corpus has
    vocabulary: Vocabulary  # with every transposition the training may make
    expression: Expression | None  # an expressive model's class values
    held_out: tuple[str, ...]
    first_epoch: int
    shards: ShardPlan
    corpus: Corpus  # what the ranks read: the model directory's copy
    left_out: tuple[str, ...] = ()  # pieces of an updated corpus with tokens the model does not know


def prepare_run(config: TrainConfig) -> PreparedRun:
    """Write config.json, vocab.json and voicings.json for a new run, or check them for a
    resumed one (on the driver, through `storage`). Everything is checked before anything
    is written: a run refused here leaves the model directory as it was."""
    directory = ModelDir(config.model_dir)
    if config.resume:
        return prepare_resume(config, directory)
    held = directory.run_files()
    if held and not config.overwrite:
        raise ModelDirError(f"{config.model_dir} already holds a training run ({', '.join(held)}): pass --resume to "
                            f"continue it, --overwrite to replace it, or choose another --model-dir")
    if not storage.exists(config.corpus.notes):
        raise ValueError(f"--corpus {config.corpus_path} holds no notes table: parse MIDI files into it first "
                         f"(jobs/parse.py --output {config.corpus_path})")
    corpus_tokens, counts = notes_summary(config.corpus)
    vocabulary = Vocabulary(with_transpositions(corpus_tokens.tokens, config.model.transpose))
    held_out = hold_out(sorted(counts), config.val_fraction, config.seed)
    shards = rank_shards(config, counts, held_out)
    expression = Expression.for_rhythm(config.model.rhythm) if config.model.expressive else None
    labels = read_labels(config.style_from, piece_values(config.corpus, "path")) if config.style_from else {}
    model = replace(config.model, styles=tuple(sorted(set(labels.values()))))
    directory.clear()
    try:
        directory.write_settings(RunSettings(model, config.corpus_path, config.epochs, config.num_proc,
                                             config.seed, config.val_fraction, held_out))
        directory.write_vocabulary(vocabulary, expression)
        directory.write_voicings(notes_voicings(config.corpus))
        corpus, _ = directory.keep_corpus(config.corpus)
        if labels:
            label_notes(corpus, labels)
    except OSError:  # a full disk, say: leave no part of a run behind
        directory.clear()
        raise
    return PreparedRun(model, vocabulary, expression, held_out, 0, shards, corpus)


def prepare_resume(config: TrainConfig, directory: ModelDir) -> PreparedRun:
    """A resumed run: its settings checked, from the `config.resume_from` checkpoint (which
    becomes `last`), the history trimmed to it, on the corpus the run began with."""
    saved = directory.settings()
    if replace(saved.model, styles=()) != config.model:
        raise ModelDirError(f"{directory.file(CONFIG_FILE)} was written for preset {saved.model.name!r} with "
                            f"other settings: resume with the same preset")
    start = directory.checkpoint(config.resume_from)
    if start is None and (config.resume_from == "best" or storage.exists(directory.file(MODEL_FILE))):
        raise ModelDirError(f"{config.model_dir} holds no {config.resume_from} checkpoint to resume from: train "
                            f"without --resume and with --overwrite to start again, or choose another --model-dir")
    vocabulary, left_out = directory.vocabulary(), []
    if config.update_corpus:  # the corpus as it is now, without pieces of tokens the model never saw
        if saved.model.styles and not config.style_from:
            raise ValueError("this model learnt style labels: --update-corpus needs --style-from again, to label "
                             "the pieces of the corpus as it is now")
        corpus, left_out = directory.keep_corpus(config.corpus, vocabulary)
        if saved.model.styles:  # a label the model never learnt counts as none
            label_notes(corpus, read_labels(config.style_from, piece_values(corpus, "path")))
    else:
        corpus = directory.corpus(saved)  # as the run found it, however the corpus has changed since
    shards = rank_shards(config, notes_summary(corpus)[1], saved.held_out)
    if config.resume_from == "best":
        directory.point_last_at("best")
    first_epoch = start.epoch + 1 if start else 0
    directory.trim_history(first_epoch)
    directory.write_settings(replace(saved, epochs=config.epochs))
    return PreparedRun(saved.model, vocabulary, directory.expression(), saved.held_out, first_epoch, shards, corpus,
                       tuple(left_out))


def rank_shards(config: TrainConfig, counts: dict[str, int], held_out: tuple[str, ...]) -> ShardPlan:
    """Each rank's pieces; refused when a rank would have no batch to train on."""
    model = config.model
    # A dense model learns from any piece of two tokens or more; the paper's from pieces longer than a window.
    shards = plan_shards(counts, held_out, config.num_proc, 1 if model.dense_targets else model.sequence_length)
    windows = shards.training_windows(counts, model.sequence_length, model.dense_targets)
    if min(windows) < model.batch_size:
        raise ValueError(
            f"the ranks' shards give {windows} training windows of {model.sequence_length} tokens, and every rank "
            f"needs batch_size {model.batch_size}: add MIDI files, lower --num-proc or choose a smaller preset")
    return shards


def task_slots(spark, needed: int, wait: float) -> int:
    """The tasks this application can run at once (executor cores / spark.task.cpus, over the
    executors registered so far), polled until `needed` are there or `wait` seconds passed:
    on a cluster, executors register one by one after the application starts."""
    context = spark.sparkContext._jsc.sc()
    profile = context.resourceProfileManager().defaultResourceProfile()
    deadline = time.monotonic() + wait
    while True:
        slots = context.maxNumConcurrentTasks(profile)
        if slots >= needed or time.monotonic() >= deadline:
            return slots
        time.sleep(0.5)


def check_task_slots(spark, config: TrainConfig) -> None:
    """Horovod starts its ranks as ordinary Spark tasks and waits for all of them: with fewer
    free slots than ranks it would wait 10 minutes and fail. Say so now instead."""
    slots = task_slots(spark, config.num_proc, config.slot_wait)
    if slots < config.num_proc:
        raise ValueError(
            f"--num-proc {config.num_proc} needs {config.num_proc} free task slots, one per Horovod rank, "
            f"but after {config.slot_wait:g} s the cluster offers {slots} (executor cores / spark.task.cpus "
            f"over the executors registered). Lower --num-proc, or start more executors or cores "
            f"(with dynamic allocation, set spark.dynamicAllocation.minExecutors to cover the ranks).")


class TrainingStopped(RuntimeError):
    """Training ended early. The message's last line is the failing rank's own exception
    message, where it told the driver, with advice that fits it."""


LOST_PEER = re.compile(r"(?i)horovod|gloo|connection (reset|closed)|broken pipe|peer")  # a rank stopped by another's loss


def stopped_message(error: Exception, config: TrainConfig, failures: list[Failure] = ()) -> str:
    """Which rank Horovod lost, what the model directory holds, and on the last line why the
    rank failed and what to do about it.

    Horovod names only the first rank it saw stop. A rank that loses a peer stops too, with an
    error of its own, and may be seen first; so the cause is the first failure line a rank sent
    (`rank.train_rank`) that is not about a lost peer, and without one the message says that the
    rank named may not be the one that failed."""
    causes = [f for f in failures if not LOST_PEER.search(f.message)]
    lost = re.search(r"Process name: (\d+)\s+Exit code: (-?\d+)", str(error))
    if lost:
        code = int(lost[2])
        signal_number = -code if code < 0 else code - 128 if code > 128 else None  # a shell reports 128 + N
        how = f"was killed (signal {signal_number})" if signal_number else f"exited with code {code}"
        stopped = f"Horovod rank {lost[1]} stopped first: its process {how}, and Horovod stopped the other ranks"
        if not signal_number and not causes:
            stopped += " (a rank also stops when it loses another, which may be the one that failed: see its log)"
    else:
        stopped = f"Horovod failed: {first_line(error)}"
    directory = ModelDir(config.model_dir)
    last = directory.checkpoint("last")
    saved = (f"epochs 1 to {last.epoch + 1} are saved in {config.model_dir}" if last
             else f"no epoch finished, nothing is saved in {config.model_dir}")
    if not failures:
        return f"{stopped}; {saved}.\n{advice('error', directory)}"
    cause = (causes or failures)[0]
    return f"{stopped}; {saved}.\nrank {cause.rank} failed: {cause.message.rstrip('.')}. {advice(cause.kind, directory)}"



def advice(kind: str, directory: ModelDir) -> str:
    """What to do after a failure of `kind` (`rank.failure_kind`)."""
    if kind == "setup":
        return "Resuming would fail the same way: mend the corpus or the model directory first."
    if kind == "checkpoint":
        best = directory.checkpoint("best")
        last = directory.checkpoint("last")
        if best and last and best.directory != last.directory:
            return (f"Go on from the best epoch ({best.epoch + 1}) instead, with the same command and --resume best, "
                    f"or start again with --overwrite.")
        return "No other checkpoint is kept: start again with --overwrite (model.keras is replaced)."
    if kind == "disk":
        return f"Free some space where {directory.uri} lies, then run the same command with --resume."
    return "Continue from the last saved epoch: run the same command with --resume."


def train(spark, config: TrainConfig) -> TrainSummary:
    """Train on `config.num_proc` Horovod ranks, from scratch or from the last checkpoint,
    holding the model directory's lock (`locks.Lock`) throughout."""
    # Each rank is one Spark task and owns the task's cores.
    threads = config.threads_per_rank or int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    config = replace(config, corpus_path=storage.absolute(config.corpus_path),
                     model_dir=storage.absolute(config.model_dir), threads_per_rank=threads)
    if storage.is_file(config.model_dir):
        raise ModelDirError(f"--model-dir {config.model_dir} is a file: give a folder (new, or a run's to resume)")
    with Lock(config.model_dir, "train", config.lock_wait):
        check_task_slots(spark, config)
        return train_ranks(spark, config, prepare_run(config))


@contextmanager
def unprinted_job_cancellation():
    """When a rank fails, Horovod cancels its Spark job, and its thread that waited on the job
    dies of the cancellation, which Python prints as an unhandled exception: some forty lines of
    Java stack on the console before the message that says what failed and what to do. That one
    exception is left unprinted while the ranks run (Horovod joins the thread before it returns
    or raises); any other goes to the hook there was."""
    previous = threading.excepthook

    def hook(args) -> None:
        if not (args.thread and "run_spark" in args.thread.name and "cancelled job group horovod.spark.run"
                in str(args.exc_value)):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def train_ranks(spark, config: TrainConfig, run: PreparedRun) -> TrainSummary:
    """Start the ranks through Horovod on Spark and wait for them."""
    import horovod.spark

    local = spark.sparkContext.master.startswith("local")
    driver_host = "127.0.0.1" if local else spark.sparkContext.getConf().get("spark.driver.host")
    relay = ConsoleRelay(driver_host)  # the ranks' lines, on this console as they print them
    task = RankTask(run.model, run.corpus.root, config.model_dir, tuple(run.vocabulary.tokens), run.expression,
                    run.shards, run.first_epoch, config.epochs, config.seed, config.threads_per_rank,
                    config.steps_per_epoch, config.val_steps, config.max_minutes, config.patience,
                    config.progress_seconds, relay.address)
    try:
        with unprinted_job_cancellation():
            results = horovod.spark.run(
                train_rank, args=(task,), num_proc=config.num_proc, use_gloo=True, nics=["lo"] if local else None,
                # A 10 ms cycle instead of 1 ms: Horovod's background thread then costs a one-core rank
                # almost nothing, and an LSTM step takes far longer than the wait.
                env={"HOROVOD_CYCLE_TIME": "10", **os.environ, "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": "300",
                     "PYTHONUNBUFFERED": "1"},
                stdout=sys.stdout, stderr=sys.stderr)
    except Exception as error:  # a rank or its executor died: Horovod stops the others
        relay.close()  # the failing rank's last lines in first
        raise TrainingStopped(stopped_message(error, config, relay.failures)) from error
    finally:
        relay.close()
    results = sorted(results, key=lambda r: r["rank"])
    rank0 = results[0]
    return TrainSummary(model_dir=config.model_dir, epochs=rank0["epochs"], ranks=len(results),
                        best_val_loss=rank0["best_val_loss"], vocab_size=len(run.vocabulary),
                        train_windows=rank0["train_windows"], val_windows=rank0["val_windows"],
                        rank_token_bytes=tuple(r["token_bytes"] for r in results),
                        rank_peak_rss=tuple(r["peak_rss"] for r in results), left_out=run.left_out)
