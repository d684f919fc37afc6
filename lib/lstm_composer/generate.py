"""Generation from a trained model directory, locally, without Spark."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_composer.presets import ModelConfig
from lstm_composer.tokens import Vocabulary
from lstm_composer import model_dir as run_files


@dataclass(frozen=True)
class GenerateConfig:
    model_dir: str
    length: int
    seed: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"length must be at least 1, got {self.length}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass(frozen=True)
class TrainedModel:
    """What a model directory holds: the network, its config, its vocabulary, its corpus."""

    network: object
    config: ModelConfig
    vocabulary: Vocabulary
    corpus_path: str

    @classmethod
    def load(cls, model_dir: str) -> "TrainedModel":
        """Everything checked, and a `ModelDirError` naming the file that is missing or corrupt;
        a vocabulary that does not fit the network is refused too."""
        directory = Path(model_dir)
        settings = run_files.read_json(directory / run_files.CONFIG_FILE)
        vocabulary = run_files.read_vocabulary(directory)
        network = run_files.load_network(directory)
        outputs = network.output_shape[-1]
        if outputs != len(vocabulary):
            raise run_files.ModelDirError(
                f"{directory / run_files.VOCAB_FILE} has {len(vocabulary)} tokens but "
                f"{directory / run_files.MODEL_FILE} predicts {outputs}: they come from different runs")
        return cls(network=network, config=ModelConfig.from_dict(settings["model"]),
                   vocabulary=vocabulary, corpus_path=settings["corpus_path"])


def primer_window(model: TrainedModel, rng: np.random.Generator) -> np.ndarray:
    """A window of training tokens, drawn by `rng`, to start from (as the paper did)."""
    from lstm_composer.dataset import read_token_stream, window_starts

    stream = read_token_stream(f"{model.corpus_path}/notes", model.vocabulary)
    starts = window_starts(stream, model.config.sequence_length)
    start = starts[rng.integers(len(starts))]
    return stream.ids[start:start + model.config.sequence_length]


def generate(config: GenerateConfig) -> list[str]:
    """`config.length` new tokens, sampled from the model's distribution; same seed, same tokens."""
    import tensorflow as tf

    from lstm_composer.dataset import encode_windows

    model = TrainedModel.load(config.model_dir)
    rng = np.random.default_rng(config.seed)
    window = list(primer_window(model, rng))
    vocab_size = len(model.vocabulary)
    generated = []
    for _ in range(config.length):
        inputs = encode_windows(tf.constant([window], dtype=tf.int32), model.config, vocab_size)
        probabilities = model.network(inputs, training=False).numpy()[0].astype(np.float64)
        logits = np.log(np.maximum(probabilities, 1e-12)) / config.temperature
        weights = np.exp(logits - logits.max())
        next_id = int(rng.choice(vocab_size, p=weights / weights.sum()))
        generated.append(next_id)
        window = window[1:] + [next_id]
    return model.vocabulary.decode(generated)
