"""Named, frozen model and training configurations.

`paper` is the network of "Generate Music Using LSTM Network" exactly; `paper-alt` its
alternative. Change a preset for one run with `dataclasses.replace`, never in place.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstm_composer.expression import RHYTHMS

INPUT_ENCODINGS = ("scalar", "embedding")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")


@dataclass(frozen=True)
class ModelConfig:
    """The network and how it is trained; saved as `config.json` next to the model."""

    name: str
    sequence_length: int
    lstm_units: tuple[int, ...]
    recurrent_dropout: float
    dropout: float
    dense_units: int
    input_encoding: str  # "scalar": token id / vocabulary size, as the paper; "embedding"
    embedding_dim: int
    sparse_targets: bool  # False: one-hot targets with categorical cross-entropy, as the paper
    batch_size: int
    learning_rate: float  # for one rank; Horovod training scales it by the number of ranks
    # Training arithmetic. "mixed_bfloat16" keeps float32 weights and computes in bfloat16:
    # about twice as fast on CPUs with AVX512-BF16 or AMX and on recent GPUs, slower elsewhere.
    # "auto": each rank chooses for its own machine (hardware.training_precision).
    precision: str = "float32"
    batch_norm: bool = True  # the paper's BatchNorm after the LSTM stack and after the Dense layer
    # Heads for the time since the previous onset, the duration and the velocity besides the
    # token (see expression.py); the loss is the heads' cross-entropies weighted by `loss_weights`
    # (token, ioi, duration, velocity).
    expressive: bool = False
    loss_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # The unit of an expressive model's onset gaps and durations: "beats" (note values, for
    # sequenced files) or "seconds" (for recordings of playing); see expression.py.
    rhythm: str = "beats"

    def __post_init__(self) -> None:
        if self.sequence_length < 1:
            raise ValueError(f"sequence_length must be positive, got {self.sequence_length}")
        if not self.lstm_units or min(self.lstm_units) < 1:
            raise ValueError(f"lstm_units must be positive sizes, got {self.lstm_units}")
        for label, rate in (("recurrent_dropout", self.recurrent_dropout), ("dropout", self.dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {rate}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {self.input_encoding!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.dense_units < 1 or self.embedding_dim < 1:
            raise ValueError("dense_units and embedding_dim must be positive")
        if len(self.loss_weights) != 4 or min(self.loss_weights) < 0:
            raise ValueError(f"loss_weights must be 4 weights >= 0, got {self.loss_weights}")
        if self.expressive and (self.input_encoding != "embedding" or not self.sparse_targets):
            raise ValueError("an expressive model needs embedding inputs and sparse targets")
        if self.rhythm not in RHYTHMS:
            raise ValueError(f"rhythm must be one of {RHYTHMS}, got {self.rhythm!r}")
        if self.rhythm != "beats" and not self.expressive:
            raise ValueError(f"rhythm {self.rhythm!r} needs a model with rhythm heads (expressive, small)")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        tuples = {key: tuple(values[key]) for key in ("lstm_units", "loss_weights") if key in values}
        return cls(**{**values, **tuples})


PAPER = ModelConfig(
    name="paper",
    sequence_length=100,
    lstm_units=(216, 316, 316),
    recurrent_dropout=0.3,
    dropout=0.3,
    dense_units=256,
    input_encoding="scalar",
    embedding_dim=1,
    sparse_targets=False,
    batch_size=128,
    learning_rate=0.001,  # Keras's RMSprop default, which the paper kept
)

PRESETS: dict[str, ModelConfig] = {
    "paper": PAPER,
    "paper-alt": replace(PAPER, name="paper-alt", sequence_length=120, lstm_units=(250, 350, 350)),
    # The paper's shape, made for speed: token embeddings instead of one scaled scalar,
    # sparse targets instead of one-hot, no recurrent dropout, so TensorFlow can use its
    # fused LSTM kernels (cuDNN on a GPU), and bfloat16 arithmetic where the hardware has it.
    "fast": replace(PAPER, name="fast", recurrent_dropout=0.0, input_encoding="embedding",
                    embedding_dim=64, sparse_targets=True, precision="auto"),
    # `fast` that also learns when each token starts, how long it lasts and how loud it is:
    # one softmax head each beside the token's. No BatchNorm: its moving statistics after the
    # LSTM stack go bad in training (docs/results.md).
    "expressive": replace(PAPER, name="expressive", recurrent_dropout=0.0, input_encoding="embedding",
                          embedding_dim=64, sparse_targets=True, precision="auto",
                          batch_norm=False, expressive=True),
    # Small enough to train on a laptop's two cores in minutes (`make run`), with rhythm and
    # dynamics heads like `expressive`.
    "small": replace(PAPER, name="small", sequence_length=48, lstm_units=(128, 160, 160),
                     recurrent_dropout=0.0, dense_units=128, input_encoding="embedding",
                     embedding_dim=32, sparse_targets=True, batch_size=64, learning_rate=0.002,
                     batch_norm=False, expressive=True),
    # Seconds per epoch, for tests.
    "tiny": replace(PAPER, name="tiny", sequence_length=8, lstm_units=(16, 16), dense_units=16,
                    recurrent_dropout=0.0, batch_size=16),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
