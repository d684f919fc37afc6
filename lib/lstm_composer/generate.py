"""Generation from a trained model directory, locally, without Spark.

The network is decoded incrementally (`model.Decoder`): the primer goes in once, then one
token per step with the LSTM states carried along, instead of a whole window through Keras
for every token as the paper did; every `Sampling.refresh` tokens the state is rebuilt from
the last window, so that it never holds much more than the network trained on. Each step
samples the next token with a temperature and optional top-k / top-p cuts, from a seeded
generator, so the same seed gives the same piece.
A report says how much of the result was copied from the corpus and whether it loops.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from lstm_composer import model_dir as run_files
from lstm_composer import storage
from lstm_composer.tables import Corpus, TokenStream, read_token_stream
from lstm_composer.expression import GRID_SHARE, Expression, beat_phase, metric_grid
from lstm_composer.presets import ModelConfig
from lstm_composer.events import PAPER_STEP, Event, fixed_step
from lstm_composer.render.midi import MAX_TEMPO, MIN_TEMPO
from lstm_composer.tokens import Vocabulary, is_chord, token_pitches
from lstm_composer.voicing import Voicings, allowed_basses


LOOP_PERIOD = 8  # patterns of up to this many tokens count as loops


class GenerationError(ValueError):
    """Generation cannot give what was asked for; the message says what to change."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn from the network's probabilities."""

    temperature: float = 1.0  # below 1: safer choices; above 1: more surprise
    top_k: int | None = None  # draw only among the k likeliest tokens (1: always the likeliest)
    top_p: float | None = None  # draw only among the likeliest tokens that together reach p
    # The longest stretch of tokens that may repeat a pattern of up to LOOP_PERIOD tokens
    # (a note struck over and over, a figure going round): the token that would make it longer
    # is not drawn. Real pieces rarely hold such a stretch past 20 tokens; a network that can
    # copy can fall into one for good. None: no limit.
    loop_limit: int | None = 24
    # For a network told where in the beat each onset falls: an onset gap that would put the
    # next onset on a beat phase holding less than this share of the training pieces' onsets
    # is not drawn (`BeatClock`). None: onsets anywhere.
    grid_share: float | None = GRID_SHARE
    # Every this many positions the network's state is rebuilt from the last window of
    # positions (a window as long as it trained on), from zero, as every training window began.
    # Carried on over a whole piece, the state holds far more than a window ever did, and the
    # network drifts: into one rhythm for good, a run of 32nds hundreds of notes long. None:
    # the state is carried over the whole piece.
    refresh: int | None = 32

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.loop_limit is not None and self.loop_limit <= LOOP_PERIOD:
            raise ValueError(f"loop_limit must be above {LOOP_PERIOD}, got {self.loop_limit}")
        if self.grid_share is not None and not 0.0 <= self.grid_share < 1.0:
            raise ValueError(f"grid_share must be in [0, 1), got {self.grid_share}")
        if self.refresh is not None and self.refresh < 1:
            raise ValueError(f"refresh must be at least 1 position, got {self.refresh}")


def sample(probabilities: np.ndarray, rng: np.random.Generator, sampling: Sampling) -> int:
    """One token id drawn from `probabilities` as `sampling` says. Ties in the top-k and
    top-p cuts keep the lower id, so top-k 1 is exactly the argmax."""
    order = np.argsort(-probabilities, kind="stable")
    logits = np.log(np.maximum(probabilities[order], 1e-300)) / sampling.temperature
    weights = np.exp(logits - logits[0])
    keep = len(order) if sampling.top_k is None else min(sampling.top_k, len(order))
    if sampling.top_p is not None:
        cumulative = np.cumsum(weights / weights.sum())
        keep = min(keep, int(np.searchsorted(cumulative, sampling.top_p)) + 1)
    weights = weights[:keep]
    return int(order[rng.choice(keep, p=weights / weights.sum())])


@dataclass(frozen=True)
class GenerateConfig:
    model_dir: str
    length: int = 500  # new tokens
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    primer_path: str | None = None  # a MIDI file to continue; otherwise a random training window
    max_copy: int | None = None  # resample until no run longer than this is copied from one piece
    max_tries: int = 20
    onset_tolerance_ms: float | None = None  # how the primer's notes form tokens, as the parse job's flag
    tempo: float = 120.0  # of the output: where a model's rhythm is in seconds, it is written at this tempo

    def __post_init__(self) -> None:
        if not MIN_TEMPO <= self.tempo <= MAX_TEMPO:
            raise ValueError(f"tempo must be between {MIN_TEMPO:.2f} and {MAX_TEMPO:,.0f} BPM, got {self.tempo}")
        if self.length < 1:
            raise ValueError(f"length must be at least 1, got {self.length}")
        if self.max_copy is not None and self.max_copy < 1:
            raise ValueError(f"max_copy must be at least 1, got {self.max_copy}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {self.max_tries}")


@dataclass(frozen=True)
class TrainedModel:
    """What a model directory holds: the network, its config, its vocabulary, its corpus."""

    network: object
    config: ModelConfig
    vocabulary: Vocabulary
    corpus_path: str
    expression: Expression | None  # an expressive model's class values
    voicings: Voicings  # how the corpus voices chords
    validation_pieces: tuple[str, ...] = ()  # the pieces its training run held out

    @classmethod
    def load(cls, model_dir: str) -> "TrainedModel":
        """Everything checked, and a `ModelDirError` naming the file that is missing or corrupt;
        a vocabulary that does not fit the network is refused too."""
        directory = model_dir
        settings = run_files.read_json(run_files.file(directory, run_files.CONFIG_FILE))
        vocabulary = run_files.read_vocabulary(directory)
        network = run_files.load_network(directory)
        shape = network.output_shape
        outputs = (shape[0] if isinstance(shape, list) else shape)[-1]  # the token head's
        if outputs != len(vocabulary):
            raise run_files.ModelDirError(
                f"{run_files.file(directory, run_files.VOCAB_FILE)} has {len(vocabulary)} tokens but "
                f"{run_files.file(directory, run_files.MODEL_FILE)} predicts {outputs}: they come from different runs")
        config = ModelConfig.from_dict(settings["model"])
        expression = run_files.read_expression(directory)
        if config.expressive and expression is None:
            raise run_files.ModelDirError(f"{run_files.file(directory, run_files.VOCAB_FILE)} has no expression classes, "
                                          f"which the {config.name} model needs")
        return cls(network=network, config=config, vocabulary=vocabulary, corpus_path=settings["corpus_path"],
                   expression=expression if config.expressive else None,
                   voicings=run_files.read_voicings(directory),
                   validation_pieces=tuple(settings.get("validation_pieces") or ()))

    def corpus(self) -> TokenStream:
        """The corpus's tokens, read once per loaded model."""
        return self._corpus

    @cached_property
    def _corpus(self) -> TokenStream:
        corpus = Corpus(self.corpus_path)
        try:
            return read_token_stream(corpus, self.vocabulary, self.expression, bass=self.config.bass)
        except FileNotFoundError:
            raise GenerationError(f"the corpus this model was trained on, {corpus.notes}, is not there: it is "
                                  f"needed for a training window to start from and for the copy report") from None


@dataclass(frozen=True)
class Primer:
    """What generation starts from."""

    source: str  # "file" or "training window"
    tokens: list[str]  # fed to the network before the first new token
    detail: dict  # the file and the tokens skipped, or the piece and position
    attributes: np.ndarray | None = None  # (tokens, attributes - 1): the classes after each token, if any
    events: list[Event] | None = None  # a file's tokens as played in it
    last_phase: int | None = None  # where in its beat the last token falls (`beat_phase`), when known


def primer_from_file(path: str, vocabulary: Vocabulary, expression: Expression | None = None,
                     onset_tolerance_ms: float | None = None, tempo: float = 120.0,
                     bass: bool = False, phase: bool = False) -> Primer:
    """A user's MIDI file, tokenized by the parse job's own code with the same onset grouping
    (`onset_tolerance_ms`, None: auto); tokens the model never saw are skipped and reported.
    For a model whose rhythm is in seconds, its events are placed for an output at `tempo`.
    With `bass` and `phase`, each token's lowest pitch and beat phase are attributes too."""
    from lstm_composer.piece import parse_piece

    try:
        content = storage.read_bytes(path)
    except OSError as error:
        raise GenerationError(f"cannot read the primer {path}: {error.strerror or error}") from None
    piece, tokens = parse_piece(path, content, onset_tolerance_ms=onset_tolerance_ms)
    if piece.status != "ok":
        raise GenerationError(f"the primer {path} has no notes to start from: {piece.error}")
    kept = [t for t in tokens if t.token in vocabulary.index]
    skipped = sorted({t.token for t in tokens if t.token not in vocabulary.index})
    if not kept:
        raise GenerationError(f"none of the {len(tokens)} tokens of the primer {path} is in the model's "
                              f"vocabulary (e.g. {', '.join(skipped[:5])})")
    classes = last_phase = None
    offsets, durations = np.array([t.offset for t in kept]), np.array([t.duration for t in kept])
    if expression:
        timing = expression.timing(offsets, durations, piece.tempos)  # by the file's tempo map
        classes = expression.classes(*timing, np.array([t.velocity for t in kept]))
        phases = beat_phase(offsets, expression.phases)
        last_phase = int(phases[-1])
        if bass:
            classes = np.concatenate([classes, [[min(t.pitches)] for t in kept]], axis=1).astype(np.int32)
        if phase:
            classes = np.concatenate([classes, phases[:, None]], axis=1)
        offsets, durations = (expression.quarters(values, tempo) for values in timing)
    # Whole beats off the front, so that the notes stay where they fall in the beat; a rhythm in
    # seconds has no beat to keep.
    offsets = offsets - (offsets[0] if expression and expression.unit == "seconds" else np.floor(offsets[0]))
    events = [Event(t.token, float(offset), max(float(duration), 1e-3), max(1, min(127, t.velocity)),
                    tuple(t.pitches)) for t, offset, duration in zip(kept, offsets, durations)]
    return Primer("file", [t.token for t in kept], {"path": path, "tokens": len(tokens),
                                                    "skipped": len(tokens) - len(kept), "skipped_tokens": skipped},
                  classes, events, last_phase)


def primer_from_corpus(stream: TokenStream, vocabulary: Vocabulary, config: ModelConfig,
                       rng: np.random.Generator, held_out: tuple[str, ...] = ()) -> Primer:
    """A window of `sequence_length` tokens drawn by `rng` from the training pieces, as the
    paper did: never from the pieces the training run held out (`held_out`), which evaluation
    keeps for comparing generated pieces with music the network never saw."""
    from lstm_composer.dataset import window_starts

    length = config.sequence_length
    starts = window_starts(stream, length, set(stream.piece_ids) - set(held_out))
    if not len(starts):
        raise GenerationError(f"no training piece of the corpus is longer than {length} tokens")
    start = int(starts[rng.integers(len(starts))])
    piece = int(np.searchsorted(stream.bounds, start, side="right")) - 1
    classes = stream.attributes(config)[start:start + length, 1:] if config.expressive else None
    return Primer("training window", vocabulary.decode(stream.ids[start:start + length]),
                  {"piece_id": stream.piece_ids[piece], "position": start - int(stream.bounds[piece])}, classes,
                  last_phase=None if stream.phase is None else int(stream.phase[start + length - 1]))


@dataclass(frozen=True)
class CopiedRun:
    """The longest run of consecutive generated tokens found, in order, in one corpus piece."""

    length: int
    piece_id: str | None
    piece_position: int | None  # where the run starts in that piece
    output_position: int | None  # where it starts in the generated tokens


def longest_copy(generated: np.ndarray, stream: TokenStream) -> CopiedRun:
    """Exact search: for every generated position, follow all corpus positions holding the
    same token for as long as the next tokens agree and the piece goes on."""
    ids = stream.ids
    piece_end = np.repeat(stream.bounds[1:], np.diff(stream.bounds))
    order = np.argsort(ids, kind="stable")
    first = np.searchsorted(ids[order], np.arange(int(ids.max(initial=0)) + 2))
    best = CopiedRun(0, None, None, None)
    for i, token in enumerate(generated):
        if len(generated) - i <= best.length:
            break
        if token + 1 >= len(first):
            continue
        positions = order[first[token]:first[token + 1]]
        k = 1
        while len(positions) and i + k < len(generated):
            nxt = positions + k
            alive = nxt < piece_end[positions]
            alive[alive] = ids[nxt[alive]] == generated[i + k]
            if not alive.any():
                break
            positions = positions[alive]
            k += 1
        if len(positions) and k > best.length:
            start = int(positions[0])
            piece = int(np.searchsorted(stream.bounds, start, side="right")) - 1
            best = CopiedRun(k, stream.piece_ids[piece], start - int(stream.bounds[piece]), i)
    return best


@dataclass(frozen=True)
class Cycle:
    """The longest stretch of the output that repeats a pattern of `period` tokens."""

    period: int
    repeats: float  # span / period
    start: int
    span: int  # tokens


def longest_cycle(generated: np.ndarray) -> Cycle | None:
    """The periodic stretch covering the most tokens (at least two full periods); of equal
    spans, the shortest period. None if nothing repeats back to back."""
    best = None
    for period in range(1, len(generated) // 2 + 1):
        same = np.concatenate([[False], generated[period:] == generated[:-period], [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]
        if not len(starts):
            continue
        longest = int(np.argmax(ends - starts))
        span = int(ends[longest] - starts[longest]) + period
        if span >= 2 * period and (best is None or span > best.span):
            best = Cycle(period, round(span / period, 2), int(starts[longest]), span)
    return best


@dataclass(frozen=True)
class Report:
    """How original the generated tokens are; saved as JSON next to the output."""

    generated_tokens: int
    distinct_tokens: int
    distinct_onset_gaps: int  # different times between onsets (1 with the paper's fixed step)
    distinct_durations: int
    distinct_velocity_bins: int
    longest_copy: CopiedRun
    longest_cycle: Cycle | None
    primer: dict
    seed: int
    sampling: dict
    tries: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def summary(self) -> str:
        copy = self.longest_copy
        lines = [f"{self.generated_tokens} tokens, {self.distinct_tokens} distinct; {self.distinct_onset_gaps} "
                 f"onset gaps, {self.distinct_durations} durations, {self.distinct_velocity_bins} velocity bins",
                 f"longest run copied from one corpus piece: {copy.length} tokens"
                 + (f" (piece {copy.piece_id} at {copy.piece_position}, output position "
                    f"{copy.output_position})" if copy.piece_id else "")]
        cycle = self.longest_cycle
        lines.append("no repeating cycle" if cycle is None else
                     f"longest repeating cycle: {cycle.period} tokens x {cycle.repeats} "
                     f"({cycle.span} tokens from position {cycle.start})")
        if self.tries > 1:
            lines.append(f"{self.tries} tries to stay under --max-copy")
        return "\n".join(lines)


@dataclass(frozen=True)
class Composition:
    tokens: list[str]  # the primer file's tokens (when there is one), then the generated ones
    events: list[Event]  # the same tokens as played
    primer_length: int  # how many of `tokens` come from the primer file
    report: Report


@dataclass(frozen=True)
class BeatClock:
    """Where in the beat each generated onset falls, for a network that is told so.

    Each onset gap is drawn on its own, and one sextuplet sixteenth after a plain sixteenth
    puts the music between the grids (a phase such as 10 24ths of a beat), where the
    corpus has almost no onsets and the network has learnt almost nothing: from there it
    wanders on. Gaps that would leave the corpus's grid (`grid`) are not drawn."""

    steps: np.ndarray  # each onset-gap class's length in beat phases
    start: int  # the phase of the primer's last onset
    grid: np.ndarray  # for each phase, whether the training pieces' onsets keep to it

    @classmethod
    def of(cls, expression: Expression, start: int, phases: np.ndarray, share: float | None) -> "BeatClock":
        """`phases`: the training pieces' onset phases; `share`: as `Sampling.grid_share`."""
        count = expression.phases
        grid = np.ones(count, dtype=bool) if share is None else metric_grid(phases, share, count)
        return cls(np.rint(np.array(expression.ioi) * count).astype(np.int64), start, grid)

    def on_grid(self, gap_probabilities: np.ndarray, phase: int) -> np.ndarray:
        """The onset-gap probabilities with the gaps that lead off the grid taken out (all of
        them kept when every gap the network sees would)."""
        kept = gap_probabilities * self.grid[(phase + self.steps) % len(self.grid)]
        return kept / kept.sum() if kept.sum() > 0 else gap_probabilities

    def after(self, phase: int, gap: int) -> int:
        return int((phase + self.steps[gap]) % len(self.grid))


def continuation(decoder, primed: tuple, length: int, rng: np.random.Generator,
                 sampling: Sampling, vocabulary: Vocabulary | None = None, primer: np.ndarray | None = None,
                 clock: BeatClock | None = None) -> np.ndarray:
    """(length, heads) ids drawn one position at a time after a primed (probabilities, state)
    pair: the token, and for an expressive model its onset gap, duration and velocity classes,
    and its bass when the network has a bass head (drawn after the token, among the pitches
    that can be the lowest note of that token: `vocabulary` names them). `primer`: the
    positions fed before (rows of the network's inputs), which a loop may begin in and a
    rebuilt state (`Sampling.refresh`) starts from. `clock`, for a network that is told where
    in the beat each onset falls: it tells the network, and keeps the onsets on the grid."""
    probabilities, state = primed
    with_bass = decoder.bass_head is not None
    generated = np.empty((length, len(probabilities) + with_bass), dtype=np.int32)
    primer = () if primer is None else primer
    loops = LoopGuard(sampling.loop_limit, [int(row[0]) for row in primer])
    window = deque(primer, maxlen=decoder.config.sequence_length)  # what a rebuilt state starts from
    phase = None if clock is None else clock.start
    for i in range(length):
        heads = list(probabilities)
        heads[0] = loops.allowed(heads[0])
        if clock is not None:
            heads[1] = clock.on_grid(heads[1], phase)
        drawn = [sample(p, rng, sampling) for p in heads]
        loops.add(drawn[0])
        if with_bass:
            basses = decoder.bass_probabilities(state, drawn[0]) * _bass_mask(vocabulary.tokens[drawn[0]])
            drawn.append(sample(basses / basses.sum(), rng, sampling) if basses.sum() > 0
                         else int(np.flatnonzero(_bass_mask(vocabulary.tokens[drawn[0]]))[0]))
        generated[i] = drawn
        if clock is not None:
            phase = clock.after(phase, drawn[1])
            drawn = drawn + [phase]
        window.append(drawn)
        if sampling.refresh is not None and (i + 1) % sampling.refresh == 0:
            probabilities, state = decoder.prime(window)
        else:
            probabilities, state = decoder.step(drawn, state)
    return generated


_bass_mask = lru_cache(maxsize=8192)(allowed_basses)


class LoopGuard:
    """Keeps a token sequence out of loops: knows, for each period up to LOOP_PERIOD, how long
    the stretch repeating that period at the end of the sequence is, and takes away the
    probability of the token that would carry a stretch past `limit` tokens."""

    def __init__(self, limit: int | None, tokens):
        self.limit, self.tokens = limit, []
        self.runs = np.zeros(LOOP_PERIOD + 1, dtype=np.int64)  # runs[p]: positions equal to the one p before
        for token in tokens:
            self.add(int(token))

    def add(self, token: int) -> None:
        for period in range(1, LOOP_PERIOD + 1):
            repeats = len(self.tokens) >= period and self.tokens[-period] == token
            self.runs[period] = self.runs[period] + 1 if repeats else 0
        self.tokens.append(token)

    def allowed(self, probabilities: np.ndarray) -> np.ndarray:
        if self.limit is None:
            return probabilities
        banned = sorted({self.tokens[-period] for period in range(1, LOOP_PERIOD + 1)
                         if len(self.tokens) >= period and self.runs[period] + period + 1 > self.limit})
        if not banned:
            return probabilities
        kept = probabilities.copy()
        kept[banned] = 0.0
        if kept.sum() <= 0:  # the network sees nothing else at all: anything else, evenly
            kept = np.ones_like(probabilities)
            kept[banned] = 0.0
        return kept / kept.sum()


def play(tokens: list[str], classes: np.ndarray | None, expression: Expression | None,
         after: float | None, voicing: list[tuple[int, ...]], tempo: float = 120.0,
         first_onset: float = 0.0) -> list[Event]:
    """Generated tokens as events, after an onset at `after` (None: the first token opens the
    piece, `first_onset` quarters in), each with its pitches from `voicing`: their own timing
    and loudness when the model has heads for them, the paper's fixed step otherwise. A rhythm
    in seconds is placed for an output at `tempo`."""
    if expression is None or classes is None:
        start = 0.0 if after is None else after + PAPER_STEP
        return [Event(e.token, start + e.offset, e.duration, e.velocity, pitches)
                for e, pitches in zip(fixed_step(tokens), voicing)]
    offsets = expression.quarters(np.cumsum([expression.ioi[c] for c in classes[:, 0]]), tempo)
    offsets = offsets - offsets[0] + first_onset if after is None else offsets + after
    durations = expression.quarters([expression.duration[d] for d in classes[:, 1]], tempo)
    return [Event(token, float(offset), float(duration), expression.velocity[v], pitches)
            for token, offset, duration, (_, _, v, *_), pitches in zip(tokens, offsets, durations, classes, voicing)]


def voice(tokens: list[str], basses: np.ndarray | None, voicings: Voicings, previous: tuple[int, ...] | None,
          rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The pitches of each token: single pitches as they are; chords over the bass the network
    drew (`basses`), or else over a bass chosen near the previous one, in a voicing the corpus
    uses for such chords, its top note led from the previous onset's as the corpus leads it.
    `previous`: the pitches of the onset before the first token, if any."""
    voiced = []
    previous_bass = min(previous) if previous else None
    previous_top = max(previous) if previous else None
    for i, token in enumerate(tokens):
        if basses is not None:
            bass = int(basses[i])
        elif is_chord(token):
            bass = voicings.choose_bass(token, previous_bass, rng)
        else:
            bass = None
        pitches = (tuple(voicings.voice(token, bass, rng, previous_top)) if bass is not None
                   else tuple(token_pitches(token)))
        voiced.append(pitches)
        previous_bass = min(pitches) if is_chord(token) or min(pitches) < 60 else previous_bass
        previous_top = max(pitches)
    return voiced


def compose(config: GenerateConfig, model: TrainedModel | None = None) -> Composition:
    """Prime the network once, then draw `config.length` positions; with `max_copy`, draw again
    (the same seeded stream goes on) while a longer run than that is copied from the corpus.
    `model`: `config.model_dir` already loaded, to compose several pieces from one load."""
    from lstm_composer.decoder import Decoder

    model = model or TrainedModel.load(config.model_dir)
    vocabulary, expression = model.vocabulary, model.expression
    rng = np.random.default_rng(config.seed)
    voicing_rng = np.random.default_rng([config.seed, 1])  # voicings do not change what is drawn
    stream = model.corpus()
    if config.primer_path:
        primer = primer_from_file(config.primer_path, vocabulary, expression, config.onset_tolerance_ms,
                                  config.tempo, bass=model.config.bass, phase=model.config.phase)
    else:
        primer = primer_from_corpus(stream, vocabulary, model.config, rng, model.validation_pieces)
    decoder = Decoder(model.network, model.config, len(vocabulary))
    positions = np.array(vocabulary.encode(primer.tokens), dtype=np.int32)[:, None]
    if expression is not None:
        positions = np.concatenate([positions, primer.attributes], axis=1)
    primed = decoder.prime(positions)

    clock = None
    if model.config.phase:
        training = np.repeat([piece not in model.validation_pieces for piece in stream.piece_ids],
                             np.diff(stream.bounds))
        clock = BeatClock.of(expression, primer.last_phase, stream.phase[training], config.sampling.grid_share)
    fewest = None  # the shortest copy of the tries that copied too much
    for tries in range(1, config.max_tries + 1):
        generated = continuation(decoder, primed, config.length, rng, config.sampling, vocabulary,
                                 positions, clock)
        copy = longest_copy(generated[:, 0], stream)
        if config.max_copy is None or copy.length <= config.max_copy:
            break
        fewest = copy.length if fewest is None else min(fewest, copy.length)
    else:
        raise GenerationError(
            f"in {config.max_tries} tries every piece copied more than --max-copy {config.max_copy} "
            f"tokens from the corpus (the least was {fewest}); allow more with --max-copy, or sample "
            f"more freely with a higher --temperature or without --top-k/--top-p")
    tokens = vocabulary.decode(generated[:, 0])
    classes = generated[:, 1:] if expression is not None else None
    shown = primer.events if primer.source == "file" else []
    if shown and expression is None:
        shown = [Event(e.token, e.offset, e.duration, e.velocity, p.voiced)
                 for e, p in zip(fixed_step(primer.tokens), shown)]
    basses = generated[:, model.config.heads.index("bass")] if model.config.bass else None
    voicing = voice(tokens, basses, model.voicings, tuple(shown[-1].pitches) if shown else None, voicing_rng)
    first_onset = 0.0  # a piece after a training window starts where in the beat the network put it
    if not shown and expression is not None and expression.unit == "beats" and primer.last_phase is not None:
        count = expression.phases
        first_onset = int(beat_phase(primer.last_phase / count + expression.ioi[classes[0, 0]], count)) / count
    events = shown + play(tokens, classes, expression, shown[-1].offset if shown else None, voicing,
                          config.tempo, first_onset)
    generated_events = events[len(shown):]
    gaps = {round(b.offset - a.offset, 6) for a, b in zip(generated_events, generated_events[1:])}
    report = Report(
        generated_tokens=len(generated), distinct_tokens=len(set(generated[:, 0].tolist())),
        distinct_onset_gaps=len(gaps), distinct_durations=len({e.duration for e in generated_events}),
        distinct_velocity_bins=len({e.velocity for e in generated_events}),
        longest_copy=copy, longest_cycle=longest_cycle(generated[:, 0]),
        primer={"source": primer.source, **primer.detail}, seed=config.seed,
        sampling=asdict(config.sampling), tries=tries)
    return Composition(tokens=[e.token for e in shown] + tokens, events=events, primer_length=len(shown),
                       report=report)
