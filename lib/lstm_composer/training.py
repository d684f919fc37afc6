"""Data-parallel training with Horovod on Spark.

The driver reads the vocabulary and each piece's token count from the notes table, holds
out a seeded share of the pieces for validation, cuts the pieces into one range per rank
(`tables.plan_shards`), and writes `config.json` and `vocab.json`; `horovod.spark.run` then
starts one rank per Spark task. Each rank reads only its range of the notes table with
pyarrow, streams its windows, and trains with Horovod's `DistributedOptimizer`; rank 0 alone
touches the model directory (any location `storage` knows): a checkpoint (weights and
optimizer state) after every epoch, `model.keras` whenever the validation loss improves,
`history.csv`, TensorBoard logs and `loss.png`. A run that was killed continues from its last
checkpoint with `resume`: rank 0 restores it and broadcasts the state to the other ranks.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, replace

from lstm_composer import model_dir as run_files
from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.hardware import training_precision
from lstm_composer.model_dir import ModelDirError
from lstm_composer.presets import ModelConfig
from lstm_composer.progress import ConsoleRelay, RelayAddress, progress_printer, send_output_to_driver
from lstm_composer.tables import Corpus
from lstm_composer.tokens import Vocabulary

CALIBRATION_CHUNK = 256  # windows per network call when BatchNorm statistics are re-estimated
AVERAGE_PART = "weight_average"  # the weight average's part of a checkpoint


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


def _settings(config: TrainConfig, held_out: tuple[str, ...]) -> dict:
    return {"model": config.model.to_dict(), "corpus_path": config.corpus_path, "epochs": config.epochs,
            "num_proc": config.num_proc, "seed": config.seed, "val_fraction": config.val_fraction,
            "validation_pieces": list(held_out)}


def prepare_run(config: TrainConfig) -> tuple[Vocabulary, tuple[str, ...], int, dict[str, int]]:
    """Write config.json, vocab.json and voicings.json for a new run, or check them for a
    resumed one (on the driver, through `storage`). Returns the vocabulary (with every
    transposition the training may make), the held-out pieces, the first epoch to train and
    each piece's token count."""
    from lstm_composer.tables import hold_out, notes_summary, notes_voicings
    from lstm_composer.tokens import with_transpositions

    directory = config.model_dir
    config_file = run_files.file(directory, run_files.CONFIG_FILE)
    if config.resume:
        saved = run_files.read_json(config_file)
        if saved["model"] != json.loads(json.dumps(config.model.to_dict())):  # tuples as JSON lists
            raise ModelDirError(f"{config_file} was written for preset "
                                f"{saved['model']['name']!r} with other settings: resume with the same preset")
        vocabulary = run_files.read_vocabulary(directory)
        last = run_files.read_checkpoint(directory, "last")
        first_epoch = last.epoch + 1 if last else 0
        run_files.trim_history(directory, first_epoch)
        settings = {**saved, "epochs": config.epochs}
        run_files.write_atomic(config_file, json.dumps(settings, indent=1))
        return vocabulary, tuple(saved["validation_pieces"]), first_epoch, notes_summary(config.corpus)[1]
    if run_files.read_checkpoint(directory, "last") is not None:
        raise ModelDirError(f"{directory} already holds a training run: pass --resume to continue it, "
                            f"or choose another --model-dir")
    corpus_tokens, counts = notes_summary(config.corpus)
    vocabulary = Vocabulary(with_transpositions(corpus_tokens.tokens, config.model.transpose))
    held_out = hold_out(sorted(counts), config.val_fraction, config.seed)
    run_files.write_atomic(config_file, json.dumps(_settings(config, held_out), indent=1))
    expression = Expression.for_rhythm(config.model.rhythm) if config.model.expressive else None
    run_files.write_atomic(run_files.file(directory, run_files.VOCAB_FILE),
                           run_files.vocabulary_json(vocabulary, expression))
    run_files.write_atomic(run_files.file(directory, run_files.VOICINGS_FILE),
                           notes_voicings(config.corpus).to_json())
    return vocabulary, held_out, 0, counts


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
    last = run_files.read_checkpoint(config.model_dir, "last")
    saved = (f"epochs 1 to {last.epoch + 1} are saved in {config.model_dir}" if last
             else f"no epoch finished, nothing is saved in {config.model_dir}")
    return f"{cause}; {saved}"


def train(spark, config: TrainConfig) -> TrainSummary:
    """Train on `config.num_proc` Horovod ranks, from scratch or from the last checkpoint."""
    import horovod.spark

    from lstm_composer.tables import plan_shards

    # Each rank is one Spark task and owns the task's cores.
    threads = config.threads_per_rank or int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    config = replace(config, corpus_path=storage.absolute(config.corpus_path),
                     model_dir=storage.absolute(config.model_dir), threads_per_rank=threads)
    check_task_slots(spark, config)
    vocabulary, held_out, first_epoch, counts = prepare_run(config)
    # A dense model learns from any piece of two tokens or more; the paper's from pieces longer than a window.
    shortest = 1 if config.model.dense_targets else config.model.sequence_length
    shards = plan_shards(counts, held_out, config.num_proc, shortest)
    local = spark.sparkContext.master.startswith("local")
    driver_host = "127.0.0.1" if local else spark.sparkContext.getConf().get("spark.driver.host")
    relay = ConsoleRelay(driver_host)  # the ranks' lines, on this console as they print them
    try:
        results = horovod.spark.run(
            train_rank,
            args=(config, vocabulary.tokens, shards, first_epoch,
                  run_files.read_expression(config.model_dir), relay.address),
            num_proc=config.num_proc,
            use_gloo=True,
            nics=["lo"] if local else None,
            # A 10 ms cycle instead of 1 ms: Horovod's background thread then costs a one-core rank
            # almost nothing, and an LSTM step takes far longer than the wait.
            env={"HOROVOD_CYCLE_TIME": "10", **os.environ, "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": "300",
                 "PYTHONUNBUFFERED": "1"},
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    except Exception as error:  # a rank or its executor died: Horovod stops the others
        raise TrainingStopped(stopped_message(error, config)) from error
    finally:
        relay.close()
    results = sorted(results, key=lambda r: r["rank"])
    rank0 = results[0]
    return TrainSummary(model_dir=config.model_dir, epochs=rank0["epochs"], ranks=len(results),
                        best_val_loss=rank0["best_val_loss"], vocab_size=len(vocabulary),
                        train_windows=rank0["train_windows"], val_windows=rank0["val_windows"],
                        rank_token_bytes=tuple(r["token_bytes"] for r in results),
                        rank_peak_rss=tuple(r["peak_rss"] for r in results))


def read_shard(config: TrainConfig, vocabulary: Vocabulary, shards, rank: int, size: int,
               expression: Expression | None):
    """This rank's token streams and window starts: (train stream, train starts, validation
    stream, validation starts, bytes of token data)."""
    import pyarrow as pa

    from lstm_composer.dataset import rank_window_starts
    from lstm_composer.tables import Shard, read_token_stream

    length, dense, bass = config.model.sequence_length, config.model.dense_targets, config.model.bass

    def windows(of, pieces):  # the paper's window starts, or a dense model's rows
        return rank_window_starts(of, length, pieces, 0, 1, dense)

    stream = read_token_stream(config.corpus, vocabulary, expression, shards.shard(rank), bass=bass)
    held_out = set(shards.held_out)
    train_starts = windows(stream, set(stream.piece_ids) - held_out)
    val_stream = stream
    if shards.held_out_by_range:
        val_starts = windows(stream, held_out)
    elif held_out:
        val_stream = read_token_stream(config.corpus, vocabulary, expression, Shard(only=shards.held_out),
                                       bass=bass)
        val_starts = windows(val_stream, held_out)
        # every size-th window each; fewer windows than ranks: every rank all of them (the average holds)
        val_starts = val_starts[rank::size] if len(val_starts) >= size else val_starts
    else:
        val_starts = windows(stream, held_out)
    token_bytes = pa.default_memory_pool().max_memory() + stream.nbytes + (
        val_stream.nbytes if val_stream is not stream else 0)
    return stream, train_starts, val_stream, val_starts, token_bytes


def rank_datasets(model_config: ModelConfig, vocabulary: Vocabulary, training: tuple, validation: tuple,
                  fewest_validation: int, seed: int, val_steps: int | None = None) -> tuple[object, dict]:
    """A rank's training batches and Keras's validation arguments, from its (stream, window
    starts) of each kind. Training windows are shuffled and, where the preset says so,
    transposed; validation windows never are, and every rank evaluates the same number of
    batches, those that the rank with the fewest validation windows (`fewest_validation`) has."""
    from lstm_composer.dataset import make_dataset, transposition_table

    transpositions = (transposition_table(vocabulary, model_config.transpose)
                      if model_config.transpose != (0, 0) else None)
    dataset = make_dataset(*training, model_config, len(vocabulary), seed=seed, transpositions=transpositions)
    if not fewest_validation:
        return dataset, {}
    val_batch = min(model_config.batch_size, fewest_validation)
    return dataset, {
        "validation_data": make_dataset(*validation, model_config, len(vocabulary), seed=0, shuffle=False,
                                        batch_size=val_batch),
        "validation_steps": min(fewest_validation // val_batch, val_steps or sys.maxsize),
    }


def train_rank(config: TrainConfig, vocab_tokens: list[str], shards, first_epoch: int,
               expression: Expression | None, relay: RelayAddress | None = None) -> dict:
    """What each Horovod rank runs, on an executor. Returns a small summary to the driver."""
    import resource

    import tensorflow as tf
    import horovod.tensorflow.keras as hvd

    from lstm_composer.dataset import make_dataset
    from lstm_composer.model import build_model

    hvd.init()
    send_output_to_driver(relay, hvd.rank())
    # Spark sets OMP_NUM_THREADS for the task; TensorFlow's own pools are set here.
    tf.config.threading.set_intra_op_parallelism_threads(config.threads_per_rank)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(config.seed + 1000 * first_epoch + hvd.rank())
    tf.get_logger().setLevel("ERROR")  # not Keras's "callback is slow" for Horovod's first-batch broadcast
    precision = training_precision(config.model.precision)  # "auto": for this rank's machine
    config = replace(config, model=replace(config.model, precision=precision.policy))

    model_config = config.model
    rank, size, batch = hvd.rank(), hvd.size(), model_config.batch_size
    vocabulary = Vocabulary(vocab_tokens)
    stream, train_starts, val_stream, val_starts, token_bytes = read_shard(
        config, vocabulary, shards, rank, size, expression)
    # Every rank takes as many batches as the rank with the fewest windows has.
    windows = hvd.allgather(tf.constant([[len(train_starts), len(val_starts)]], tf.int64)).numpy()
    steps = min(int(windows[:, 0].min()) // batch, config.steps_per_epoch or sys.maxsize)
    if steps == 0:
        raise ValueError(
            f"the ranks' shards give {windows[:, 0].tolist()} training windows of {model_config.sequence_length} "
            f"tokens, and every rank needs batch_size {batch}: add MIDI files, lower --num-proc or choose a "
            f"smaller preset")
    dataset, fit_validation = rank_datasets(model_config, vocabulary, (stream, train_starts), (val_stream, val_starts),
                                            int(windows[:, 1].min()), config.seed + rank, config.val_steps)

    sizes = expression.sizes() if expression else None
    model = build_model(model_config, len(vocabulary), for_training=True, expression_sizes=sizes)
    optimizer = hvd.DistributedOptimizer(make_optimizer(model_config, ranks=size))
    compile_network(model, model_config, optimizer)
    averager = weight_average(model_config.weight_average, model) if model_config.weight_average else None
    state = training_state(model, optimizer, averager)
    # Rank 0 alone touches the model directory, through a local workspace (a scratch folder
    # when the directory is remote) for what Keras and TensorBoard write.
    workspace = storage.Workspace(config.model_dir) if rank == 0 else None
    try:
        best_val_loss = float("inf")
        if first_epoch:
            best_val_loss = restore(state, optimizer, model, workspace, averager.variables if averager else ())

        callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
        if averager:  # before the BatchNorm refresh, which must see the averaged weights
            callbacks.append(averager)
        if model_config.batch_norm:  # before validation and before the saver exports the network
            calibration = make_dataset(stream, train_starts, model_config, len(vocabulary), seed=config.seed + 7 + rank)
            callbacks.append(batch_norm_refresh(calibration, calibration_batches(model_config, size), hvd))
        saver = None
        if rank == 0:
            saver = epoch_saver(config.model_dir, state, model_config, len(vocabulary), best_val_loss,
                                sequences_per_epoch=steps * batch * size, expression_sizes=sizes,
                                workspace=workspace)
            callbacks += [tf.keras.callbacks.TensorBoard(workspace.path(run_files.LOGS_DIR), profile_batch=0),
                          saver]  # the saver uploads what TensorBoard wrote for the epoch
        if config.max_minutes:
            callbacks.append(time_budget(config.max_minutes, hvd))
        if config.patience:  # every rank sees the same averaged validation loss, so all stop together
            callbacks.append(tf.keras.callbacks.EarlyStopping(
                monitor="val_loss" if fit_validation else "loss", patience=config.patience))
        if rank == 0:
            callbacks.append(progress_printer(config.epochs, steps, batch * size, str(precision),
                                              config.progress_seconds))
        epochs_trained = 0
        if first_epoch < config.epochs:
            history = model.fit(dataset, steps_per_epoch=steps, epochs=config.epochs, initial_epoch=first_epoch,
                                verbose=2 if rank == 0 else 0, callbacks=callbacks, **fit_validation)
            epochs_trained = len(history.history["loss"])
        if rank == 0:
            workspace.sync(run_files.LOGS_DIR)
            run_files.plot_history(config.model_dir)
    finally:
        if workspace:
            workspace.close()
    return {"rank": rank, "epochs": epochs_trained,
            "best_val_loss": saver.best_val_loss if saver else best_val_loss,
            "train_windows": int(windows[:, 0].sum()), "val_windows": int(windows[:, 1].sum()),
            "token_bytes": int(token_bytes), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def make_optimizer(model_config: ModelConfig, ranks: int):
    """The preset's optimizer, its learning rate scaled by the number of ranks (Horovod's rule:
    the gradient averaged over `ranks` batches is as noisy as one batch `ranks` times larger)."""
    import tensorflow as tf

    rate = model_config.learning_rate * ranks
    if model_config.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=rate, clipnorm=1.0)
    return tf.keras.optimizers.RMSprop(learning_rate=rate)


def compile_network(model, model_config: ModelConfig, optimizer) -> None:
    """One cross-entropy per head, weighted; accuracy of the token head."""
    from lstm_composer.model import loss_name

    if model_config.expressive:
        weights = model_config.head_weights
        model.compile(loss={head: loss_name(model_config) for head in weights}, loss_weights=weights,
                      optimizer=optimizer, metrics={"next_token": ["accuracy"]})
    else:
        model.compile(loss=loss_name(model_config), optimizer=optimizer, metrics=["accuracy"])


def calibration_batches(model_config: ModelConfig, ranks: int) -> int:
    """Batches per rank for re-estimating BatchNorm statistics: about 2,048 windows of the
    paper's kind, or 64 dense windows (each gives a statistic per position), over all ranks."""
    wanted = 64 if model_config.dense_targets else 2048
    return max(1, -(-wanted // (ranks * model_config.batch_size)))


def batch_norm_refresh(dataset, batches: int, hvd):
    """Re-estimates every BatchNorm layer's moving mean and variance after each epoch's training
    batches, before validation (or at the epoch's end without one), from `batches` batches of
    training windows per rank, with the network in inference mode, averaged over the ranks.

    The moving averages that Keras keeps during training do not describe the network as it is
    at the end of the epoch (docs/results.md): with them, inference-mode losses were several
    times the training-mode ones. Layer by layer, each BatchNorm gets the exact mean and
    variance of what reaches it in inference mode, the earlier ones already corrected.
    """
    import tensorflow as tf

    class BatchNormRefresh(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.done = False

        def on_test_begin(self, logs=None):
            if not getattr(self, "done", True):
                self.refresh()

        def on_epoch_end(self, epoch, logs=None):
            if not self.done:
                self.refresh()

        def refresh(self):
            self.done = True
            norms = [layer for layer in self.model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
            # a few calls of CALIBRATION_CHUNK windows, not one per batch: with a test's batches
            # of 2 to 4 windows, hundreds of calls took most of each epoch
            calibration = dataset.take(batches).unbatch().batch(CALIBRATION_CHUNK)
            reached, start = [features for features, *_ in calibration], self.model.inputs
            for layer in norms:  # each probe runs from the previous BatchNorm's input to this one's
                probe = tf.keras.Model(start, layer.input)
                reached, start = [probe(values, training=False) for values in reached], layer.input
                rows = [tf.reshape(tf.cast(values, tf.float32), (-1, values.shape[-1])) for values in reached]
                count = hvd.allreduce(float(sum(int(r.shape[0]) for r in rows)), op=hvd.Sum, name=f"{layer.name}_n")
                # Two passes, the mean first: the variances here can be a millionth of the mean squared.
                mean = hvd.allreduce(tf.add_n([tf.reduce_sum(r, 0) for r in rows]), op=hvd.Sum,
                                     name=f"{layer.name}_sum") / count
                spread = hvd.allreduce(tf.add_n([tf.reduce_sum(tf.square(r - mean), 0) for r in rows]),
                                       op=hvd.Sum, name=f"{layer.name}_squares")
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(spread / count)

    return BatchNormRefresh()


def weight_average(decay: float, model):
    """Validates and saves an exponential moving average of `model`'s weights over the training
    steps (decay per step), not the last step's weights, which the noise of small batches moves
    about; training goes on from its own weights. Every rank keeps the same average: it starts
    after the first step, once Horovod has broadcast rank 0's weights. The callback's
    `checkpoint` holds the average and the trained weights (the model holds the average when
    an epoch's checkpoint is written), so that a resumed run trains on from the trained
    weights and goes on averaging, as if it had not stopped; `variables` are what a resumed
    rank 0 broadcasts to the others."""
    import tensorflow as tf

    weights = model.trainable_weights

    class WeightAverage(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.average = [tf.Variable(w, trainable=False) for w in weights]
            self.trained = [tf.Variable(w, trainable=False) for w in weights]
            self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)  # averaged so far
            self.swapped = tf.Variable(False, trainable=False)  # the model holds the average
            self.checkpoint = tf.train.Checkpoint(average=self.average, trained=self.trained, steps=self.steps,
                                                  swapped=self.swapped)
            self.variables = self.average + self.trained + [self.steps, self.swapped]
            self.update = tf.function(self._update)

        def _update(self):
            first = tf.cast(self.steps == 0, tf.float32)  # the first step's weights start the average
            for mean, w in zip(self.average, weights):
                mean.assign(first * w + (1.0 - first) * (decay * mean + (1.0 - decay) * w))
            self.steps.assign_add(1)

        def on_train_batch_end(self, batch, logs=None):
            self.update()

        def on_test_begin(self, logs=None):
            if self.steps > 0 and not self.swapped:
                for kept, w, mean in zip(self.trained, weights, self.average):
                    kept.assign(w)
                    w.assign(mean)
                self.swapped.assign(True)

        def on_epoch_begin(self, epoch, logs=None):
            if self.swapped:
                for w, kept in zip(weights, self.trained):
                    w.assign(kept)
                self.swapped.assign(False)

    return WeightAverage()


def time_budget(minutes: float, hvd):
    """Stops every rank after the epoch in which rank 0 has trained `minutes`: rank 0's clock
    decides, so all ranks stop at the same epoch."""
    import tensorflow as tf

    class TimeBudget(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            spent = float(time.perf_counter() - self.started > 60 * minutes)
            if hvd.broadcast(tf.constant(spent), root_rank=0, name="time_budget").numpy() > 0:
                self.model.stop_training = True

    return TimeBudget()


def training_state(model, optimizer, averager=None):
    """What a checkpoint holds: the network, the optimizer and, with a `weight_average`
    callback, its average and the trained weights."""
    import tensorflow as tf

    return tf.train.Checkpoint(model=model, optimizer=optimizer,
                               **({AVERAGE_PART: averager.checkpoint} if averager else {}))


def restore(state, optimizer, model, workspace: storage.Workspace | None, carried=()) -> float:
    """Resume: the rank given the model directory's `workspace` (rank 0) loads the last
    checkpoint into `state`, and every rank then receives its weights, optimizer state and the
    `carried` variables (the rest of `state`) by Horovod's broadcast, so no other rank reads
    the model directory. A checkpoint written before the weight average was kept in it is
    restored without it: the average starts again from the restored weights. Returns the best
    validation loss so far (infinity on the other ranks); every rank must call it."""
    import tensorflow as tf
    from horovod.tensorflow import broadcast_variables

    optimizer.build(model.trainable_variables)  # so its slots exist to be restored into
    best_val_loss = float("inf")
    if workspace is not None:
        last = run_files.read_checkpoint(workspace.uri, "last")
        try:
            prefix = last.local_prefix(workspace)
            if AVERAGE_PART not in {name.split("/")[0] for name, _ in tf.train.list_variables(prefix)}:
                state = training_state(model, optimizer)
            state.read(prefix).assert_existing_objects_matched()
        except Exception as error:
            raise ModelDirError(f"{last.prefix}.* cannot be restored into this network "
                                f"({type(error).__name__}: {str(error)[:200]})") from None
        best = run_files.read_checkpoint(workspace.uri, "best")
        best_val_loss = float(best.metrics.get("monitored", float("inf"))) if best else float("inf")
    broadcast_variables(model.variables + optimizer.variables() + list(carried), root_rank=0)
    return best_val_loss


def epoch_saver(directory: str, state, model_config: ModelConfig, vocab_size: int, best_val_loss: float,
                sequences_per_epoch: int, expression_sizes: tuple[int, int, int, int] | None = None,
                workspace: storage.Workspace | None = None):
    """Rank 0's Keras callback, after Horovod has averaged the epoch's metrics over ranks:
    adds throughput to the logs, writes the history row, then the checkpoint (a crash between
    the two trains that epoch again, and its row is replaced) and, when the validation loss (the training loss without
    a validation set) is the lowest yet, `model.keras`; then uploads what changed in the
    `workspace` (TensorBoard's logs) when the model directory is remote."""
    import tensorflow as tf

    directory = str(directory)
    workspace = workspace or storage.Workspace(directory)

    class EpochSaver(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_val_loss = best_val_loss
            self.started = self.trained = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.trained = time.perf_counter(), None

        def on_test_begin(self, logs=None):  # training batches are done; validation starts
            self.trained = self.trained or time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            now = time.perf_counter()
            logs["seconds"] = now - self.started
            logs["sequences_per_second"] = sequences_per_epoch / ((self.trained or now) - self.started)
            if "val_loss" in logs:  # the token head's alone: comparable across presets
                logs["val_token_loss"] = logs.get("val_next_token_loss", logs["val_loss"])
            for key in ("accuracy", "val_accuracy"):  # an expressive model's: its token head's
                if key not in logs and key.replace("accuracy", "next_token_accuracy") in logs:
                    logs[key] = logs[key.replace("accuracy", "next_token_accuracy")]
            monitored = float(logs.get("val_loss", logs.get("loss", float("inf"))))
            improved = monitored < self.best_val_loss
            if improved:
                self.best_val_loss = monitored
                export_network(self.model, run_files.file(directory, run_files.MODEL_FILE), model_config,
                               vocab_size, expression_sizes)
            metrics = {key: float(value) for key, value in logs.items()}
            run_files.append_history(directory, epoch, metrics)
            run_files.save_checkpoint(workspace, state, epoch, {**metrics, "monitored": monitored}, improved)
            workspace.sync(run_files.LOGS_DIR)

    return EpochSaver()


def export_network(model, path: str, model_config: ModelConfig, vocab_size: int,
                   expression_sizes: tuple[int, int, int, int] | None = None) -> None:
    """A plain, uncompiled copy of the network (no Horovod optimizer inside), written to `path`
    (any location) atomically."""
    from lstm_composer.model import build_model

    plain = build_model(model_config, vocab_size, expression_sizes=expression_sizes)
    plain.set_weights(model.get_weights())
    run_files.save_network(plain, path)
