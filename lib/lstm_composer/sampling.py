"""How the next position is drawn from the network's probabilities: the temperature and the
top-k / top-p cuts (`Sampling`, `sample`), and two rules that take tokens out before the draw:
no loop past a length (`LoopGuard`), no onset off the corpus's metric grid (`BeatClock`); for a
network told its key, tilts towards that key (`in_key`, `in_scale`, `KeyBalance`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np

from lstm_composer.expression import GRID_SHARE, Expression, metric_grid
from lstm_composer.form import KEY_PROFILES, MAJOR_SCALE
from lstm_composer.originality import TokenIndex
from lstm_composer.tokens import token_pitches

LOOP_PERIOD = 8  # patterns of up to this many tokens count as loops
REPEAT_WINDOW = 64  # tokens: the stretch in which `LoopGuard` counts how often each token was drawn
DENSITY_STRENGTH = 5.0  # how firmly generation keeps to a density of onsets (`toward_density`)
BALANCE_HALF_LIFE = 32  # tokens: how far back `KeyBalance` counts a piece's pitch classes, halving each time
BALANCE_PRIOR = 8.0  # tokens' worth of the corpus's own shares that `KeyBalance` starts from
BALANCE_FLOOR = 0.02  # shares of pitch classes below about this count as about equally rare (`KeyBalance`)


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn from the network's probabilities."""

    temperature: float = 1.0  # below 1: safer choices; above 1: more surprise
    # The onset gap's temperature, as a share of `temperature`. Drawn at the token's, the gaps
    # of an expressive network's pieces vary more than the corpus's (`make run`'s model: the
    # gaps' standard deviation 0.72 of their mean in an excerpt, the training pieces' 0.52):
    # after its own drawn positions the network is less sure of the rhythm than after real ones.
    gap_temperature: float = 0.8
    top_k: int | None = None  # draw only among the k likeliest tokens (1: always the likeliest)
    # Draw only among the likeliest tokens that together reach p: the long tail of a 1,000-token
    # vocabulary makes pieces wander out of their key and never repeat a figure. None: all.
    top_p: float | None = 0.9
    # The longest stretch of tokens that may repeat a pattern of up to LOOP_PERIOD tokens
    # (a note struck over and over, a figure going round): the token that would make it longer
    # is not drawn. Real pieces rarely hold such a stretch past 20 tokens; a network that can
    # copy can fall into one for good. None: no limit.
    loop_limit: int | None = 24
    # No token takes more of the last REPEAT_WINDOW tokens than it takes in this share of the
    # training pieces' windows of that length (`repeat_cap`): a network that can copy its own
    # last tokens falls into one note struck hundreds of times, interrupted just often enough
    # to pass `loop_limit`. None: no cap.
    repeat_quantile: float | None = 0.99
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
    # For a network told its key: each token's probability is multiplied by exp(key_weight x
    # how well its pitch classes fit the key, by the key's profile (`key_fit`)), so that the
    # piece keeps to its key as the corpus's passages do. 0: the network's probabilities as they are.
    key_weight: float = 0.7
    # Only tokens whose pitch classes all belong to the key's scale (a minor key's natural,
    # harmonic and melodic forms together): for a piece asked for in a key (`--key`).
    in_scale: bool = False
    # For a piece asked for in a key: how firmly each pitch class is kept near its share in the
    # corpus's passages in that key's mode (`KeyBalance`). 0: not at all.
    key_balance: float = 3.0
    # With --style: how far each head's prediction told the style is pushed away from the same
    # network's told no style (`decoder.Guided`; two steps a position). 0: told the style only.
    style_guidance: float = 0.0

    @cached_property
    def plain(self) -> "Sampling":
        """The same temperature, without the top-k and top-p cuts."""
        return Sampling(self.temperature, top_p=None, loop_limit=None, repeat_quantile=None, grid_share=None,
                        refresh=None, key_weight=0.0)

    @cached_property
    def gaps(self) -> "Sampling":
        """How an onset gap is drawn: `plain` at `gap_temperature` of the temperature."""
        return replace(self.plain, temperature=self.temperature * self.gap_temperature)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.gap_temperature <= 0:
            raise ValueError(f"gap_temperature must be positive, got {self.gap_temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.loop_limit is not None and self.loop_limit <= LOOP_PERIOD:
            raise ValueError(f"loop_limit must be above {LOOP_PERIOD}, got {self.loop_limit}")
        if self.repeat_quantile is not None and not 0.0 < self.repeat_quantile <= 1.0:
            raise ValueError(f"repeat_quantile must be in (0, 1], got {self.repeat_quantile}")
        if self.grid_share is not None and not 0.0 <= self.grid_share < 1.0:
            raise ValueError(f"grid_share must be in [0, 1), got {self.grid_share}")
        if self.style_guidance < 0:
            raise ValueError(f"style_guidance must be at least 0, got {self.style_guidance}")
        if self.refresh is not None and self.refresh < 1:
            raise ValueError(f"refresh must be at least 1 position, got {self.refresh}")
        if not 0.0 <= self.key_weight <= 5.0:
            raise ValueError(f"key_weight must be in [0, 5], got {self.key_weight}")
        if not 0.0 <= self.key_balance <= 5.0:
            raise ValueError(f"key_balance must be in [0, 5], got {self.key_balance}")


def sample(probabilities: np.ndarray, rng: np.random.Generator, sampling: Sampling,
           chords: np.ndarray | None = None) -> int:
    """One token id drawn from `probabilities` as `sampling` says. Ties in the top-k and
    top-p cuts keep the lower id, so top-k 1 is exactly the argmax.

    `chords` ((tokens,) bool: which are chords): the top-p cut is taken among the chords and
    among the notes each on its own. A vocabulary spreads its chords over many tokens, each
    rare; one cut over all of them keeps the few likely notes and drops most chords, so that a
    network's pieces would hold fewer chords than it predicts (the bundled corpus's tokens are
    53% chords; one cut at 0.9 left 37%, a cut per kind 54%)."""
    order = np.argsort(-probabilities, kind="stable")
    logits = np.log(np.maximum(probabilities[order], 1e-300)) / sampling.temperature
    weights = np.exp(logits - logits[0])
    kept = np.arange(len(order)) < (len(order) if sampling.top_k is None else sampling.top_k)
    if sampling.top_p is not None:
        kinds = np.zeros(len(order), dtype=bool) if chords is None else chords[order]
        for kind in (False, True):
            members = np.flatnonzero(kinds == kind)
            if len(members):
                cumulative = np.cumsum(weights[members]) / weights[members].sum()
                kept[members[int(np.searchsorted(cumulative, sampling.top_p)) + 1:]] = False
    weights = weights * kept
    return int(order[rng.choice(len(order), p=weights / weights.sum())])


class LoopGuard:
    """Keeps a token sequence out of loops: knows, for each period up to LOOP_PERIOD, how long
    the stretch repeating that period at the end of the sequence is, and takes away the
    probability of the token that would carry a stretch past `limit` tokens; with `cap`, also
    that of a token drawn `cap` times in the last REPEAT_WINDOW - 1 tokens."""

    def __init__(self, limit: int | None, tokens, cap: int | None = None):
        self.limit, self.cap, self.tokens = limit, cap, []
        self.runs = np.zeros(LOOP_PERIOD + 1, dtype=np.int64)  # runs[p]: positions equal to the one p before
        self.counts: Counter = Counter()  # each token's draws in the last REPEAT_WINDOW - 1 tokens
        for token in tokens:
            self.add(int(token))

    def add(self, token: int) -> None:
        for period in range(1, LOOP_PERIOD + 1):
            repeats = len(self.tokens) >= period and self.tokens[-period] == token
            self.runs[period] = self.runs[period] + 1 if repeats else 0
        self.tokens.append(token)
        self.counts[token] += 1
        if len(self.tokens) >= REPEAT_WINDOW:
            leaving = self.tokens[-REPEAT_WINDOW]
            self.counts[leaving] -= 1
            if not self.counts[leaving]:
                del self.counts[leaving]  # so that `banned` looks at the window's tokens only

    def banned(self) -> list[int]:
        looping = set() if self.limit is None else {
            self.tokens[-period] for period in range(1, LOOP_PERIOD + 1)
            if len(self.tokens) >= period and self.runs[period] + period + 1 > self.limit}
        crowding = set() if self.cap is None else {token for token, n in self.counts.items() if n >= self.cap}
        return sorted(looping | crowding)

    def allowed(self, probabilities: np.ndarray) -> np.ndarray:
        return without(probabilities, self.banned())


class CopyGuard:
    """Keeps a token sequence from copying the corpus: knows, for every corpus position, how many
    of the sequence's last tokens it ends a copy of (within one piece), and takes away the
    probability of each token that would carry such a copy past `limit` tokens."""

    def __init__(self, limit: int, ids: np.ndarray, bounds: np.ndarray, index: TokenIndex):
        self.limit, self.ids, self.index = limit, ids, index  # `index`: the ids' `TokenIndex`
        self.piece_start = np.zeros(len(ids) + 1, dtype=bool)
        self.piece_start[bounds] = True  # and the end of the corpus: nothing follows there
        self.ends = np.empty(0, dtype=np.int64)  # corpus positions that end a copy of the last tokens
        self.lengths = np.empty(0, dtype=np.int64)  # and how long each copy is

    def add(self, token: int) -> None:
        ends = self.index.positions(token)
        lengths = np.ones(len(ends), dtype=np.int64)
        if len(self.ends):
            before = np.minimum(np.searchsorted(self.ends, ends - 1), len(self.ends) - 1)
            goes_on = (self.ends[before] == ends - 1) & ~self.piece_start[ends]
            lengths[goes_on] = self.lengths[before[goes_on]] + 1
        self.ends, self.lengths = ends, lengths

    def banned(self) -> list[int]:
        following = self.ends[self.lengths >= self.limit] + 1
        return np.unique(self.ids[following[~self.piece_start[following]]]).tolist()

    def allowed(self, probabilities: np.ndarray) -> np.ndarray:
        return without(probabilities, self.banned())


def without(probabilities: np.ndarray, banned: list[int]) -> np.ndarray:
    """The token probabilities with the `banned` tokens taken out (the rest evenly where the
    network sees nothing else at all)."""
    if not banned:
        return probabilities
    kept = probabilities.copy()
    kept[banned] = 0.0
    if kept.sum() <= 0:
        kept = np.ones_like(probabilities)
        kept[banned] = 0.0
    return kept / kept.sum()


def repeat_cap(pieces, quantile: float) -> int:
    """How many times one token may be drawn in REPEAT_WINDOW tokens: the count of the most
    frequent token in a window (every 8th window of each piece's token ids in `pieces`) that
    `quantile` of the windows stay within; REPEAT_WINDOW where no piece is as long."""
    most = [np.unique(ids[start:start + REPEAT_WINDOW], return_counts=True)[1].max()
            for ids in pieces for start in range(0, len(ids) - REPEAT_WINDOW + 1, 8)]
    return int(np.ceil(np.quantile(most, quantile))) if most else REPEAT_WINDOW


class TokenRules:
    """The rules the token's probabilities pass before each draw, in this order, and what they
    remember of the tokens drawn: for a network told its key, the key's preference (`fit`: rows
    of `key_fit`, weighted by `key_weight`), its balance and its scale (`scale`: rows of
    `scale_mask`); then the loop guard with its cap, and the copy guard."""

    def __init__(self, loops: LoopGuard, copies: CopyGuard | None = None, balance: "KeyBalance | None" = None,
                 fit: np.ndarray | None = None, scale: np.ndarray | None = None, key_weight: float = 0.0):
        self.loops, self.copies, self.balance = loops, copies, balance
        self.fit, self.scale, self.key_weight = fit, scale, key_weight

    def tilt(self, probabilities: np.ndarray, key: int | None) -> np.ndarray:
        """The token probabilities as the rules leave them, in `key` (`form.KEY_NAMES`) or none."""
        if key is not None:
            if self.fit is not None:
                probabilities = in_key(probabilities, self.fit[key], self.key_weight)
            if self.balance is not None:
                probabilities = self.balance.tilt(probabilities, key)
            if self.scale is not None:
                probabilities = in_scale(probabilities, self.scale[key])
        probabilities = self.loops.allowed(probabilities)
        return probabilities if self.copies is None else self.copies.allowed(probabilities)

    def copies_too_much(self, token: int) -> bool:
        """Whether `token` would carry a run copied from one corpus piece past the copy guard's limit."""
        return self.copies is not None and token in self.copies.banned()

    def add(self, token: int) -> None:
        for rule in (self.loops, self.copies, self.balance):
            if rule is not None:
                rule.add(token)


@lru_cache(maxsize=4)
def pitch_classes(tokens: tuple[str, ...]) -> np.ndarray:
    """(tokens, 12) bool: the pitch classes each token sounds, C first."""
    members = np.zeros((len(tokens), 12), dtype=bool)
    for row, token in enumerate(tokens):
        members[row, [p % 12 for p in token_pitches(token)]] = True
    return members


def mode_shares(ids: np.ndarray, keys: np.ndarray, members: np.ndarray) -> np.ndarray:
    """(2 modes, 12 steps above the tonic): the share of each step among the pitch classes that the
    tokens `ids` sound in passages of each mode (`keys`: each token's key, `form.KEY_NAMES`; -1
    none), counting a chord's every class once; major first. A mode with no passage: even shares."""
    known = keys >= 0
    keys = keys[known]
    above_tonic = (np.arange(12) + keys[:, None] % 12) % 12  # row: the pitch class of each step
    steps = np.take_along_axis(members[ids[known]], above_tonic, axis=1)
    counts = np.stack([steps[keys // 12 == mode].sum(0) for mode in (0, 1)]).astype(np.float64)
    totals = counts.sum(1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), 1 / 12)


class KeyBalance:
    """Keeps a piece in a key near the shares of pitch classes the corpus's passages in that
    key's mode have (`mode_shares`): each token's probability is multiplied by exp(strength × the
    mean over its pitch classes of ln((the class's share in the corpus + `BALANCE_FLOOR`) / (its
    share in the piece's last tokens + `BALANCE_FLOOR`))), counted back `BALANCE_HALF_LIFE` tokens
    halving and starting from `BALANCE_PRIOR` tokens' worth of the corpus's shares. A class
    played less than the key plays it is favoured, one played more is held back, one the key
    hardly plays is left as it is until it is played. Preferring the key's strongest classes
    alone (`in_key`) draws the tonic over and over, and key-finders hear the key's neighbours."""

    def __init__(self, members: np.ndarray, shares: np.ndarray, strength: float, before=()):
        self.members = members  # `pitch_classes` of the vocabulary
        self.means = members / np.maximum(members.sum(1, keepdims=True), 1)  # a token's classes, averaged
        self.targets = np.stack([np.roll(shares[key // 12], key % 12) for key in range(24)])  # (keys, classes)
        self.strength, self.decay = strength, 0.5 ** (1 / BALANCE_HALF_LIFE)
        self.recent = np.zeros(12)
        for token in before:
            self.add(int(token))

    def add(self, token: int) -> None:
        self.recent = self.recent * self.decay + self.members[token]

    def shares(self, key: int) -> np.ndarray:
        """The piece's recent share of each pitch class, the corpus's in `key` as a prior."""
        return (self.recent + BALANCE_PRIOR * self.targets[key]) / (self.recent.sum() + BALANCE_PRIOR)

    def tilt(self, probabilities: np.ndarray, key: int) -> np.ndarray:
        """The token probabilities tilted towards the shares of `key` (`form.KEY_NAMES`)."""
        scores = np.log((self.targets[key] + BALANCE_FLOOR) / (self.shares(key) + BALANCE_FLOOR))
        weighted = probabilities * np.exp(self.strength * (self.means @ scores))
        return weighted / weighted.sum()


@lru_cache(maxsize=4)
def key_fit(tokens: tuple[str, ...]) -> np.ndarray:
    """(24 keys, tokens): how well each token's pitch classes fit each key: the mean of the key's
    standardised Krumhansl-Kessler profile over them (`form.KEY_PROFILES`)."""
    classes = [sorted({p % 12 for p in token_pitches(token)}) for token in tokens]
    return np.array([[KEY_PROFILES[key][pcs].mean() for pcs in classes] for key in range(len(KEY_PROFILES))])


SCALES = (set(MAJOR_SCALE), {0, 2, 3, 5, 7, 8, 9, 10, 11})  # above the tonic: major; minor, all three forms


@lru_cache(maxsize=4)
def scale_mask(tokens: tuple[str, ...]) -> np.ndarray:
    """(24 keys, tokens) bool: whether all of a token's pitch classes lie in the key's scale."""
    classes = [{p % 12 for p in token_pitches(token)} for token in tokens]
    return np.array([[all((pc - key % 12) % 12 in SCALES[key // 12] for pc in pcs) for pcs in classes]
                     for key in range(24)])


def in_scale(probabilities: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The token probabilities of the tokens `allowed` (a row of `scale_mask`) only, unless none of them is likely."""
    kept = probabilities * allowed
    return kept / kept.sum() if kept.sum() > 0 else probabilities


def in_key(probabilities: np.ndarray, fit: np.ndarray, weight: float) -> np.ndarray:
    """The token probabilities weighted towards the tokens that fit the key (`fit`: its row of `key_fit`)."""
    weighted = probabilities * np.exp(weight * fit)
    return weighted / weighted.sum()


def toward_density(gap_probabilities: np.ndarray, steps: np.ndarray, phases: int, density: float, target: float,
                   strength: float = DENSITY_STRENGTH) -> np.ndarray:
    """The onset-gap probabilities (`steps`: each gap's length in `phases` to a quarter) tilted
    towards `target` onsets per quarter from the `density` of the last few quarters: each gap's
    weight times (its length / the target's gap) to the power strength × ln(density / target),
    so that a passage denser than the target favours longer gaps and a sparser one shorter, the
    more the further it is off."""
    if density <= 0 or target <= 0:
        return gap_probabilities
    lengths = np.maximum(steps, 1) / phases  # quarters (the first onset's gap of 0 as the shortest)
    weighted = gap_probabilities * (lengths * target) ** (strength * np.log(density / target))
    return weighted / weighted.sum() if weighted.sum() > 0 else gap_probabilities


def not_before(gap_probabilities: np.ndarray, steps: np.ndarray, gap: int) -> np.ndarray:
    """The onset-gap probabilities with the gaps shorter than `gap` beat phases taken out; the
    longest gap alone where none is as long."""
    kept = gap_probabilities * (steps >= gap)
    return kept / kept.sum() if kept.sum() > 0 else np.eye(len(steps))[int(np.argmax(steps))]


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
