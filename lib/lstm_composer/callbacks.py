"""The Keras callbacks a Horovod rank trains with, beside Horovod's own.

Imported on the ranks only (it imports TensorFlow). `hvd` is the rank's
`horovod.tensorflow.keras`, passed in by `rank.train_rank`.
"""
from __future__ import annotations

import time

import tensorflow as tf

from lstm_composer import storage
from lstm_composer.model import build_model
from lstm_composer.model_dir import LOGS_DIR, ModelDir
from lstm_composer.presets import ModelConfig
from lstm_composer.progress import duration_text

CALIBRATION_CHUNK = 256  # windows per network call when BatchNorm statistics are re-estimated


class BatchNormRefresh(tf.keras.callbacks.Callback):
    """Re-estimates every BatchNorm layer's moving mean and variance after each epoch's training
    batches, before validation (or at the epoch's end without one), from `batches` batches of
    training windows per rank (`dataset`), with the network in inference mode, averaged over the
    ranks.

    The moving averages that Keras keeps during training do not describe the network as it is
    at the end of the epoch (docs/results.md): with them, inference-mode losses were several
    times the training-mode ones. Layer by layer, each BatchNorm gets the exact mean and
    variance of what reaches it in inference mode, the earlier ones already corrected.
    """

    def __init__(self, dataset, batches: int, hvd):
        super().__init__()
        self.dataset, self.batches, self.hvd = dataset, batches, hvd

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
        hvd = self.hvd
        norms = [layer for layer in self.model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
        # a few calls of CALIBRATION_CHUNK windows, not one per batch: with a test's batches
        # of 2 to 4 windows, hundreds of calls took most of each epoch
        calibration = self.dataset.take(self.batches).unbatch().batch(CALIBRATION_CHUNK)
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


def calibration_batches(model_config: ModelConfig, ranks: int) -> int:
    """Batches per rank for re-estimating BatchNorm statistics: about 2,048 windows of the
    paper's kind, or 64 dense windows (each gives a statistic per position), over all ranks."""
    wanted = 64 if model_config.dense_targets else 2048
    return max(1, -(-wanted // (ranks * model_config.batch_size)))


class WeightAverage(tf.keras.callbacks.Callback):
    """Validates and saves an exponential moving average of `model`'s weights over the training
    steps (`decay` per step), not the last step's weights, which the noise of small batches
    moves about; training goes on from its own weights. Every rank keeps the same average: it
    starts after the first step, once Horovod has broadcast rank 0's weights. `checkpoint`
    holds the average and the trained weights (the model holds the average when an epoch's
    checkpoint is written), so that a resumed run trains on from the trained weights and goes
    on averaging, as if it had not stopped; `variables` are what a resumed rank 0 broadcasts
    to the others."""

    def __init__(self, decay: float, model):
        super().__init__()
        self.decay, self.averaged = decay, model.trainable_weights
        self.average = [tf.Variable(w, trainable=False) for w in self.averaged]
        self.trained = [tf.Variable(w, trainable=False) for w in self.averaged]
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)  # averaged so far
        self.swapped = tf.Variable(False, trainable=False)  # the model holds the average
        self.checkpoint = tf.train.Checkpoint(average=self.average, trained=self.trained, steps=self.steps,
                                              swapped=self.swapped)
        self.variables = self.average + self.trained + [self.steps, self.swapped]
        self.update = tf.function(self._update)

    def _update(self):
        first = tf.cast(self.steps == 0, tf.float32)  # the first step's weights start the average
        for mean, w in zip(self.average, self.averaged):
            mean.assign(first * w + (1.0 - first) * (self.decay * mean + (1.0 - self.decay) * w))
        self.steps.assign_add(1)

    def on_train_batch_end(self, batch, logs=None):
        self.update()

    def on_test_begin(self, logs=None):
        if self.steps > 0 and not self.swapped:
            for kept, w, mean in zip(self.trained, self.averaged, self.average):
                kept.assign(w)
                w.assign(mean)
            self.swapped.assign(True)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swapped:
            for w, kept in zip(self.averaged, self.trained):
                w.assign(kept)
            self.swapped.assign(False)


class TimeBudget(tf.keras.callbacks.Callback):
    """Stops every rank after the epoch in which rank 0 has trained `minutes`: rank 0's clock
    decides, so all ranks stop at the same epoch."""

    def __init__(self, minutes: float, hvd):
        super().__init__()
        self.minutes, self.hvd = minutes, hvd

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        spent = float(time.perf_counter() - self.started > 60 * self.minutes)
        if self.hvd.broadcast(tf.constant(spent), root_rank=0, name="time_budget").numpy() > 0:
            self.model.stop_training = True


class EpochSaver(tf.keras.callbacks.Callback):
    """Rank 0's saver, after Horovod has averaged the epoch's metrics over ranks: adds throughput
    to the logs, writes the history row, then the checkpoint (`state`; a crash between the two
    trains that epoch again, and its row is replaced) and, when the validation loss (the
    training loss without a validation set) is the lowest yet, `model.keras`; then uploads
    what changed in the `workspace` (TensorBoard's logs) when the model directory is remote."""

    def __init__(self, directory: str, state, model_config: ModelConfig, vocab_size: int, best_val_loss: float,
                 sequences_per_epoch: int, expression_sizes: tuple[int, int, int, int] | None = None,
                 workspace: storage.Workspace | None = None):
        super().__init__()
        self.directory, self.state, self.model_config = ModelDir(str(directory)), state, model_config
        self.vocab_size, self.expression_sizes = vocab_size, expression_sizes
        self.best_val_loss, self.sequences_per_epoch = best_val_loss, sequences_per_epoch
        self.workspace = workspace or storage.Workspace(str(directory))
        self.started = self.trained = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.trained = time.perf_counter(), None

    def on_test_begin(self, logs=None):  # training batches are done; validation starts
        self.trained = self.trained or time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        now = time.perf_counter()
        logs["seconds"] = now - self.started
        logs["sequences_per_second"] = self.sequences_per_epoch / ((self.trained or now) - self.started)
        if "val_loss" in logs:  # the token head's alone: comparable across presets
            logs["val_token_loss"] = logs.get("val_next_token_loss", logs["val_loss"])
        for key in ("accuracy", "val_accuracy"):  # an expressive model's: its token head's
            if key not in logs and key.replace("accuracy", "next_token_accuracy") in logs:
                logs[key] = logs[key.replace("accuracy", "next_token_accuracy")]
        monitored = float(logs.get("val_loss", logs.get("loss", float("inf"))))
        improved = monitored < self.best_val_loss
        if improved:
            self.best_val_loss = monitored
            export_network(self.model, self.directory, self.model_config, self.vocab_size, self.expression_sizes)
        metrics = {key: float(value) for key, value in logs.items()}
        self.directory.append_history(epoch, metrics)
        self.directory.save_checkpoint(self.workspace, self.state, epoch, {**metrics, "monitored": monitored},
                                       improved)
        self.workspace.sync(LOGS_DIR)


def export_network(model, directory: ModelDir, model_config: ModelConfig, vocab_size: int,
                   expression_sizes: tuple[int, int, int, int] | None = None) -> None:
    """A plain, uncompiled float32 copy of the network (no Horovod optimizer inside), as the
    directory's `model.keras`."""
    plain = build_model(model_config, vocab_size, expression_sizes=expression_sizes)
    plain.set_weights(model.get_weights())
    directory.save_network(plain)


class Progress(tf.keras.callbacks.Callback):
    """Rank 0's progress: a line when training starts, then during each epoch a line at least
    every `every_seconds` (checked after each step) with the step, the sequences per second
    (all ranks) and the time left in the epoch and in the run at that speed (validation not
    counted). The speed is measured from the end of the epoch's first step, which also builds
    the graph."""

    def __init__(self, epochs: int, steps_per_epoch: int, sequences_per_step: int, precision: str,
                 every_seconds: float = 30.0, clock=time.monotonic):
        super().__init__()
        self.epochs, self.steps_per_epoch, self.sequences_per_step = epochs, steps_per_epoch, sequences_per_step
        self.precision, self.every_seconds, self.clock = precision, every_seconds, clock

    def on_train_begin(self, logs=None):
        print(f"training: {self.steps_per_epoch} steps per epoch of {self.sequences_per_step} sequences "
              f"(all ranks); precision {self.precision}", flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.printed = self.clock()
        self.first_step_end = None

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self.first_step_end is None:
            self.first_step_end = now
        if now - self.printed < self.every_seconds:
            return
        self.printed = now
        step = batch + 1
        where = f"epoch {self.epoch + 1}/{self.epochs} step {step}/{self.steps_per_epoch}"
        if step == 1:
            print(f"{where}: the first step, which builds the graph; precision {self.precision}", flush=True)
            return
        rate = (step - 1) / max(now - self.first_step_end, 1e-9)  # steps per second
        left_in_epoch = (self.steps_per_epoch - step) / rate
        left = left_in_epoch + (self.epochs - self.epoch - 1) * self.steps_per_epoch / rate
        print(f"{where}: {rate * self.sequences_per_step:.1f} sequences/s, {duration_text(left_in_epoch)} left "
              f"in this epoch, {duration_text(left)} in all; precision {self.precision}", flush=True)
