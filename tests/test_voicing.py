"""Chords voiced where the corpus voices them, over a bass, and never off the piano."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_composer.tables import Corpus, notes_voicings

from lstm_composer.tokens import note_name, token_for
from lstm_composer.voicing import Voicings, allowed_basses, chord_type, relative_classes, voice_tokens

# C major over C2 with the third and fifth high, twice; over E2 once (first inversion), and
# A minor in close position around middle C.
ROWS = [("0.4.7", [36, 55, 64, 72], 2), ("0.4.7", [40, 48, 55], 1), ("9.0.4", [57, 60, 64], 5),
        ("E4", [64], 9)]


def test_counting_keeps_shapes_relative_to_the_bass():
    voicings = Voicings.count(ROWS, top_steps={-2: 3, 0: 1, 24: 1})
    assert voicings.shapes == {"0.4.7|3": [((0, 19, 28, 36), 2)], "0.3.8|3": [((0, 8, 15), 1)],
                               "0.3.7|4": [((0, 3, 7), 5)]}
    # C major (first class 0, "0.4.7") over C twice and over E once; A minor ("9.0.4": "0.3.7") over A.
    assert voicings.basses == {"0.4.7": {0: 2, 4: 1}, "0.3.7": {0: 5}}
    assert Voicings.from_dict(json.loads(voicings.to_json())) == voicings
    assert Voicings.from_dict({key: value for key, value in json.loads(voicings.to_json()).items()
                               if key != "top_steps"}).top_steps == {}  # a voicings.json from before


def test_the_top_note_moves_as_the_corpus_top_voice_moves():
    # C major over C2 voiced close (top G2) and spread (top C5), equally often; the corpus's top
    # voice mostly moves by a step or less.
    voicings = Voicings.count([("0.4.7", [36, 40, 43], 1), ("0.4.7", [36, 55, 64, 72], 1)],
                              top_steps={-2: 40, -1: 50, 0: 100, 1: 50, 2: 40, 12: 1})
    rng = np.random.default_rng(3)

    def spread_share(previous_top):
        return np.mean([voicings.voice("0.4.7", 36, rng, previous_top)[-1] == 72 for _ in range(400)])

    assert spread_share(73) > 0.95  # from C#5, the voicing that ends on C5 (a step; G2 is 30 away)
    assert spread_share(44) < 0.05  # from G#2, the close one (G2)
    assert 0.4 < spread_share(None) < 0.6  # nothing before it: by how often alone
    assert voicings.step_weight(-30) == voicings.step_weight(-24) == 1  # clipped, never impossible
    # Two voicings as common as each other, one a repeat of the top note (counted 3 times), one
    # an octave's leap (once): the repeat wins by (3 + 1)² to (1 + 1)², not 4 to 2.
    even = Voicings.count([("0.4.7", [36, 40, 43], 1), ("0.4.7", [36, 40, 55], 1)], top_steps={0: 3, 12: 1})
    assert 0.75 < np.mean([even.voice("0.4.7", 36, rng, 43)[-1] == 43 for _ in range(1000)]) < 0.85


def test_the_notes_table_gives_voicings_and_top_voice_steps(tmp_path):
    # Written with pyarrow as the parse job lays it out: one file per task, rows in piece order.
    run = tmp_path / "notes" / "run=1"
    run.mkdir(parents=True)
    rows = {"b.parquet": [("b", 0, "4.7.11", [40, 43, 47]), ("b", 1, "C5", [72])],
            "a.parquet": [("a", 0, "C4", [60]), ("a", 1, "0.4.7", [48, 52, 55, 64]), ("a", 2, "G4", [67]),
                          ("a", 3, "2.5.9", [50, 53, 57, 65])]}
    for name, piece in rows.items():
        pq.write_table(pa.table({"piece_id": [r[0] for r in piece], "position": [r[1] for r in piece],
                                 "token": [r[2] for r in piece],
                                 "pitches": pa.array([r[3] for r in piece], pa.list_(pa.int32()))}), run / name)
    voicings = notes_voicings(Corpus(str(tmp_path)))
    # Into C major from C4: up 4 to its top E4; into D minor from G4: down 2 to F4. The first
    # chord of piece b has nothing before it in its piece.
    assert voicings.top_steps == {-2: 1, 4: 1}
    assert voicings.shapes == {"0.3.7|3": [((0, 3, 7), 1)], "0.4.7|4": [((0, 4, 7, 16), 1)],
                               "0.3.7|4": [((0, 3, 7, 15), 1)]}


def test_a_chord_before_a_note_is_voiced_to_lead_into_it():
    # C major over C2 voiced close (top G2) and spread (top C5), equally often; the corpus's top
    # voice mostly stays or moves by a step. Before C5 the spread voicing, before G#2 the close.
    voicings = Voicings.count([("0.4.7", [36, 40, 43], 1), ("0.4.7", [36, 55, 64, 72], 1)],
                              top_steps={-2: 40, -1: 50, 0: 100, 1: 50, 2: 40, 12: 1})
    for following, top in (("C5", 72), ("G#2", 43)):
        for seed in range(20):
            voiced = voice_tokens(["0.4.7", following], np.array([36, 0]), voicings, None, np.random.default_rng(seed))
            assert max(voiced[0]) == top, (following, seed, voiced)


def test_a_chord_struck_again_over_its_bass_keeps_its_first_voicing():
    # C major over C2 voiced close and spread, equally often, and a top voice that may go anywhere.
    voicings = Voicings.count([("0.4.7", [36, 40, 43], 1), ("0.4.7", [36, 55, 64, 72], 1)])
    tokens = ["0.4.7", "E4", "0.4.7", "D4"] * 10 + ["0.4.7"]
    for seed in range(5):
        voiced = voice_tokens(tokens, np.full(len(tokens), 36), voicings, None, np.random.default_rng(seed))
        assert len({pitches for token, pitches in zip(tokens, voiced) if token == "0.4.7"}) == 1
        assert voiced[1] == (64,) and voiced[3] == (62,)
    # Over another bass, a voicing of its own.
    other = voice_tokens(["0.4.7", "0.4.7"], np.array([36, 48]), voicings, None, np.random.default_rng(0))
    assert [min(pitches) for pitches in other] == [36, 48]


def test_a_chord_is_voiced_as_the_corpus_voices_it_even_transposed():
    voicings = Voicings.count(ROWS)
    rng = np.random.default_rng(0)
    assert voicings.voice("0.4.7", 36, rng) == [36, 55, 64, 72]
    # D major over D2 has never been seen, but C major over C2 has: the same shape, a tone up.
    assert voicings.voice("2.6.9", 38, rng) == [38, 57, 66, 74]
    # No voicing of this shape in octave 5: one from another octave.
    assert voicings.voice("0.4.7", 72, rng) == [72, 91, 100, 108]
    assert voicings.voice("E4", 64, rng) == [64]


def test_voicings_never_leave_the_piano_and_hold_their_token():
    voicings = Voicings.count(ROWS)
    rng = np.random.default_rng(1)
    for token in ("0.4.7", "2.6.9", "0.1.2.3.4.5.6.7.8.9.10.11", "5.11", "3.6.9"):
        for bass in np.flatnonzero(allowed_basses(token)):
            pitches = voicings.voice(token, int(bass), rng)
            assert min(pitches) == bass and max(pitches) <= 108 and min(pitches) >= 21
            assert token_for(sorted(set(pitches))) == token, (token, bass, pitches)


def test_allowed_basses():
    assert np.flatnonzero(allowed_basses("E4")).tolist() == [64]
    basses = np.flatnonzero(allowed_basses("0.4.7"))
    assert basses.min() == 24 and basses.max() == 100  # E7: C8 is the last key and {b % 12 for b in basses} == {0, 4, 7}
    assert note_name(int(basses.min())) == "C1"


def test_a_bass_without_a_bass_head_follows_the_previous_one():
    voicings = Voicings.count(ROWS)
    rng = np.random.default_rng(2)
    low, high = voicings.bass_range
    for previous in (None, 30, 45, 70):
        bass = voicings.choose_bass("9.0.4", previous, rng)
        assert bass % 12 == 9 and low - 12 < bass < high + 12
        if previous is not None:
            assert abs(bass - min(max(previous, low), high)) <= 6


def test_relative_classes_and_chord_types():
    assert relative_classes([40, 48, 55]) == "0.3.8"
    assert chord_type("4.7.11") == (4, "0.3.7")
    with pytest.raises(ValueError):
        chord_type("E4")
