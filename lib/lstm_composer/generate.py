"""Generation from a trained model directory, locally, without Spark.

`compose` reads as its steps: a primer (`primers`), the network decoded step by step
(`decoder.Decoder`: the primer goes in once, then one position per step with the LSTM states
carried along, instead of a whole window through Keras for every token as the paper did; every
`Sampling.refresh` positions the state is rebuilt from the last window, so that it never holds
much more than the network trained on), each position drawn by the sampling rules
(`sampling`) from a seeded generator, so the same seed gives the same piece; then the tokens
voiced and played (`voicing.voice_tokens`, `events.play`), and a report of what was copied from
the corpus and whether it loops (`originality`). `render.write_piece` writes the files.
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from lstm_composer.events import Event, fixed_step, play
from lstm_composer.expression import beat_phase
from lstm_composer.model_dir import ModelDir, TrainedModel
from lstm_composer.originality import CopiedRun, Report, longest_copy, longest_cycle
from lstm_composer.primers import GenerationError, Primer, primer_from_corpus, primer_from_file
from lstm_composer.render.midi import MAX_TEMPO, MIN_TEMPO
from lstm_composer.sampling import BeatClock, LoopGuard, Sampling, sample
from lstm_composer.tokens import Vocabulary
from lstm_composer.voicing import allowed_basses, voice_tokens

__all__ = ["Composition", "GenerateConfig", "GenerationError", "Sampling", "compose"]


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
class Composition:
    tokens: list[str]  # the primer file's tokens (when there is one), then the generated ones
    events: list[Event]  # the same tokens as played
    primer_length: int  # how many of `tokens` come from the primer file
    report: Report


def compose(config: GenerateConfig, model: TrainedModel | None = None) -> Composition:
    """Prime the network once, then draw `config.length` positions; with `max_copy`, draw again
    (the same seeded stream goes on) while a longer run than that is copied from the corpus.
    `model`: `config.model_dir` already loaded, to compose several pieces from one load."""
    from lstm_composer.decoder import Decoder

    model = model or ModelDir(config.model_dir).load()
    rng = np.random.default_rng(config.seed)
    voicing_rng = np.random.default_rng([config.seed, 1])  # voicings do not change what is drawn
    primer = choose_primer(config, model, rng)
    decoder = Decoder(model.network, model.config, len(model.vocabulary))
    generated, copy, tries = draw(config, model, decoder, primer, rng)
    shown, events = perform(config, model, primer, generated, voicing_rng)
    report = describe(config, primer, generated, events[len(shown):], copy, tries)
    tokens = model.vocabulary.decode(generated[:, 0])
    return Composition(tokens=[e.token for e in shown] + tokens, events=events, primer_length=len(shown),
                       report=report)


def choose_primer(config: GenerateConfig, model: TrainedModel, rng: np.random.Generator) -> Primer:
    """The user's MIDI file, or a window of a training piece drawn by `rng`."""
    if config.primer_path:
        return primer_from_file(config.primer_path, model.vocabulary, model.expression, config.onset_tolerance_ms,
                                config.tempo, bass=model.config.bass, phase=model.config.phase)
    return primer_from_corpus(model.tokens(), model.vocabulary, model.config, rng, model.held_out)


def draw(config: GenerateConfig, model: TrainedModel, decoder, primer: Primer,
         rng: np.random.Generator) -> tuple[np.ndarray, CopiedRun, int]:
    """(the generated positions, the longest run they copy from a corpus piece, the tries it took)."""
    vocabulary, stream = model.vocabulary, model.tokens()
    positions = np.array(vocabulary.encode(primer.tokens), dtype=np.int32)[:, None]
    if model.expression is not None:
        positions = np.concatenate([positions, primer.attributes], axis=1)
    primed = decoder.prime(positions)
    clock = None
    if model.config.phase:
        held_out = set(model.held_out)
        training = np.repeat([piece not in held_out for piece in stream.piece_ids], np.diff(stream.bounds))
        clock = BeatClock.of(model.expression, primer.last_phase, stream.phase[training], config.sampling.grid_share)
    fewest = None  # the shortest copy of the tries that copied too much
    for tries in range(1, config.max_tries + 1):
        generated = continuation(decoder, primed, config.length, rng, config.sampling, vocabulary, positions, clock)
        copy = longest_copy(generated[:, 0], stream)
        if config.max_copy is None or copy.length <= config.max_copy:
            return generated, copy, tries
        fewest = copy.length if fewest is None else min(fewest, copy.length)
    raise GenerationError(
        f"in {config.max_tries} tries every piece copied more than --max-copy {config.max_copy} "
        f"tokens from the corpus (the least was {fewest}); allow more with --max-copy, or sample "
        f"more freely with a higher --temperature or without --top-k/--top-p")


def perform(config: GenerateConfig, model: TrainedModel, primer: Primer, generated: np.ndarray,
            rng: np.random.Generator) -> tuple[list[Event], list[Event]]:
    """(the primer file's events, shown before the new ones; every event of the piece): the
    generated tokens voiced and played after them."""
    expression = model.expression
    tokens = model.vocabulary.decode(generated[:, 0])
    classes = generated[:, 1:] if expression is not None else None
    shown = primer.events if primer.source == "file" else []
    if shown and expression is None:
        shown = [Event(e.token, e.offset, e.duration, e.velocity, p.voiced)
                 for e, p in zip(fixed_step(primer.tokens), shown)]
    basses = generated[:, model.config.heads.index("bass")] if model.config.bass else None
    voicing = voice_tokens(tokens, basses, model.voicings, tuple(shown[-1].pitches) if shown else None, rng)
    first_onset = 0.0  # a piece after a training window starts where in the beat the network put it
    if not shown and expression is not None and expression.unit == "beats" and primer.last_phase is not None:
        count = expression.phases
        first_onset = int(beat_phase(primer.last_phase / count + expression.ioi[classes[0, 0]], count)) / count
    return shown, shown + play(tokens, classes, expression, shown[-1].offset if shown else None, voicing,
                               config.tempo, first_onset)


def describe(config: GenerateConfig, primer: Primer, generated: np.ndarray, events: list[Event],
             copy: CopiedRun, tries: int) -> Report:
    """The report of the generated positions and their `events`."""
    gaps = {round(b.offset - a.offset, 6) for a, b in zip(events, events[1:])}
    return Report(
        generated_tokens=len(generated), distinct_tokens=len(set(generated[:, 0].tolist())),
        distinct_onset_gaps=len(gaps), distinct_durations=len({e.duration for e in events}),
        distinct_velocity_bins=len({e.velocity for e in events}),
        longest_copy=copy, longest_cycle=longest_cycle(generated[:, 0]),
        primer={"source": primer.source, **primer.detail}, seed=config.seed,
        sampling=asdict(config.sampling), tries=tries)


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
