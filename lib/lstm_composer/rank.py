"""What each Horovod rank runs, on an executor: `train_rank(task)`.

The driver (`training.train`) decides everything first and hands each rank a `RankTask` of
plain values. A rank reads only its shard of the notes table with pyarrow (`RankWindows`),
streams its windows with tf.data, and trains with Horovod's `DistributedOptimizer`; rank 0
alone touches the model directory (through a local `storage.Workspace` when the directory is
remote): checkpoints, `model.keras`, history and TensorBoard logs (`callbacks.EpochSaver`). A
resumed run is restored on rank 0 and broadcast to the others (`restore`). TensorFlow and
Horovod are imported inside the functions, so the driver can import this module without them.
"""
from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, replace

import numpy as np

from lstm_composer import storage
from lstm_composer.expression import Expression
from lstm_composer.hardware import training_precision
from lstm_composer.model_dir import LOGS_DIR, ModelDir, ModelDirError
from lstm_composer.presets import ModelConfig
from lstm_composer.progress import RelayAddress, failure_line, first_line, send_output_to_driver
from lstm_composer.shards import ShardPlan
from lstm_composer.tables import Corpus, Shard, TokenStream, read_token_stream
from lstm_composer.tokens import Vocabulary

AVERAGE_PART = "weight_average"  # the weight average's part of a checkpoint


@dataclass(frozen=True)
class RankTask:
    """Everything a rank is told: plain values the driver read or decided."""

    model: ModelConfig
    corpus_path: str
    model_dir: str
    vocabulary: tuple[str, ...]  # with every transposition the training makes
    expression: Expression | None  # an expressive model's class values
    shards: ShardPlan
    first_epoch: int  # 0, or the epoch a resumed run goes on from
    epochs: int
    seed: int
    threads: int  # TensorFlow threads
    steps_per_epoch: int | None = None
    val_steps: int | None = None
    max_minutes: float | None = None
    patience: int | None = None
    progress_seconds: float = 30.0
    relay: RelayAddress | None = None  # where the rank's output goes (the driver's console)


@dataclass(frozen=True)
class RankWindows:
    """A rank's windows: the starts of its training windows in its shard's stream, and of its
    validation windows in theirs (its own shard's, or every held-out piece's)."""

    stream: TokenStream
    train_starts: np.ndarray
    validation_stream: TokenStream
    validation_starts: np.ndarray
    token_bytes: int  # the memory its token data took: Arrow's peak while reading, then the arrays

    @property
    def training(self) -> tuple[TokenStream, np.ndarray]:
        return self.stream, self.train_starts

    @property
    def validation(self) -> tuple[TokenStream, np.ndarray]:
        return self.validation_stream, self.validation_starts


def read_windows(task: RankTask, vocabulary: Vocabulary, rank: int, size: int) -> RankWindows:
    """Rank `rank` of `size`: its shard's training windows, and its share of the validation
    windows (those of its shard when the held-out pieces are sharded by range; otherwise every
    `size`-th window of all of them, or all when there are fewer than ranks)."""
    import pyarrow as pa

    from lstm_composer.dataset import rank_window_starts

    corpus, shards, expression = Corpus(task.corpus_path), task.shards, task.expression
    config = task.model

    def windows(of, pieces):  # the paper's window starts, or a dense model's rows
        return rank_window_starts(of, config.sequence_length, pieces, 0, 1, config.dense_targets)

    columns = {"bass": config.bass, "key": config.key, "metre": config.metre, "styles": config.styles}
    stream = read_token_stream(corpus, vocabulary, expression, shards.shard(rank), **columns)
    held_out = set(shards.held_out)
    train_starts = windows(stream, set(stream.piece_ids) - held_out)
    validation_stream = stream
    if shards.held_out_by_range:
        validation_starts = windows(stream, held_out)
    elif held_out:
        validation_stream = read_token_stream(corpus, vocabulary, expression, Shard(only=shards.held_out), **columns)
        validation_starts = windows(validation_stream, held_out)
        # every size-th window each; fewer windows than ranks: every rank all of them (the average holds)
        validation_starts = validation_starts[rank::size] if len(validation_starts) >= size else validation_starts
    else:
        validation_starts = windows(stream, held_out)
    token_bytes = pa.default_memory_pool().max_memory() + stream.nbytes + (
        validation_stream.nbytes if validation_stream is not stream else 0)
    return RankWindows(stream, train_starts, validation_stream, validation_starts, token_bytes)


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


class CheckpointDamaged(ModelDirError):
    """The checkpoint a resumed run starts from cannot be read into the network."""


def train_rank(task: RankTask) -> dict:
    """What each Horovod rank runs, on an executor. Returns a small summary to the driver; when
    the rank fails, its last line on the driver's console says why (`progress.failure_line`)."""
    try:
        return _train_rank(task)
    except BaseException as error:
        print(failure_line(os.environ.get("HOROVOD_RANK", "?"), failure_kind(error), error),
              file=sys.stderr, flush=True)
        raise


def failure_kind(error: BaseException) -> str:
    """What can help after `error`: see `training.advice`."""
    if isinstance(error, CheckpointDamaged):
        return "checkpoint"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or "No space left on device" in str(error):
        return "disk"  # TensorFlow's writers say it in their own errors
    if isinstance(error, ValueError):  # the corpus or the model directory cannot be used as they are
        return "setup"
    return "error"


def _train_rank(task: RankTask) -> dict:
    import resource

    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    precision = start_rank(task, hvd)
    model_config = replace(task.model, precision=precision.policy)
    rank, size, batch = hvd.rank(), hvd.size(), model_config.batch_size
    vocabulary = Vocabulary(task.vocabulary)
    windows = read_windows(task, vocabulary, rank, size)
    # Every rank takes as many batches as the rank with the fewest windows has.
    counts = hvd.allgather(tf.constant([[len(windows.train_starts), len(windows.validation_starts)]],
                                       tf.int64)).numpy()
    steps = min(int(counts[:, 0].min()) // batch, task.steps_per_epoch or sys.maxsize)
    if steps == 0:
        raise ValueError(
            f"the ranks' shards give {counts[:, 0].tolist()} training windows of {model_config.sequence_length} "
            f"tokens, and every rank needs batch_size {batch}: add MIDI files, lower --num-proc or choose a "
            f"smaller preset")
    dataset, fit_validation = rank_datasets(model_config, vocabulary, windows.training, windows.validation,
                                            int(counts[:, 1].min()), task.seed + rank, task.val_steps)
    sizes = task.expression.sizes() if task.expression else None
    model, optimizer, averager, state = build_for_training(model_config, len(vocabulary), sizes, size, hvd)
    # Rank 0 alone touches the model directory, through a local workspace (a scratch folder
    # when the directory is remote) for what Keras and TensorBoard write.
    workspace = storage.Workspace(task.model_dir) if rank == 0 else None
    try:
        best_val_loss = float("inf")
        if task.first_epoch:
            best_val_loss = restore(state, optimizer, model, workspace, averager.variables if averager else ())
        callbacks, saver = rank_callbacks(task, model_config, windows, (state, averager), best_val_loss, workspace,
                                          steps, str(precision), "val_loss" if fit_validation else "loss", hvd)
        epochs_trained = 0
        if task.first_epoch < task.epochs:
            history = model.fit(dataset, steps_per_epoch=steps, epochs=task.epochs, initial_epoch=task.first_epoch,
                                verbose=2 if rank == 0 else 0, callbacks=callbacks, **fit_validation)
            epochs_trained = len(history.history["loss"])
        if rank == 0:
            workspace.sync(LOGS_DIR)
            ModelDir(task.model_dir).plot_history()
    finally:
        if workspace:
            workspace.close()
    return {"rank": rank, "epochs": epochs_trained,
            "best_val_loss": saver.best_val_loss if saver else best_val_loss,
            "train_windows": int(counts[:, 0].sum()), "val_windows": int(counts[:, 1].sum()),
            "token_bytes": int(windows.token_bytes),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def start_rank(task: RankTask, hvd):
    """Horovod up, the rank's output on its way to the driver, TensorFlow's threads and seed set;
    the precision the rank trains in ("auto": for this rank's machine)."""
    import tensorflow as tf

    hvd.init()
    send_output_to_driver(task.relay, hvd.rank())
    # Spark sets OMP_NUM_THREADS for the task; TensorFlow's own pools are set here.
    tf.config.threading.set_intra_op_parallelism_threads(task.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(task.seed + 1000 * task.first_epoch + hvd.rank())
    tf.get_logger().setLevel("ERROR")  # not Keras's "callback is slow" for Horovod's first-batch broadcast
    return training_precision(task.model.precision)


def build_for_training(model_config: ModelConfig, vocab_size: int, expression_sizes, ranks: int, hvd):
    """(the compiled network, its Horovod optimizer, its weight average or None, what a
    checkpoint holds)."""
    from lstm_composer.callbacks import WeightAverage
    from lstm_composer.model import build_model

    model = build_model(model_config, vocab_size, for_training=True, expression_sizes=expression_sizes)
    optimizer = hvd.DistributedOptimizer(make_optimizer(model_config, ranks=ranks))
    compile_network(model, model_config, optimizer)
    averager = WeightAverage(model_config.weight_average, model) if model_config.weight_average else None
    return model, optimizer, averager, training_state(model, optimizer, averager)


def rank_callbacks(task: RankTask, model_config: ModelConfig, windows: RankWindows, saved: tuple,
                   best_val_loss: float, workspace: storage.Workspace | None, steps: int, precision: str,
                   monitored: str, hvd) -> tuple[list, object]:
    """The callbacks of `model.fit`, in the order they must run, and rank 0's `EpochSaver`
    (None on the others). `saved`: (what a checkpoint holds, the weight average or None)."""
    import tensorflow as tf

    from lstm_composer.callbacks import BatchNormRefresh, EpochSaver, Progress, TimeBudget, calibration_batches
    from lstm_composer.dataset import make_dataset

    state, averager = saved
    rank, size, vocab_size = hvd.rank(), hvd.size(), len(task.vocabulary)
    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
    if averager:  # before the BatchNorm refresh, which must see the averaged weights
        callbacks.append(averager)
    if model_config.batch_norm:  # before validation and before the saver exports the network
        calibration = make_dataset(*windows.training, model_config, vocab_size, seed=task.seed + 7 + rank)
        callbacks.append(BatchNormRefresh(calibration, calibration_batches(model_config, size), hvd))
    saver = None
    if rank == 0:
        sizes = task.expression.sizes() if task.expression else None
        saver = EpochSaver(task.model_dir, state, model_config, vocab_size, best_val_loss,
                           sequences_per_epoch=steps * model_config.batch_size * size, expression_sizes=sizes,
                           workspace=workspace)
        callbacks += [tf.keras.callbacks.TensorBoard(workspace.path(LOGS_DIR), profile_batch=0),
                      saver]  # the saver uploads what TensorBoard wrote for the epoch
    if task.max_minutes:
        callbacks.append(TimeBudget(task.max_minutes, hvd))
    if task.patience:  # every rank sees the same averaged validation loss, so all stop together
        callbacks.append(tf.keras.callbacks.EarlyStopping(monitor=monitored, patience=task.patience))
    if rank == 0:
        callbacks.append(Progress(task.epochs, steps, model_config.batch_size * size, precision,
                                  task.progress_seconds))
    return callbacks, saver


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


def training_state(model, optimizer, averager=None):
    """What a checkpoint holds: the network, the optimizer and, with a `WeightAverage`
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
        directory = ModelDir(workspace.uri)
        last = directory.checkpoint("last")
        try:
            prefix = last.local_prefix(workspace)
            if AVERAGE_PART not in {name.split("/")[0] for name, _ in tf.train.list_variables(prefix)}:
                state = training_state(model, optimizer)
            state.read(prefix).assert_existing_objects_matched()
        except Exception as error:
            raise CheckpointDamaged(f"the checkpoint of epoch {last.epoch + 1}, {last.prefix}.*, cannot be restored "
                                    f"into this network ({type(error).__name__}: {first_line(error)[:200]})") from None
        best = directory.checkpoint("best")
        best_val_loss = float(best.metrics.get("monitored", float("inf"))) if best else float("inf")
    broadcast_variables(model.variables + optimizer.variables() + list(carried), root_rank=0)
    return best_val_loss
