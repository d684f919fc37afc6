"""Networks with every weight set at random, for tests that compare one way of running them with another."""
import numpy as np


def randomised(network, seed: int):
    """Set every weight, BatchNorm statistics included, from a seeded generator."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in network.layers:
        weights = layer.get_weights()
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = weights
            weights = [rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.3, beta.shape),
                       rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2, variance.shape)]
        else:
            weights = [rng.normal(0, 0.5, w.shape) for w in weights]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return network
