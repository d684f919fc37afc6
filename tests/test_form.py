"""Key and form measured on excerpts, and the classifier that tells two kinds of excerpts apart."""
import numpy as np
import pytest

from lstm_composer.classifier import auc, cross_validated_auc
from lstm_composer.events import Event
from lstm_composer.form import (EXCERPT_BEATS, KEY_NAMES, bar_similarity, excerpts, figure_recurrence,
                                key_clarity_and_stability, piece_features, window_keys)
from lstm_composer.tokens import note_name

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def melody(pitches, step: float = 0.5, start: float = 0.0) -> list[Event]:
    return [Event(note_name(p), start + i * step, step, 80) for i, p in enumerate(pitches)]


def test_a_scale_is_in_its_key_and_a_transposed_one_in_the_transposed_key():
    scale = melody(C_MAJOR * 8)  # 64 eighths: one excerpt of 32 quarters, four windows of 8
    [excerpt] = excerpts(scale)
    assert excerpt.start == 0.0 and len(excerpt.onsets) == 64
    assert [KEY_NAMES[key] for key, _ in window_keys(excerpt)] == ["C major"] * 4
    clarity, stability = key_clarity_and_stability(excerpt)
    assert clarity > 0.8 and stability == 1.0
    [moved] = excerpts(melody([p + 2 for p in C_MAJOR] * 8))
    assert {KEY_NAMES[key] for key, _ in window_keys(moved)} == {"D major"}

    # A piece that moves to a far key halfway: neighbouring windows agree but once in three.
    [modulating] = excerpts(melody(C_MAJOR * 4 + [p + 6 for p in C_MAJOR] * 4))
    assert [KEY_NAMES[key] for key, _ in window_keys(modulating)] == ["C major"] * 2 + ["F# major"] * 2
    assert key_clarity_and_stability(modulating)[1] == pytest.approx(2 / 3)


def test_a_figure_that_comes_back_is_found_and_a_wandering_line_has_none():
    rng = np.random.default_rng(0)
    wandering = melody(list(60 + np.cumsum(rng.choice([-5, -3, -1, 2, 4, 7], size=64)) % 24))
    assert figure_recurrence(wandering) == 0.0
    figure = [60, 64, 62, 67, 65, 71]  # five intervals
    repeated = melody(figure + [50, 53] + [p + 5 for p in figure] + [48, 52, 55])  # again, a fourth higher
    # The figure's five intervals occur twice; of the 12 figures of five intervals, those 2 recur.
    assert figure_recurrence(repeated) == pytest.approx(2 / 12)


def test_windows_that_repeat_a_bar_transposed_are_similar_and_different_ones_are_not():
    bar = [60, 64, 67, 72, 71, 67, 64, 62] * 2  # eight quarters of eighths
    rng = np.random.default_rng(1)
    others = [list(rng.integers(48, 84, size=16)) for _ in range(2)]
    [repeated] = excerpts(melody(bar + [p + 3 for p in bar] + others[0] + others[1]))
    [different] = excerpts(melody(others[0] + others[1] + others[1][::-1] + others[0][::-1]))
    # The first two windows match each other note for note, three semitones apart: 1 each.
    unrelated = bar_similarity(different)
    assert unrelated < 0.3
    assert (2 + 2 * unrelated) / 4 - 0.1 < bar_similarity(repeated) < (2 + 2 * 0.3) / 4 + 0.01


def test_excerpts_are_whole_and_every_feature_is_measured():
    piece = melody(C_MAJOR * 20, step=0.5)  # 80 quarters: two whole excerpts, a shorter end left out
    features = piece_features(piece)
    assert len(features) == 2 and len(excerpts(piece)) == 80 // EXCERPT_BEATS
    assert all(np.isfinite(value) for excerpt in features for value in excerpt.values())
    assert features[0]["onsets_per_beat"] == 2.0 and features[0]["on_the_beat"] == 0.5


def test_the_classifier_scores_chance_on_two_halves_of_one_set_and_tells_different_sets_apart():
    rng = np.random.default_rng(2)
    pieces = 60
    groups = np.repeat(np.arange(pieces), 6)  # six excerpts a piece
    features = rng.normal(size=(len(groups), 16)) + rng.normal(size=(pieces, 16))[groups]  # pieces differ a little
    halves = (groups % 2).astype(float)
    assert 0.35 < cross_validated_auc(features, halves, groups) < 0.65
    shifted = features + halves[:, None] * np.linspace(0, 2, 16)
    assert cross_validated_auc(shifted, halves, groups) > 0.95
    assert auc(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == 1.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 1, 0])) == 0.5


def test_a_reprise_plays_an_earlier_bar_again_in_the_key_that_bar_was_in():
    """Onsets on every quarter, a new key at every bar: each bar that picks up an earlier one
    plays its positions again with their onset gaps, and goes on in the earlier bar's key."""
    from lstm_composer.reprise import Form, Reprise

    steps, phases, bar = np.array([0, 24, 48]), 24, 96  # onset-gap classes: 0, 1 and 2 quarters
    plan = Reprise(Form(share=1.0, beats=2, bars=1), bar, steps, phases, np.random.default_rng(3))
    time, key, told = 0, 0, []
    for position in range(64):
        row = plan.replay() or [position, 1]
        time += int(steps[row[1]])
        if time % bar == 0:
            key = time // bar * 5 % 24  # the conductor's key changes with every bar
        key = plan.add(row, time, key)
        told.append(key)
    echoes = np.array(plan.echoes)
    assert (echoes >= 0).sum() >= 20
    for i in np.flatnonzero(echoes >= 0):
        source = echoes[i]
        assert plan.rows[i][0] == plan.rows[source][0] and told[i] == told[source]
        assert plan.onsets[i] % bar == plan.onsets[source] % bar  # the same place in its bar
    assert any(told[i] != (plan.onsets[i] // bar * 5 % 24) for i in np.flatnonzero(echoes >= 0))
