"""Rhythm in seconds for recordings, and primers tokenized with the parse job's grouping."""
import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from humanize import humanize
from lstm_composer.tables import Corpus, read_token_stream
from lstm_composer.expression import SECOND_VALUES, Expression
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.primers import primer_from_file
from lstm_composer.midi import read_midi
from lstm_composer.tokens import Vocabulary, tokenize
from test_generate import TOKENS, expressive_config, randomised


def test_a_32nd_is_a_value_of_its_own_on_a_beat_of_24_phases():
    from lstm_composer.expression import beat_phase

    beats = Expression()
    offsets = np.array([0.0, 0.125, 0.25, 0.25 + 1 / 6, 0.25 + 2 / 6, 0.75])  # two 32nds, three sextuplets
    classes = beats.classes(offsets, np.full(6, 0.125), np.ones(6))
    assert np.array(beats.ioi)[classes[:, 0]].tolist() == pytest.approx([0.0, 1 / 8, 1 / 8, 1 / 6, 1 / 6, 1 / 6])
    assert np.array(beats.duration)[classes[:, 1]].tolist() == [0.125] * 6
    assert beat_phase(offsets).tolist() == [0, 3, 6, 10, 14, 18]
    assert beats.sizes() == (15, 19, 8, 24)  # gaps to two bars, durations to sixteen
    assert Expression.from_dict(json.loads(json.dumps(beats.to_dict()))) == beats
    # The vocab.json of a model trained before the 32nd: its own values, and 12 phases a beat.
    earlier = {"ioi": [0.0, 1 / 6, 0.25, 0.5, 1.0], "duration": [1 / 6, 0.25, 0.5, 1.0], "velocity": [8, 24]}
    assert Expression.from_dict(earlier).phases == 12 and beat_phase(offsets, 12).tolist() == [0, 2, 3, 5, 7, 9]


def test_seconds_classes_follow_the_tempo_map_and_round_trip():
    seconds = Expression.for_rhythm("seconds")
    assert seconds.duration == SECOND_VALUES and seconds.ioi == (0.0,) + SECOND_VALUES
    assert SECOND_VALUES[0] == 0.03 and SECOND_VALUES[4] == pytest.approx(0.06, abs=1e-4) and len(SECOND_VALUES) == 31
    assert Expression.for_rhythm("beats") == Expression()
    assert Expression.from_dict(json.loads(json.dumps(seconds.to_dict()))) == seconds
    assert "unit" not in Expression().to_dict()  # a beats model's vocab.json is as it was

    # 120 BPM, then 60 BPM from quarter 2: onsets at 0, 0.5, 1.0 and 3.0 s.
    offsets, durations = seconds.timing([0.0, 1.0, 2.0, 4.0], [0.5, 2.0, 0.5, 1.0], [(0.0, 120.0), (2.0, 60.0)])
    assert offsets.tolist() == [0.0, 0.5, 1.0, 3.0] and durations.tolist() == [0.25, 1.5, 0.5, 1.0]
    assert Expression().timing([0.0, 1.0], [0.5, 2.0], [(0.0, 60.0)])[0].tolist() == [0.0, 1.0]  # beats: as is

    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(np.log(0.03), np.log(5.4), 2000))
    back = np.array(SECOND_VALUES)[seconds.classes(np.zeros(2000), x, np.full(2000, 64))[:, 1]]
    assert np.all(np.abs(back - x) / x <= 2 ** (1 / 8) - 1 + 1e-9)  # within half a step (a quarter-tone in time)
    assert seconds.quarters([0.5, 1.0], tempo=90).tolist() == [0.75, 1.5]
    with pytest.raises(ValueError, match="unit"):
        Expression(unit="bars")


def write_corpus(root, rows, tempos):
    names = ("piece_id", "position", "token", "offset", "duration", "velocity")
    (root / "notes").mkdir(parents=True)
    (root / "pieces").mkdir()
    pq.write_table(pa.table({name: list(column) for name, column in zip(names, zip(*rows))}),
                   root / "notes/part-0.parquet")
    tempo_type = pa.list_(pa.struct([("offset", pa.float64()), ("bpm", pa.float64())]))
    pq.write_table(pa.table({"piece_id": list(tempos),
                             "tempos": pa.array([[{"offset": o, "bpm": b} for o, b in t] for t in tempos.values()],
                                                tempo_type)}), root / "pieces/part-0.parquet")


def test_a_seconds_model_reads_each_pieces_tempo_map(tmp_path):
    rows = [("a", i, "C4", q, 0.5, 64) for i, q in enumerate([0.0, 1.0, 2.0, 4.0])]
    rows += [("b", i, "C4", q, 1.0, 64) for i, q in enumerate([0.0, 1.0])]
    write_corpus(tmp_path, rows, {"a": [(0.0, 120.0), (2.0, 60.0)], "b": [(0.0, 240.0)]})
    seconds = Expression.for_rhythm("seconds")
    stream = read_token_stream(Corpus(str(tmp_path)), Vocabulary(["C4"]), seconds)
    values = np.array(seconds.ioi)
    assert values[stream.expression[:, 0]].tolist() == pytest.approx([0.0, 0.5, 0.5, 2.0, 0.0, 0.25], rel=0.1)
    assert np.array(SECOND_VALUES)[stream.expression[:, 1]].tolist() == pytest.approx(
        [0.25, 0.25, 0.5, 0.5, 0.25, 0.25], rel=0.1)
    beats = read_token_stream(Corpus(str(tmp_path)), Vocabulary(["C4"]), Expression())
    assert np.array(Expression().ioi)[beats.expression[:, 0]].tolist() == [0.0, 1.0, 1.0, 2.0, 0.0, 1.0]


def test_a_seconds_model_writes_real_time_at_the_output_tempo(tmp_path):
    from lstm_composer.model import build_model
    from lstm_composer.model_dir import ModelDir

    rng = np.random.default_rng(2)
    rows = [(piece, i, TOKENS[int(rng.integers(len(TOKENS)))], 0.5 * i, 0.4, 70) for piece in ("a", "b")
            for i in range(60)]
    write_corpus(tmp_path / "corpus", rows, {"a": [(0.0, 120.0)], "b": [(0.0, 90.0)]})
    config, expression = replace(expressive_config(), rhythm="seconds"), Expression.for_rhythm("seconds")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    randomised(build_model(config, len(TOKENS), expression_sizes=expression.sizes()), seed=3).save(
        model_dir / "model.keras")
    ModelDir(str(model_dir)).write_vocabulary(Vocabulary(TOKENS), expression)
    (model_dir / "config.json").write_text(json.dumps({"model": config.to_dict(),
                                                      "corpus_path": str(tmp_path / "corpus")}))

    at_60 = compose(GenerateConfig(str(model_dir), length=100, seed=1, tempo=60))
    at_120 = compose(GenerateConfig(str(model_dir), length=100, seed=1, tempo=120))
    assert at_60.tokens == at_120.tokens
    assert {e.duration for e in at_60.events} <= set(SECOND_VALUES)  # at 60 BPM a quarter lasts a second
    assert [2 * e.duration for e in at_60.events] == pytest.approx([e.duration for e in at_120.events])
    assert len({e.duration for e in at_60.events}) >= 4


def test_a_primer_is_tokenized_with_the_parse_jobs_grouping(tmp_path):
    source = read_midi((ROOT / "midi_songs" / "bach_bwv1_6_chorale.mid").read_bytes())
    score = [t.token for t in tokenize(source)]
    played = tmp_path / "played.mid"
    played.write_bytes(humanize(source, seed=1)[0])
    vocabulary = Vocabulary(score)

    assert primer_from_file(str(played), vocabulary).tokens == score  # auto, as the parse job
    assert len(primer_from_file(str(played), vocabulary, onset_tolerance_ms=0).detail["skipped_tokens"]) > 0
    # In seconds, placed for the output's tempo: the file's quarter (nominal 120 BPM) lasts half a
    # second, which is half a quarter at 60 BPM.
    grouped = tokenize(read_midi(played.read_bytes()), 50)
    seconds = primer_from_file(str(played), vocabulary, Expression.for_rhythm("seconds"), tempo=60)
    assert seconds.events[1].offset == pytest.approx((grouped[1].offset - grouped[0].offset) * 0.5)
    assert seconds.events[1].duration == pytest.approx(grouped[1].duration * 0.5)
