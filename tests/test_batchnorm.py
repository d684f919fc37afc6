"""BatchNorm statistics measured afresh after each epoch, so inference mode sees the network as it is."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

# One Horovod rank in its own process: the refresh averages its sums over the ranks.
SCRIPT = """
import numpy as np, tensorflow as tf, horovod.tensorflow.keras as hvd
from dataclasses import replace
from lstm_composer.dataset import make_dataset, window_starts
from lstm_composer.tables import TokenStream
from lstm_composer.model import build_model
from lstm_composer.presets import preset
from lstm_composer.callbacks import BatchNormRefresh

hvd.init()
rng = np.random.default_rng(0)
config = replace(preset("tiny"), sequence_length=6, batch_size=8)
ids = rng.integers(0, 10, 300).astype(np.int32)
stream = TokenStream(ids=ids, bounds=np.array([0, 300]), piece_ids=["a"])
starts = window_starts(stream, config.sequence_length)
dataset = make_dataset(stream, starts, config, 10, seed=1, shuffle=False)
model = build_model(config, 10)
for layer in model.layers:  # a trained-looking network whose moving statistics are stale
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        layer.moving_mean.assign(tf.fill(layer.moving_mean.shape, 5.0))
        layer.moving_variance.assign(tf.fill(layer.moving_variance.shape, 1e-6))
refresh = BatchNormRefresh(dataset, 4, hvd)
refresh.set_model(model)
refresh.on_epoch_begin(0)
refresh.on_epoch_end(0)

windows = [w for w, _ in dataset.take(4)]
norms = [l for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
for layer in norms:  # each layer's statistics are those of what reaches it, in inference mode
    probe = tf.keras.Model(model.inputs, layer.input)
    values = np.concatenate([probe(w, training=False).numpy() for w in windows])
    assert np.allclose(layer.moving_mean.numpy(), values.mean(0), atol=1e-5), layer.name
    assert np.allclose(layer.moving_variance.numpy(), values.var(0), rtol=1e-3, atol=1e-7), layer.name
# On those windows taken as one batch, inference mode now gives what training mode gives
# (dropout aside): BatchNorm normalises with the batch's own statistics there.
undropped = build_model(replace(config, dropout=0.0), 10)
undropped.set_weights(model.get_weights())
batch = tf.concat(windows, 0)
inference, training = undropped(batch, training=False).numpy(), undropped(batch, training=True).numpy()
assert np.abs(inference - training).max() < 0.05, np.abs(inference - training).max()
print("refreshed", len(norms))
"""


def test_refreshed_statistics_are_the_networks_own():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refreshed 2" in result.stdout
