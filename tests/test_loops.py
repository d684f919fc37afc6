"""Generation kept out of loops, and chords voiced over a bass, end to end on a tiny model."""
import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.reprise import Form
from lstm_composer.sampling import REPEAT_WINDOW, LoopGuard, repeat_cap

tf = pytest.importorskip("tensorflow")


def test_the_loop_guard_takes_away_only_the_token_that_would_go_round_once_more():
    guard = LoopGuard(10, [])
    for token in [1, 2] * 5:  # a figure of two tokens, ten tokens long: the limit
        guard.add(token)
    probabilities = np.array([0.1, 0.8, 0.1])  # 1 would make it eleven
    assert guard.allowed(probabilities).tolist() == [0.5, 0.0, 0.5]
    guard.add(0)
    assert guard.allowed(probabilities).tolist() == probabilities.tolist()
    assert LoopGuard(None, [1] * 30).allowed(probabilities) is probabilities
    assert LoopGuard(10, [2] * 10).allowed(np.array([0.0, 0.0, 1.0])).tolist() == [0.5, 0.5, 0.0]  # nothing else
    with pytest.raises(ValueError, match="loop_limit"):
        Sampling(loop_limit=8)


def test_the_guard_takes_away_a_token_drawn_as_often_as_the_cap_allows_in_a_window():
    guard = LoopGuard(None, [], cap=3)
    for token in [1, 0, 2, 1, 0, 1]:  # 1 three times: no loop, but as often as the cap allows
        guard.add(token)
    probabilities = np.array([0.2, 0.6, 0.2])
    assert guard.allowed(probabilities).tolist() == [0.5, 0.0, 0.5]
    for token in range(3, REPEAT_WINDOW - 3):  # the first 1 leaves the last REPEAT_WINDOW - 1 tokens
        guard.add(token)
    assert guard.allowed(probabilities).tolist() == probabilities.tolist()
    guard.add(1)
    assert guard.allowed(probabilities).tolist() == [0.5, 0.0, 0.5]


def test_the_cap_is_the_most_frequent_tokens_count_that_most_windows_stay_within():
    varied = np.arange(200) % 50  # every window: each token at most twice
    struck = np.array([7] * 100 + list(range(100)))  # windows that begin in the 7s: up to 64 of them
    assert repeat_cap([varied], 0.99) == 2
    assert repeat_cap([varied, struck], 1.0) == REPEAT_WINDOW
    assert repeat_cap([varied] * 20 + [struck], 0.9) == 2  # a rare ostinato does not set the cap
    assert repeat_cap([np.arange(10)], 0.99) == REPEAT_WINDOW  # no piece as long as a window: no cap
    with pytest.raises(ValueError, match="repeat_quantile"):
        Sampling(repeat_quantile=0.0)


def test_no_token_of_a_piece_is_drawn_more_often_in_a_window_than_the_training_pieces_allow(tmp_path):
    # A second piece of sixteen notes, each four times in 64: the cap. The network copies the
    # first piece's loop of four onsets (where seed 2's primer lies), sixteen times each in 64
    # tokens, when nothing stops it.
    varied = [[60 + (i * 5) % 16] for i in range(64)]
    model_dir = copying_model_dir(tmp_path, {"loop": LOOP * 10, "varied": varied})

    def most_in_a_window(quantile):
        tokens = compose(GenerateConfig(str(model_dir), length=160, seed=2, form=None, max_copy=None,
                                        sampling=Sampling(repeat_quantile=quantile, key_weight=0.0))).tokens
        return max(Counter(tokens[i:i + REPEAT_WINDOW]).most_common(1)[0][1] for i in range(len(tokens) - 63))

    assert most_in_a_window(None) >= 15
    assert most_in_a_window(1.0) <= 4


def copying_model_dir(root, pieces: dict[str, list[list[int]]]):
    """A small composer whose pointer copies whatever followed the same motif before, with the
    corpus (these pieces' onsets, half a beat apart) and voicings a training run writes."""
    from lstm_composer.expression import Expression
    from lstm_composer.model import MOTIF_LENGTH, build_model
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.presets import PRESETS
    from lstm_composer.tokens import Vocabulary, token_for
    from lstm_composer.voicing import Voicings

    rows = [(piece, i, token_for(p), p, i * 0.5, 0.5, 70) for piece, onsets in pieces.items()
            for i, p in enumerate(onsets)]
    names = ("piece_id", "position", "token", "pitches", "offset", "duration", "velocity")
    columns = dict(zip(names, map(list, zip(*rows))))
    (root / "corpus/notes").mkdir(parents=True)
    pq.write_table(pa.table(columns), root / "corpus/notes/part-0.parquet")
    vocabulary, expression = Vocabulary({r[2] for r in rows}), Expression()
    config = replace(PRESETS["small"], sequence_length=12, lstm_units=(8,), dense_units=8, embedding_dim=4)
    tf.keras.utils.set_random_seed(5)
    network = build_model(config, len(vocabulary), expression_sizes=expression.sizes())
    pointer = network.get_layer("next_token")
    query, key, sentinel, _, _, lag = pointer.get_weights()
    pointer.set_weights([np.zeros_like(query), np.zeros_like(key), np.zeros_like(sentinel), np.float32(-30),
                         np.full(MOTIF_LENGTH, 10.0, np.float32), np.zeros_like(lag)])
    model_dir = root / "model"
    model_dir.mkdir()
    network.save(model_dir / "model.keras")
    ModelDir(str(model_dir)).write_vocabulary(vocabulary, expression)
    (model_dir / "voicings.json").write_text(Voicings.count((r[2], r[3], 1) for r in rows).to_json())
    (model_dir / "config.json").write_text(json.dumps({"model": config.to_dict(), "corpus_path": str(root / "corpus")}))
    return model_dir


LOOP = [[40, 52, 55, 59], [64], [45, 52, 60, 64], [62]]  # E minor and A minor, low and spread


@pytest.fixture(scope="module")
def copying_model(tmp_path_factory):
    return copying_model_dir(tmp_path_factory.mktemp("loops"), {"piece": LOOP * 10})


def longest_short_loop(tokens: list[str]) -> int:
    """The longest stretch repeating a pattern of 1 to 8 tokens, counted here from scratch."""
    longest = 0
    for period in range(1, 9):
        run = 0
        for i in range(period, len(tokens)):
            run = run + 1 if tokens[i] == tokens[i - period] else 0
            longest = max(longest, run + period if run else 0)
    return longest


def test_a_network_that_copies_is_kept_out_of_loops(copying_model):
    # Neither a reprise nor the key's weight, which would break the loop themselves.
    def composed(limit):
        return compose(GenerateConfig(str(copying_model), length=80, seed=0, form=None, max_copy=None,
                                      sampling=Sampling(loop_limit=limit, repeat_quantile=None, key_weight=0.0)))

    free = composed(None)
    assert longest_short_loop(free.tokens) >= 60  # the copy goes round and round
    guarded = composed(16)
    assert 12 <= longest_short_loop(guarded.tokens) <= 16


def test_a_network_that_copies_the_corpus_copies_no_run_longer_than_max_copy(copying_model):
    def longest(max_copy, form=None):
        return compose(GenerateConfig(str(copying_model), length=80, seed=0, form=form, max_copy=max_copy,
                                      sampling=Sampling(loop_limit=None, repeat_quantile=None))).report.longest_copy

    assert longest(None).length == 40  # the whole piece (its corpus is the loop), then round again
    assert longest(6).length <= 6
    assert longest(6, Form(share=1.0)).length <= 6  # windows played again stop where they would copy more


def test_generated_chords_are_voiced_over_a_bass_as_the_corpus_voices_them(copying_model):
    piece = compose(GenerateConfig(str(copying_model), length=40, seed=3))
    voiced = [(e.token, tuple(e.pitches)) for e in piece.events if "." in e.token]
    assert len(voiced) >= 4, "too few chords were generated"
    # Both chords are minor triads in root position over their bass: the corpus spaces them as
    # (0, 7, 15, 19) (A2 E3 C4 E4) and (0, 12, 15, 19) (E2 E3 G3 B3).
    for token, pitches in voiced:
        assert {p % 12 for p in pitches} == {int(pc) for pc in token.split(".")}
        assert 21 <= min(pitches) and max(pitches) <= 108
        if min(pitches) % 12 == int(token.split(".")[0]) and min(pitches) + 19 <= 108:  # root, room above
            assert tuple(p - pitches[0] for p in pitches) in {(0, 7, 15, 19), (0, 12, 15, 19)}
        else:  # an inversion the corpus never voiced, or no room below C8: stacked closely upwards
            assert pitches[-1] - pitches[0] < 12
    assert len({min(p) for _, p in voiced}) > 1  # the (untrained) bass head moves
