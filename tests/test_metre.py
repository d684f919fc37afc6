"""Bars from time signatures: the notes table's bar positions, a file's, and generation's."""
import numpy as np
import pytest

from lstm_composer.conductor import Conductor, KeyChanges
from lstm_composer.metre import Metre, bar_beat, bar_positions, metre_of_bar, phrase_bar
from lstm_composer.presets import PRESETS
from midi_bytes import midi_file, off, on, time_signature, track


def test_bars_follow_the_time_signatures_and_a_change_starts_a_bar():
    # 4/4 for two bars, then 3/4 (from quarter 8), then 6/8 from quarter 14 (two bars of 3/4)
    changes = [(0.0, "4/4"), (8.0, "3/4"), (14.0, "6/8")]
    offsets = np.array([0, 3.5, 4, 8, 10.5, 11, 14, 16.5, 17])
    bars, positions = bar_positions(offsets, changes)
    assert bars.tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 5]
    assert (positions / 24).tolist() == [0, 3.5, 0, 0, 2.5, 0, 0, 2.5, 0]
    assert [str(metre_of_bar(changes, bar)) for bar in (0, 1, 2, 3, 4, 9)] == ["4/4", "4/4", "3/4", "3/4", "6/8", "6/8"]
    assert bar_beat(positions).tolist() == [0, 3, 0, 0, 2, 0, 0, 2, 0] and phrase_bar(bars).tolist() == [0, 0, 1, 2, 2, 3, 0, 0, 1]
    assert bar_positions(np.array([5.0]), None)[0].tolist() == [1]  # none given: 4/4
    with pytest.raises(ValueError, match="not a time signature"):
        Metre.parse("7/5")


def test_the_notes_table_tells_each_token_its_bar_from_the_files_time_signatures(spark, tmp_path):
    from lstm_composer.corpus import ParseConfig, parse_corpus
    from lstm_composer.tables import Corpus, read_token_stream

    # 3/4 for two bars (6 quarters), then 2/4: a quarter note on every beat.
    events = [(0, time_signature(3, 4))]
    for beat in range(10):
        if beat == 6:
            events.append((0, time_signature(2, 4)))
        events += [(0, on(60 + beat)), (480, off(60 + beat))]
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "waltz.mid").write_bytes(midi_file(track(*events)))
    parse_corpus(spark, ParseConfig(str(tmp_path / "songs"), str(tmp_path / "corpus")))
    stream = read_token_stream(Corpus(str(tmp_path / "corpus")), _vocabulary(range(60, 70)), metre=True)
    assert stream.bar.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert (stream.bar_position // 24).tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 0, 1]


def _vocabulary(pitches):
    from lstm_composer.tokens import Vocabulary, note_name

    return Vocabulary(note_name(p) for p in pitches)


def test_the_conductor_counts_bars_and_keeps_or_changes_the_key():
    config = PRESETS["small"]
    steps = np.array([0, 24, 48, 72])  # onset gaps of 0 to 3 quarters, in beat phases
    # The primer's last onset: two quarters into bar 5 of a 3/4 piece, in E minor (16).
    conductor = Conductor(config, steps, 24, time=48, metre=Metre(3, 4), bar=5, key=16)
    seen = []
    for gap in (1, 1, 2, 3):
        conductor.advance(gap)
        seen.append(conductor.inputs())
    # [phase, quarter of the bar, bar of the phrase, key]: bar 6 from its start, then 7 ...
    assert seen == [[0, 0, 2, 16], [0, 1, 2, 16], [0, 0, 3, 16], [0, 0, 0, 16]]
    always = KeyChanges(np.tile(np.eye(24)[7], (2, 1)))  # every window a fifth up, to major
    changing = Conductor(config, steps, 24, time=0, metre=Metre(4, 4), key=16, changes=always,
                         rng=np.random.default_rng(0))
    changing.advance(3), changing.advance(3)  # 6 quarters: still the first window of 8
    assert changing.key == 16
    changing.advance(3)  # 9 quarters: the next window
    assert changing.key == 11  # E + 7 = B, major
