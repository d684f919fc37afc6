"""Data-parallel training with Horovod on Spark: the driver's side.

The driver reads the vocabulary and each piece's token count from the notes table, holds
out a seeded share of the pieces, cuts the pieces into one range per rank
(`tables.plan_shards`), and writes `config.json`, `vocab.json` and `voicings.json`
(`prepare_run`); it checks that the cluster has a task slot for every rank, then
`horovod.spark.run` starts one rank per Spark task, each running `rank.train_rank` on a
`RankTask` of plain values. A run that was killed continues from its last checkpoint with
`resume`. When a rank fails, `stopped_message` says which and what is saved.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import NamedTuple

from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.model_dir import CONFIG_FILE, ModelDir, ModelDirError, RunSettings
from lstm_composer.presets import ModelConfig
from lstm_composer.progress import ConsoleRelay
from lstm_composer.rank import RankTask, train_rank
from lstm_composer.shards import hold_out, plan_shards
from lstm_composer.tables import Corpus, notes_summary, notes_voicings
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
    threads_per_rank: int | None = None  # TensorFlow threads per rank; default: spark.task.cpus
    steps_per_epoch: int | None = None  # at most this many batches per rank and epoch
    val_steps: int | None = None  # at most this many validation batches per rank (the same ones each epoch)
    max_minutes: float | None = None  # stop after the epoch in which this much time has passed
    patience: int | None = None  # stop after this many epochs without a lower validation loss
    slot_wait: float = 60.0  # seconds to wait for executors to offer `num_proc` task slots
    progress_seconds: float = 30.0  # rank 0 prints a progress line at least this often during an epoch

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be at least 1, got {self.num_proc}")
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


class PreparedRun(NamedTuple):
    """What the driver read or wrote before starting the ranks."""

    vocabulary: Vocabulary  # with every transposition the training may make
    expression: Expression | None  # an expressive model's class values
    held_out: tuple[str, ...]
    first_epoch: int
    counts: dict[str, int]  # each piece's tokens


def prepare_run(config: TrainConfig) -> PreparedRun:
    """Write config.json, vocab.json and voicings.json for a new run, or check them for a
    resumed one (on the driver, through `storage`)."""
    directory = ModelDir(config.model_dir)
    if config.resume:
        saved = directory.settings()
        if saved.model != config.model:
            raise ModelDirError(f"{directory.file(CONFIG_FILE)} was written for preset {saved.model.name!r} with "
                                f"other settings: resume with the same preset")
        last = directory.checkpoint("last")
        first_epoch = last.epoch + 1 if last else 0
        directory.trim_history(first_epoch)
        directory.write_settings(replace(saved, epochs=config.epochs))
        return PreparedRun(directory.vocabulary(), directory.expression(), saved.held_out, first_epoch,
                           notes_summary(config.corpus)[1])
    if directory.checkpoint("last") is not None:
        raise ModelDirError(f"{config.model_dir} already holds a training run: pass --resume to continue it, "
                            f"or choose another --model-dir")
    corpus_tokens, counts = notes_summary(config.corpus)
    vocabulary = Vocabulary(with_transpositions(corpus_tokens.tokens, config.model.transpose))
    held_out = hold_out(sorted(counts), config.val_fraction, config.seed)
    directory.write_settings(RunSettings(config.model, config.corpus_path, config.epochs, config.num_proc,
                                         config.seed, config.val_fraction, held_out))
    expression = Expression.for_rhythm(config.model.rhythm) if config.model.expressive else None
    directory.write_vocabulary(vocabulary, expression)
    directory.write_voicings(notes_voicings(config.corpus))
    return PreparedRun(vocabulary, expression, held_out, 0, counts)


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
    """Training ended early; the message names the cause and what is saved."""


def stopped_message(error: Exception, config: TrainConfig) -> str:
    """Which rank Horovod lost and what the model directory holds, from Horovod's error.

    Horovod names only the first rank it saw stop. A rank that loses a peer stops too, with an
    error of its own, and may be seen first: a rank that exited with a plain code may have
    stopped because another was lost, and the message says so."""
    lost = re.search(r"Process name: (\d+)\s+Exit code: (-?\d+)", str(error))
    if lost:
        code = int(lost[2])
        signal_number = -code if code < 0 else code - 128 if code > 128 else None  # a shell reports 128 + N
        how = f"was killed (signal {signal_number})" if signal_number else f"exited with code {code}"
        cause = f"Horovod rank {lost[1]} stopped first: its process {how}, and Horovod stopped the other ranks"
        if not signal_number:
            cause += " (a rank also stops when it loses another, which may be the one that failed: see its log)"
    else:
        cause = f"Horovod failed: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
    last = ModelDir(config.model_dir).checkpoint("last")
    saved = (f"epochs 1 to {last.epoch + 1} are saved in {config.model_dir}" if last
             else f"no epoch finished, nothing is saved in {config.model_dir}")
    return f"{cause}; {saved}"


def train(spark, config: TrainConfig) -> TrainSummary:
    """Train on `config.num_proc` Horovod ranks, from scratch or from the last checkpoint."""
    import horovod.spark

    # Each rank is one Spark task and owns the task's cores.
    threads = config.threads_per_rank or int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    config = replace(config, corpus_path=storage.absolute(config.corpus_path),
                     model_dir=storage.absolute(config.model_dir), threads_per_rank=threads)
    check_task_slots(spark, config)
    run = prepare_run(config)
    # A dense model learns from any piece of two tokens or more; the paper's from pieces longer than a window.
    shortest = 1 if config.model.dense_targets else config.model.sequence_length
    shards = plan_shards(run.counts, run.held_out, config.num_proc, shortest)
    local = spark.sparkContext.master.startswith("local")
    driver_host = "127.0.0.1" if local else spark.sparkContext.getConf().get("spark.driver.host")
    relay = ConsoleRelay(driver_host)  # the ranks' lines, on this console as they print them
    task = RankTask(config.model, config.corpus_path, config.model_dir, tuple(run.vocabulary.tokens), run.expression,
                    shards, run.first_epoch, config.epochs, config.seed, threads, config.steps_per_epoch,
                    config.val_steps, config.max_minutes, config.patience, config.progress_seconds, relay.address)
    try:
        results = horovod.spark.run(
            train_rank, args=(task,), num_proc=config.num_proc, use_gloo=True, nics=["lo"] if local else None,
            # A 10 ms cycle instead of 1 ms: Horovod's background thread then costs a one-core rank
            # almost nothing, and an LSTM step takes far longer than the wait.
            env={"HOROVOD_CYCLE_TIME": "10", **os.environ, "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": "300",
                 "PYTHONUNBUFFERED": "1"},
            stdout=sys.stdout, stderr=sys.stderr)
    except Exception as error:  # a rank or its executor died: Horovod stops the others
        raise TrainingStopped(stopped_message(error, config)) from error
    finally:
        relay.close()
    results = sorted(results, key=lambda r: r["rank"])
    rank0 = results[0]
    return TrainSummary(model_dir=config.model_dir, epochs=rank0["epochs"], ranks=len(results),
                        best_val_loss=rank0["best_val_loss"], vocab_size=len(run.vocabulary),
                        train_windows=rank0["train_windows"], val_windows=rank0["val_windows"],
                        rank_token_bytes=tuple(r["token_bytes"] for r in results),
                        rank_peak_rss=tuple(r["peak_rss"] for r in results))
