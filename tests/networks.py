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


def expressive_model_dir_with(tmp_path, config, tokens: list[str], rows: list[tuple], names: tuple[str, ...]):
    """`tmp_path`/corpus holding the notes `rows` (columns `names`) and `tmp_path`/model holding a
    randomised expressive network of `config` over `tokens`: (model directory, its expression)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lstm_composer.expression import Expression
    from lstm_composer.model import build_model
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.tokens import Vocabulary

    (tmp_path / "corpus/notes").mkdir(parents=True)
    pq.write_table(pa.table({name: list(column) for name, column in zip(names, zip(*rows))}),
                   tmp_path / "corpus/notes/part-0.parquet")
    vocabulary, expression = Vocabulary(tokens), Expression()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    randomised(build_model(config, len(vocabulary), expression_sizes=expression.sizes()), seed=7).save(
        model_dir / "model.keras")
    ModelDir(str(model_dir)).write_vocabulary(vocabulary, expression)
    (model_dir / "config.json").write_text(json.dumps({"model": config.to_dict(),
                                                      "corpus_path": str(tmp_path / "corpus")}))
    return model_dir, expression
