"""Generation kept out of loops, and chords voiced over a bass, end to end on a tiny model."""
import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_composer.generate import GenerateConfig, Sampling, compose
from lstm_composer.sampling import LoopGuard

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


@pytest.fixture(scope="module")
def copying_model(tmp_path_factory):
    """A small composer whose pointer copies whatever followed the same motif before, with the
    corpus and voicings a training run writes."""
    from lstm_composer.expression import Expression
    from lstm_composer.model import MOTIF_LENGTH, build_model
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.presets import PRESETS
    from lstm_composer.tokens import Vocabulary, token_for
    from lstm_composer.voicing import Voicings

    root = tmp_path_factory.mktemp("loops")
    onsets = [[40, 52, 55, 59], [64], [45, 52, 60, 64], [62]] * 10  # E minor and A minor, low and spread
    rows = [("piece", i, token_for(p), p, i * 0.5, 0.5, 70) for i, p in enumerate(onsets)]
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
        return compose(GenerateConfig(str(copying_model), length=80, seed=0, form=None,
                                      sampling=Sampling(loop_limit=limit, key_weight=0.0)))

    free = composed(None)
    assert longest_short_loop(free.tokens) >= 60  # the copy goes round and round
    guarded = composed(16)
    assert 12 <= longest_short_loop(guarded.tokens) <= 16


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
