"""Named, frozen model and training configurations.

`paper` is the network of "Generate Music Using LSTM Network" exactly; `paper-alt` its
alternative. Change a preset for one run with `dataclasses.replace`, never in place.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstm_composer.expression import RHYTHMS

INPUT_ENCODINGS = ("scalar", "embedding")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
OPTIMIZERS = ("rmsprop", "adam")


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
    # Every position of a window is a target (the network returns a prediction per position),
    # not only the last one as in the paper: a window of L tokens teaches L predictions.
    dense_targets: bool = False
    # Each training window is transposed by a random number of semitones in this range
    # (never the validation windows); (0, 0): no transposition.
    transpose: tuple[int, int] = (0, 0)
    # A pointer head beside the token softmax: the network can also copy the token that
    # followed an earlier moment of the piece whose context resembles the present one
    # (a learned cache, as in pointer-sentinel language models). Needs dense_targets.
    pointer: bool = False
    # A head for the lowest pitch of the next position (its bass), given the token chosen
    # there: chords are then voiced over a bass line the network writes. Needs expressive and
    # dense_targets.
    bass: bool = False
    # The onset gap, duration and velocity heads also see the token chosen for their position
    # (in training, the target token), as the bass head does: a position is drawn token first,
    # then when, how long and how loud that token is played. Drawn from one state side by side,
    # a chord took the gaps of the runs around it (`make run`'s model put 73% of its chords a
    # sixteenth or less after the last onset; its corpus, 45%). Needs expressive and dense_targets.
    given_token: bool = False
    optimizer: str = "rmsprop"  # the paper's; or "adam" (with gradients clipped to norm 1)
    # Each position also tells where its onset falls within the beat (`expression.PHASES`
    # steps of a quarter), so the network keeps to a metric grid. An input, not a head: it
    # follows from the onset gaps. Needs expressive.
    phase: bool = False
    # The unit of an expressive model's onset gaps and durations: "beats" (note values, for
    # sequenced files) or "seconds" (for recordings of playing); see expression.py.
    rhythm: str = "beats"
    # Validate and keep an exponential moving average of the weights, this decay per step
    # (0: the last step's weights).
    weight_average: float = 0.0
    # Each position also tells which quarter of its bar it falls in and its bar's place in a
    # phrase of four (`metre.py`), from the pieces' time signatures. Needs phase.
    metre: bool = False
    # Each position also tells the key of the passage around it (`form.window_key_labels`),
    # moved with every transposition: generation holds a key, or changes it as the corpus does.
    # Needs expressive.
    key: bool = False
    # The style of each piece (its composer, its collection: `styles.py`), by its index in this
    # list from 1 (0: a piece without a label), as an input; empty: no style input. Set by
    # training from the labels it reads, not by a preset.
    styles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sequence_length < 1:
            raise ValueError(f"sequence_length must be positive, got {self.sequence_length}")
        if not self.lstm_units or min(self.lstm_units) < 1:
            raise ValueError(f"lstm_units must be positive sizes, got {self.lstm_units}")
        for label, rate in (("recurrent_dropout", self.recurrent_dropout), ("dropout", self.dropout),
                            ("weight_average", self.weight_average)):
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
        if len(self.loss_weights) not in (4, 5) or min(self.loss_weights) < 0:
            raise ValueError(f"loss_weights must be 4 or 5 weights >= 0 (token, ioi, duration, velocity, bass), "
                             f"got {self.loss_weights}")
        if self.expressive and (self.input_encoding != "embedding" or not self.sparse_targets):
            raise ValueError("an expressive model needs embedding inputs and sparse targets")
        if self.rhythm not in RHYTHMS:
            raise ValueError(f"rhythm must be one of {RHYTHMS}, got {self.rhythm!r}")
        if self.rhythm != "beats" and not self.expressive:
            raise ValueError(f"rhythm {self.rhythm!r} needs a model with rhythm heads (expressive, small)")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        low, high = self.transpose
        if not -6 <= low <= 0 <= high <= 6 or high - low > 11:
            raise ValueError(f"transpose must be a range of semitones around 0 within -6..6 and at most "
                             f"12 values, got {self.transpose}")
        if self.pointer and not self.dense_targets:
            raise ValueError("a pointer head needs dense_targets")
        if (self.dense_targets or self.transpose != (0, 0)) and self.input_encoding != "embedding":
            raise ValueError("dense targets and transposition need embedding inputs and sparse targets")
        if self.dense_targets and not self.sparse_targets:
            raise ValueError("dense targets and transposition need embedding inputs and sparse targets")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if (self.bass or self.given_token) and not (self.expressive and self.dense_targets):
            raise ValueError("a bass head, and heads that see the chosen token, need an expressive model "
                             "with dense targets")
        if self.phase and (not self.expressive or self.rhythm != "beats"):
            raise ValueError("a beat-phase input needs an expressive model with rhythm in beats")
        if self.metre and not self.phase:
            raise ValueError("bar inputs (metre) need the beat-phase input (phase)")
        if self.key and not self.expressive:
            raise ValueError("a key input needs an expressive model")
        if self.styles and (not self.expressive or len(set(self.styles)) != len(self.styles)):
            raise ValueError("a style input needs an expressive model and distinct labels")

    @property
    def attributes(self) -> tuple[str, ...]:
        """What each position carries: the network's inputs, in order; the heads' first."""
        return (self.heads + (("phase",) if self.phase else ()) + (("bar_beat", "phrase_bar") if self.metre else ())
                + (("key",) if self.key else ()) + (("style",) if self.styles else ()))

    @property
    def heads(self) -> tuple[str, ...]:
        """What the network predicts for the next position (heads `next_<name>`), in order:
        the first of `attributes`."""
        if not self.expressive:
            return ("token",)
        return ("token", "ioi", "duration", "velocity") + (("bass",) if self.bass else ())

    @property
    def chosen_input(self) -> bool:
        """Whether the network also reads the token chosen for the position it predicts
        (`model.CHOSEN_TOKEN`): for its bass head, and for every head with `given_token`."""
        return self.bass or self.given_token

    @property
    def head_weights(self) -> dict[str, float]:
        """The loss weight of each head, `next_<attribute>`; a bass head weighs 1 unless given."""
        weights = tuple(self.loss_weights) + (1.0,) * (5 - len(self.loss_weights))
        return {f"next_{name}": weight for name, weight in zip(self.heads, weights)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        tuples = {key: tuple(values[key]) for key in ("lstm_units", "loss_weights", "transpose", "styles")
                  if key in values}
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
    # The paper's layers, made to learn more from the same pieces and faster: token embeddings
    # instead of one scaled scalar, a target at every position, windows transposed by -5..+6
    # semitones, no recurrent dropout (so TensorFlow can use its fused LSTM kernels, cuDNN on a
    # GPU), and bfloat16 arithmetic where the hardware has it.
    "fast": replace(PAPER, name="fast", recurrent_dropout=0.0, input_encoding="embedding",
                    embedding_dim=64, sparse_targets=True, precision="auto",
                    dense_targets=True, transpose=(-5, 6)),
    # What a composer needs: when each token starts, how long it lasts, how loud it is and which
    # bass carries it (one head each beside the token's), where in the beat it falls, and a
    # pointer head that can continue a passage heard earlier in the piece. Dense targets,
    # transposition, Adam; no BatchNorm.
    # Windows of 256 tokens, so that the network learns to carry its state (and its pointer's
    # memory) over as long a stretch as a generated piece of 500 tokens needs.
    "expressive": replace(PAPER, name="expressive", sequence_length=256, lstm_units=(256, 256),
                          recurrent_dropout=0.0, input_encoding="embedding", embedding_dim=64,
                          sparse_targets=True, batch_size=16, precision="auto", batch_norm=False,
                          expressive=True, dense_targets=True, transpose=(-5, 6), pointer=True, bass=True,
                          given_token=True, phase=True, metre=True, key=True, optimizer="adam",
                          learning_rate=0.001),
    # `expressive` small enough to train on a laptop's two cores in minutes (`make run`).
    "small": replace(PAPER, name="small", sequence_length=128, lstm_units=(192, 192),
                     recurrent_dropout=0.0, dense_units=192, input_encoding="embedding",
                     embedding_dim=48, sparse_targets=True, batch_size=16, learning_rate=0.001,
                     batch_norm=False, expressive=True, dense_targets=True, transpose=(-5, 6),
                     pointer=True, bass=True, given_token=True, phase=True, metre=True, key=True,
                     optimizer="adam", weight_average=0.99),
    # The paper's network in miniature, seconds per epoch, for tests.
    "tiny": replace(PAPER, name="tiny", sequence_length=8, lstm_units=(16, 16), dense_units=16,
                    recurrent_dropout=0.0, batch_size=16),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
