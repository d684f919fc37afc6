"""Generation from a trained model directory, locally, without Spark.

`compose` reads as its steps: the musician's controls made concrete for the model (`for_model`:
a key, a number of bars, a density), a primer (`primers`), the network decoded step by step
(`decoder.Decoder`: the primer goes in once, then one position per step with the LSTM states
carried along, instead of a whole window through Keras for every token as the paper did; every
`Sampling.refresh` positions the state is rebuilt from the last window, so that it never holds
much more than the network trained on), each position drawn by the sampling rules
(`sampling`) from a seeded generator, so the same seed gives the same piece; then the tokens
voiced and played (`voicing.voice_tokens`, `events.play`), and a report of what was copied from
the corpus and whether it loops (`originality`); a piece of so many bars gets its ending
(`ending.with_ending`), one of so many tokens ends at a bar line (`ending.at_a_bar_line`).
`render.write_piece` writes the files.
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np

from lstm_composer.conductor import Conductor, KeyChanges
from lstm_composer.ending import at_a_bar_line, with_ending
from lstm_composer.events import Event, fixed_step, play
from lstm_composer.form import key_scores
from lstm_composer.metre import PHRASE_BARS, Metre, bar_offset
from lstm_composer.model_dir import ModelDir, TrainedModel
from lstm_composer.originality import CopiedRun, Report, longest_copy, longest_cycle
from lstm_composer.primers import (GenerationError, Primer, primer_from_corpus, primer_from_file, primer_from_tokens,
                                   read_file)
from lstm_composer.redo import (CANDIDATES, Bars, as_tokens, at_their_level, kept_loss, kept_notes, lead_in, passage,
                                 placed)
from lstm_composer.render.midi import MAX_TEMPO, MIN_TEMPO
from lstm_composer.reprise import Form, Reprise
from lstm_composer.sampling import (BeatClock, CopyGuard, KeyBalance, LoopGuard, Sampling, TokenRules, key_fit,
                                   not_before, pitch_classes, sample, scale_mask, toward_density)
from lstm_composer.statistics import DENSITY_LEVELS
from lstm_composer.tokens import Token, Vocabulary
from lstm_composer.voicing import allowed_basses, voice_tokens

__all__ = ["Composition", "GenerateConfig", "GenerationError", "Sampling", "compose"]


@dataclass(frozen=True)
class GenerateConfig:
    model_dir: str
    length: int = 500  # new tokens
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    primer_path: str | None = None  # a MIDI file to continue; otherwise a random training window
    # No token is drawn that would carry a run copied from one corpus piece past this many
    # tokens (`sampling.CopyGuard`; a window played again, `form`, stops there). None: any.
    max_copy: int | None = 16
    onset_tolerance_ms: float | None = None  # how the primer's notes form tokens, as the parse job's flag
    tempo: float = 120.0  # of the output: where a model's rhythm is in seconds, it is written at this tempo
    form: Form | None = field(default_factory=Form)  # windows that play an earlier one again (models told
    # where in the beat they are); None: never
    modulate: bool = True  # a network told its key: change it as the corpus does (False: hold the primer's)
    # Onsets per quarter to keep to, for a network told where in the beat it is; None: wherever
    # the network goes.
    density: float | str | None = None  # or "low", "medium", "high": the training pieces' quartiles
    key: int | None = None  # the key the piece is in (`form.KEY_NAMES`): a training window moved into it, held
    bars: int | None = None  # a piece of this many bars that ends on its tonic (`ending.py`), in place of `length`
    keep_primer: bool = False  # a primer file's own notes start the output (otherwise only what follows them)
    redo: Bars | None = None  # these bars of the primer file written anew, the rest kept (`redo.py`)
    # Drafts drawn, one kept: for `redo` the passage after which the network finds the kept bars
    # likeliest, for `style` the piece it finds most in the style.
    candidates: int = CANDIDATES
    style: str | None = None  # one of the model's style labels (`ModelConfig.styles`): a window of its pieces, told so

    def __post_init__(self) -> None:
        if not MIN_TEMPO <= self.tempo <= MAX_TEMPO:
            raise ValueError(f"tempo must be between {MIN_TEMPO:.2f} and {MAX_TEMPO:,.0f} BPM, got {self.tempo}")
        if self.length < 1:
            raise ValueError(f"length must be at least 1, got {self.length}")
        if self.max_copy is not None and self.max_copy < 1:
            raise ValueError(f"max_copy must be at least 1, got {self.max_copy}")
        if self.bars is not None and (self.bars < 2 or self.primer_path):
            raise ValueError(f"bars must be at least 2 (the last holds the final chord), and a piece of so many bars "
                             f"starts from a training window, not a --primer file; got {self.bars}"
                             + (" with a primer" if self.primer_path else ""))
        if self.key is not None and self.primer_path:
            raise ValueError("--key moves a training window into the key; a --primer file keeps its own: "
                             "transpose the file, or leave out one of the two")
        if self.redo is not None and (not self.primer_path or self.candidates < 1):
            raise ValueError("--redo writes bars of a --primer file anew: give the file"
                             if not self.primer_path else f"candidates must be at least 1, got {self.candidates}")
        if self.key is not None and not 0 <= self.key < 24:
            raise ValueError(f"key must be one of the 24 (0-23), got {self.key}")
        if isinstance(self.density, str) and self.density not in DENSITY_LEVELS:
            raise ValueError(f"density is a number of onsets per quarter or one of {', '.join(DENSITY_LEVELS)}, "
                             f"got {self.density!r}")
        if isinstance(self.density, (int, float)) and not 0 < self.density <= 16:
            raise ValueError(f"density must be above 0 and at most 16 onsets per quarter, got {self.density}")


@dataclass(frozen=True)
class Composition:
    tokens: list[str]  # the primer file's tokens (when there is one), then the generated ones
    events: list[Event]  # the same tokens as played, from the start of a bar
    primer_length: int  # how many of `tokens` come from the primer file
    report: Report
    metre: Metre = Metre(4, 4)  # the bars it is written in


def compose(config: GenerateConfig, model: TrainedModel | None = None) -> Composition:
    """Prime the network once, then draw `config.length` positions (or `config.bars` bars).
    `model`: `config.model_dir` already loaded, to compose several pieces from one load."""
    from lstm_composer.decoder import Decoder, Guided

    model = model or ModelDir(config.model_dir).load()
    config = for_model(config, model)
    rng = np.random.default_rng(config.seed)
    voicing_rng = np.random.default_rng([config.seed, 1])  # voicings do not change what is drawn
    decoder = Decoder(model.network, model.config, len(model.vocabulary))
    if config.style and config.sampling.style_guidance:
        decoder = Guided(decoder, config.sampling.style_guidance)
    if config.redo:
        return redo(config, model, decoder, rng, voicing_rng)
    primer, (generated, times, _), echoes, copy = draft(config, model, decoder, rng)
    shown, events = perform(config, model, primer, generated, echoes, times, voicing_rng)
    metre = primer.last.metre if primer.last else Metre(4, 4)
    if config.bars:
        events = with_ending(events, float(metre.quarters), config.bars, config.key)
    else:
        events = at_a_bar_line(events, float(metre.quarters))
    report = describe(config, primer, generated, events[len(shown):], copy)
    tokens = [e.token for e in events[len(shown):]] if config.bars else model.vocabulary.decode(generated[:, 0])
    return Composition(tokens=[e.token for e in shown] + tokens, events=events, primer_length=len(shown),
                       report=report, metre=metre)


def for_model(config: GenerateConfig, model: TrainedModel) -> GenerateConfig:
    """The musician's controls made concrete for `model`: refused where it cannot honour them, the
    scale kept for a key asked for, a named density as the corpus's rate."""
    for asked, flag in ((config.bars, "--bars"), (config.redo, "--redo")):
        if asked is not None and not model.config.metre:
            raise GenerationError(f"{flag} needs a model told where its bars fall (small, expressive); "
                                  f"{model.config.name} is not")
    if config.density is not None and not model.config.expressive:
        raise GenerationError(f"--density needs a model with a rhythm head; {model.config.name} writes every token "
                              f"half a beat apart")
    if config.key is not None:  # a key asked for: held, and its scale kept
        config = replace(config, sampling=replace(config.sampling, in_scale=True))
    if isinstance(config.density, str):
        config = replace(config, density=model.density_levels()[config.density])
    if config.style is not None:
        known = {label.casefold(): label for label in model.config.styles}
        if not known:
            raise GenerationError("--style needs a model trained with style labels (train.py --style-from)")
        if config.style.casefold() not in known:
            raise GenerationError(f"--style {config.style!r} is none of the model's: {', '.join(model.config.styles)}")
        config = replace(config, style=known[config.style.casefold()])
    return config


def style_index(config: GenerateConfig, model: TrainedModel) -> int:
    """The style the network is told: its index in the model's labels from 1, 0 for none."""
    return model.config.styles.index(config.style) + 1 if config.style else 0


def choose_primer(config: GenerateConfig, model: TrainedModel, rng: np.random.Generator) -> Primer:
    """The user's MIDI file, or a window of a training piece drawn by `rng`."""
    if config.primer_path:
        return primer_from_file(config.primer_path, model.vocabulary, model.expression, config.onset_tolerance_ms,
                                config.tempo, model.config, style_index(config, model))
    return primer_from_corpus(model.tokens(), model.vocabulary, model.config, rng, model.held_out,
                              model.time_signatures() if model.config.metre else None, config.key,
                              style_index(config, model),
                              np.array(model.expression.ioi) if model.expression else None)


def start_conductor(config: GenerateConfig, model: TrainedModel, primer: Primer, rng: np.random.Generator,
                    clock: BeatClock) -> Conductor:
    """Where the generated positions fall, from the primer's last onset on: its place in the bar
    (time counted from that bar's start) or only in the beat; the key it holds or changes."""
    last, changes = primer.last, None
    key = last.key if model.config.key else None
    if key is not None and config.modulate and config.key is None:  # a key asked for is held
        stream = model.tokens()
        training = stream.rows(set(stream.piece_ids) - set(model.held_out))
        pieces = [(stream.bounds[i], stream.bounds[i + 1]) for i in training]
        changes = KeyChanges.count(stream.key, stream.key_window, pieces)
    if model.config.metre:
        return Conductor(model.config, clock.steps, len(clock.grid), last.bar_position, last.metre, 0, last.bar,
                         key, changes, rng, last.style)
    return Conductor(model.config, clock.steps, len(clock.grid), last.phase, key=key, changes=changes, rng=rng,
                     style=last.style)


def draft(config: GenerateConfig, model: TrainedModel, decoder,
          rng: np.random.Generator) -> tuple[Primer, Drawn, list[int], CopiedRun]:
    """A primer and what `draw` draws after it. For a style asked for, `config.candidates` of
    them, each from its own window of the style's pieces, and the one kept that the network
    finds most in the style (`decoder.style_evidence`: every head's choice told the style
    against told none); the report gives how much."""
    from lstm_composer.decoder import Guided, style_evidence

    drafts = []
    for _ in range(config.candidates if config.style else 1):
        primer = choose_primer(config, model, rng)
        drafts.append((primer, *draw(config, model, decoder, primer, rng)))
    if not config.style:
        return drafts[0]
    plain = decoder.decoder if isinstance(decoder, Guided) else decoder  # the network as it is
    evidence = [style_evidence(plain, primer.positions(model.vocabulary), drawn.fed) for primer, drawn, *_ in drafts]
    primer, *drawn = drafts[int(np.argmax(evidence))]
    return (replace(primer, detail={**primer.detail, "candidates": len(drafts),
                                    "style_evidence": round(max(evidence), 4)}), *drawn)


def draw(config: GenerateConfig, model: TrainedModel, decoder, primer: Primer,
         rng: np.random.Generator) -> tuple[Drawn, list[int], CopiedRun]:
    """(what is drawn after `primer`, for each position the position it plays again or -1, the
    longest run the positions copy from a corpus piece)."""
    vocabulary, stream = model.vocabulary, model.tokens()
    positions = primer.positions(vocabulary)
    clock = beat_clock(config, model, primer)
    timing = start_conductor(config, model, primer, rng, clock) if clock else None
    plan = None
    if clock and config.form:
        bar = primer.last.metre.steps if model.config.metre else 4 * len(clock.grid)
        plan = Reprise(config.form, bar, clock.steps, len(clock.grid), rng)
    length = config.length if config.bars is None else config.bars * primer.last.metre.steps  # at most
    steering = Steering(rules=token_rules(config, model, positions, timing), clock=clock, timing=timing, plan=plan,
                        density=config.density, bars=config.bars,
                        closing_key=fitting_key(model) if timing and config.key is None else None)
    drawn = continuation(decoder, decoder.prime(positions), length, rng, config.sampling, vocabulary, positions,
                         steering)
    copy = longest_copy(drawn.positions[:, 0], stream, model.token_index)
    return drawn, plan.echoes if plan else [-1] * len(drawn.positions), copy


def fitting_key(model: TrainedModel) -> Callable[[np.ndarray], int]:
    """The key (`form.KEY_NAMES`) that generated positions fit best: how long each pitch class
    sounds in them (by each position's duration class), against the key profiles."""
    members = pitch_classes(tuple(model.vocabulary.tokens)).astype(np.float64)
    heads = model.config.heads
    durations = np.asarray(model.expression.duration) if "duration" in heads else None

    def key_of(generated: np.ndarray) -> int:
        lengths = durations[generated[:, heads.index("duration")]] if durations is not None else np.ones(len(generated))
        return int(np.argmax(key_scores(lengths @ members[generated[:, 0]])))
    return key_of


def token_rules(config: GenerateConfig, model: TrainedModel, positions: np.ndarray,
                timing: Conductor | None) -> TokenRules:
    """The rules each token drawn after `positions` passes (`sampling.TokenRules`), as `config` asks."""
    sampling, tokens = config.sampling, tuple(model.vocabulary.tokens)
    keyed = timing is not None and timing.key is not None
    return TokenRules(LoopGuard(sampling.loop_limit, [int(row[0]) for row in positions], token_cap(config, model)),
                      copy_guard(config, model), key_balance(config, model, positions),
                      key_fit(tokens) if keyed and sampling.key_weight else None,
                      scale_mask(tokens) if keyed and sampling.in_scale else None, sampling.key_weight)


def copy_guard(config: GenerateConfig, model: TrainedModel) -> CopyGuard | None:
    """The guard that keeps a piece from copying more than `config.max_copy` tokens of one corpus piece."""
    if config.max_copy is None:
        return None
    stream = model.tokens()
    return CopyGuard(config.max_copy, stream.ids, stream.bounds, model.token_index)


def token_cap(config: GenerateConfig, model: TrainedModel) -> int | None:
    """How often one token may be drawn in `sampling.REPEAT_WINDOW` tokens, by the training pieces."""
    quantile = config.sampling.repeat_quantile
    return None if quantile is None else model.repeat_cap(quantile)


def beat_clock(config: GenerateConfig, model: TrainedModel, primer: Primer) -> BeatClock | None:
    """For a network told where in the beat each onset falls: the beat grid of its training pieces."""
    if not model.config.phase:
        return None
    return BeatClock.of(model.expression, primer.last.phase, model.tokens().phase[model.training_tokens],
                        config.sampling.grid_share)


def key_balance(config: GenerateConfig, model: TrainedModel, positions: np.ndarray) -> KeyBalance | None:
    """For a key asked for, of a network told its key: the training pieces' shares of pitch
    classes in that key's mode to keep near, counted from the primer's tokens (`positions`) on."""
    if config.key is None or not model.config.key or not config.sampling.key_balance:
        return None
    return KeyBalance(pitch_classes(tuple(model.vocabulary.tokens)), model.mode_shares, config.sampling.key_balance,
                      [row[0] for row in positions])


def redo(config: GenerateConfig, model: TrainedModel, decoder, rng: np.random.Generator,
         voicing_rng: np.random.Generator) -> Composition:
    """The primer file with bars `config.redo` written anew (`redo.py`): `config.candidates`
    passages drawn after the bars before them (the network first hears how the kept bars after
    them begin: `lead_in`), each stopping at the bar line where the file goes on; the one after
    which the network's loss on the kept bars is lowest is kept."""
    vocabulary, expression = model.vocabulary, model.expression
    piece, tokens, content = read_file(config.primer_path, config.onset_tolerance_ms)
    bars = passage(config.primer_path, piece, tokens, config.redo)
    style = style_index(config, model)
    primer = primer_from_tokens(config.primer_path, piece, bars.before, vocabulary, expression, config.tempo,
                                model.config, style)
    positions = primer.positions(vocabulary)
    clock = beat_clock(config, model, primer)
    origin = bar_offset(piece.time_signatures, primer.last.bar)  # where the conductor counts from
    span = tuple(int(round((at - origin) * expression.phases)) for at in (bars.start, bars.end))
    first = next(t for t in bars.before if t.token in vocabulary.index)
    lead = first.offset - primer.events[0].offset  # the bars the primer's events leave out

    def rows(within: list[Token]) -> list[np.ndarray]:  # the network's inputs before the kept bars after, and in them
        fed = primer_from_tokens(config.primer_path, piece, bars.before + within + bars.after, vocabulary, expression,
                                 config.tempo, model.config, style).positions(vocabulary)
        return np.split(fed, [len(fed) - sum(t.token in vocabulary.index for t in bars.after)])

    heard = lead_in(positions, rows([])[1], model.config.sequence_length)
    primed = decoder.prime(heard)
    kept, drawn = kept_notes(content, bars.start, bars.end), []
    for _ in range(config.candidates):
        timing = start_conductor(config, model, primer, rng, clock)
        steering = Steering(rules=token_rules(config, model, positions, timing), clock=clock, timing=timing,
                            density=config.density, span=span)
        generated, times, _ = continuation(decoder, primed, span[1] - span[0] + 1, rng, config.sampling, vocabulary,
                                           heard, steering)
        shown, events = perform(replace(config, keep_primer=True), model, primer, generated, [-1] * len(generated),
                                times, voicing_rng)
        new = at_their_level(placed(events[len(shown):], lead, bars.start, bars.end, kept), kept, bars)
        loss = kept_loss(decoder, *rows(as_tokens(new))) if bars.after else None  # the file's last bars: no join
        drawn.append((loss, generated, new))
    loss, generated, new = min(drawn, key=lambda candidate: candidate[0] or 0.0)
    original = kept_loss(decoder, *rows(bars.within)) if bars.after else None
    events = sorted(kept + new, key=lambda e: (e.offset, e.pitches))
    primer = replace(primer, detail={**primer.detail, "redo": str(config.redo), "candidates": config.candidates,
                                     "kept_loss": loss and round(loss, 4),
                                     "kept_loss_after_original": original and round(original, 4)})
    report = describe(config, primer, generated, new, longest_copy(generated[:, 0], model.tokens(), model.token_index))
    return Composition(tokens=[e.token for e in events], events=events, primer_length=0, report=report,
                       metre=primer.last.metre)


def perform(config: GenerateConfig, model: TrainedModel, primer: Primer, generated: np.ndarray, echoes: list[int],
            times: list[int], rng: np.random.Generator) -> tuple[list[Event], list[Event]]:
    """(the primer file's events, shown before the new ones; every event of the piece): the
    generated tokens voiced and played after them, a position played again (`echoes`) with the
    pitches of the one it plays again. After a training window, the first onset falls where in
    its bar (or beat) the network put it (`times`)."""
    expression = model.expression
    tokens = model.vocabulary.decode(generated[:, 0])
    classes = generated[:, 1:] if expression is not None else None
    shown = primer.events if primer.source == "file" and config.keep_primer else []
    if shown and expression is None:
        shown = [Event(e.token, e.offset, e.duration, e.velocity, p.voiced)
                 for e, p in zip(fixed_step(primer.tokens), shown)]
    basses = generated[:, model.config.heads.index("bass")] if model.config.bass else None
    voicing = voice_tokens(tokens, basses, model.voicings, tuple(primer.events[-1].pitches) if primer.events else None,
                           rng, echoes)
    first_onset = 0.0
    if not shown and expression is not None and expression.unit == "beats" and primer.last is not None:
        count = expression.phases
        time = times[0] if times else primer.last.phase + int(np.rint(expression.ioi[classes[0, 0]] * count))
        first_onset = (time % (primer.last.metre.steps if model.config.metre else count)) / count
    return shown, shown + play(tokens, classes, expression, shown[-1].offset if shown else None, voicing,
                               config.tempo, first_onset)


def describe(config: GenerateConfig, primer: Primer, generated: np.ndarray, events: list[Event],
             copy: CopiedRun) -> Report:
    """The report of the generated positions and their `events`."""
    gaps = {round(b.offset - a.offset, 6) for a, b in zip(events, events[1:])}
    return Report(
        generated_tokens=len(generated), distinct_tokens=len(set(generated[:, 0].tolist())),
        distinct_onset_gaps=len(gaps), distinct_durations=len({e.duration for e in events}),
        distinct_velocity_bins=len({e.velocity for e in events}),
        longest_copy=copy, longest_cycle=longest_cycle(generated[:, 0]),
        primer={"source": primer.source, **primer.detail}, seed=config.seed,
        sampling=asdict(config.sampling))


@dataclass(frozen=True)
class Steering:
    """What steers `continuation` besides the network and the sampling rules; each part optional."""

    # Take tokens out or tilt them before each draw (`sampling.TokenRules`); None: only the
    # loop guard of the sampling rules.
    rules: TokenRules | None = None
    # For a network told where in the beat each onset falls: keeps the onsets on the grid.
    clock: BeatClock | None = None
    # Tells the network where each onset falls and in which key (`conductor.Conductor`).
    timing: Conductor | None = None
    # Has some windows begin by playing an earlier one again (`reprise.Reprise`), unless that
    # would copy the corpus further than the rules' copy guard allows.
    plan: Reprise | None = None
    # Onsets per quarter kept to, with `timing` (`sampling.toward_density`).
    density: float | None = None
    # Stop at the first onset in the last of this many bars from the first onset's bar (`timing`
    # knows the bars); the last phrase holds the key that `closing_key` finds the positions drawn
    # before it fit best.
    bars: int | None = None
    closing_key: Callable[[np.ndarray], int] | None = None
    # The first onset at `span[0]` or after it (where an onset gap reaches so far); stop before an
    # onset at `span[1]`.
    span: tuple[int, int] | None = None


class Drawn(NamedTuple):
    """What `continuation` draws."""

    positions: np.ndarray  # (length, heads) ids: the token, then each other head's class
    times: list[int]  # the time of each onset (beat phases, `Conductor`); empty without one
    fed: np.ndarray  # each position as the network was fed it: its ids, then the conductor's inputs


def continuation(decoder, primed: tuple, length: int, rng: np.random.Generator, sampling: Sampling,
                 vocabulary: Vocabulary | None = None, primer: np.ndarray | None = None,
                 steering: Steering = Steering()) -> Drawn:
    """Positions drawn one at a time after a primed (probabilities, state) pair: the token, and
    for an expressive model its onset gap, duration and velocity classes, and its bass when the
    network has a bass head (drawn after the token, among the pitches that can be the lowest
    note of that token: `vocabulary` names them).
    `primer`: the positions fed before (rows of the network's inputs), which a loop may begin
    in and a rebuilt state (`Sampling.refresh`) starts from. `steering`: the rules, the beat
    grid, the conductor, the form, the density, the bars or the span that also decide."""
    clock, timing, plan, density = steering.clock, steering.timing, steering.plan, steering.density
    bars, span, closing_key = steering.bars, steering.span, steering.closing_key
    probabilities, state = primed
    generated = np.empty((length, len(decoder.config.heads)), dtype=np.int32)
    primer = () if primer is None else primer
    rules = steering.rules or TokenRules(LoopGuard(sampling.loop_limit, [int(row[0]) for row in primer]))
    window = deque(primer, maxlen=decoder.config.sequence_length)  # what a rebuilt state starts from
    times, fed = [], []

    def done(count: int, last: tuple = ()) -> Drawn:  # the first `count` positions, and the rows fed (and `last`)
        return Drawn(generated[:count], times, np.array(fed + list(last), dtype=np.int64))

    def gap_rules(gaps: np.ndarray) -> np.ndarray:  # the onset gap's tilts, once the token is drawn
        if span and not times:  # the first onset
            gaps = not_before(gaps, clock.steps, span[0] - timing.time)
        if timing is not None and density:
            gaps = toward_density(gaps, clock.steps, len(clock.grid), timing.density(), density)
        return gaps

    for i in range(length):
        drawn = plan.replay() if plan else None
        if drawn is not None and rules.copies_too_much(drawn[0]):
            plan.stop()  # a window played again ends where it would copy the corpus past the limit
            drawn = None
        if drawn is None:
            heads = list(probabilities)  # the token's, the onset gap's, ...: tilted by the rules that apply
            heads[0] = rules.tilt(heads[0], timing.key if timing is not None else None)
            drawn = draw_position(decoder, heads, state, rng, sampling, vocabulary, clock,
                                  timing.phase if timing else None, gap_rules)
        rules.add(drawn[0])
        generated[i] = drawn
        if timing is not None:
            timing.advance(drawn[1])
            if span and timing.time >= span[1]:
                return done(i)
            times.append(timing.time)
            if plan:
                timing.key = plan.add(drawn, timing.time, timing.key)
            if bars:
                into = times[-1] - times[0] + times[0] % timing.metre.steps  # from the first onset's bar
                if into >= (bars - 1) * timing.metre.steps:
                    return done(i + 1, last=(drawn + timing.inputs(),))
                if closing_key and timing.changes is not None and into >= (bars - PHRASE_BARS) * timing.metre.steps:
                    timing.close(closing_key(generated[:i + 1]))  # the last phrase
            drawn = drawn + timing.inputs()
        window.append(drawn)
        fed.append(drawn)
        if sampling.refresh is not None and (i + 1) % sampling.refresh == 0:
            probabilities, state = decoder.prime(window)
        else:
            probabilities, state = decoder.step(drawn, state)
    return done(length)


def draw_position(decoder, probabilities: list[np.ndarray], state, rng: np.random.Generator, sampling: Sampling,
                  vocabulary: Vocabulary | None, clock: BeatClock | None, phase: int | None,
                  gap_rules: Callable[[np.ndarray], np.ndarray] | None = None) -> list[int]:
    """One position drawn from the network's heads, the token first, by the sampling rules: the
    top-k and top-p cuts for the token only (on a confident rhythm or loudness head they would
    leave one value), the onset gap at its own temperature (`Sampling.gap_temperature`).
    `gap_rules` tilt the onset gap's probabilities, and `clock` keeps it on the beat grid. A
    network whose heads see the chosen token gives them once it is drawn; each token is first
    weighed by how likely its own gaps are to pass those tilts, so that a density or a grid
    asked for also chooses what is played, not only when."""
    def tilted(gaps: np.ndarray) -> np.ndarray:
        gaps = gap_rules(gaps) if gap_rules is not None else gaps
        return clock.on_grid(gaps, phase) if clock is not None else gaps

    tokens = probabilities[0]
    if decoder.given_heads and (gap_rules is not None or clock is not None):
        gaps = decoder.gaps_of_every_token(state)
        passing = gaps @ tilted(np.full(gaps.shape[1], 1.0 / gaps.shape[1]))  # each gap's weight
        tokens = tokens * passing / (tokens * passing).sum() if (tokens * passing).sum() > 0 else tokens
    token = sample(tokens, rng, sampling, vocabulary.chords if vocabulary is not None else None)
    heads = list(probabilities[1:]) + decoder.given(state, token)
    if heads:
        heads[0] = tilted(heads[0])
    drawn = [token] + [sample(p, rng, sampling.gaps if i == 0 else sampling.plain) for i, p in enumerate(heads)]
    if decoder.bass_head is not None:
        allowed = _bass_mask(vocabulary.tokens[drawn[0]])
        basses = decoder.bass_probabilities(state, drawn[0]) * allowed
        drawn.append(sample(basses / basses.sum(), rng, sampling) if basses.sum() > 0
                     else int(np.flatnonzero(allowed)[0]))
    return drawn


_bass_mask = lru_cache(maxsize=8192)(allowed_basses)
