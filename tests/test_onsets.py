"""Onset grouping: recordings of playing become the tokens of their score; sequenced files
come out exactly as before."""
import pytest

from conftest import ROOT, SHARED_MIDI
from humanize import humanize
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.piece import parse_piece
from lstm_composer.midi import read_midi, seconds_at
from lstm_composer.tokens import (PERFORMED_TOLERANCE_MS, looks_performed, onset_tolerance, parse_onset_tolerance,
                                  tokenize)
from midi_bytes import midi_file, off, on, tempo, track

# Sequenced pieces whose distinct onsets lie at least 114 ms apart: a 10% drift and a 30 ms
# chord spread leave them more than 50 ms apart.
PLAYABLE = ["joplin_maple_leaf_rag.mid", "bach_bwv1_6_chorale.mid", "mozart_k545_mvt1_exposition.mid"]


def groups_of(song):
    """The notes of each exact-tick token, as indices into `song.notes`."""
    groups, previous = [], None
    for i, note in enumerate(song.notes):
        if note.start != previous:
            groups.append([])
            previous = note.start
        groups[-1].append(i)
    return groups


@pytest.mark.parametrize("name", PLAYABLE)
def test_grouping_recovers_the_tokens_of_a_humanized_file(name):
    data = (ROOT / "midi_songs" / name).read_bytes()
    song = read_midi(data)
    score = tokenize(song)
    played, onset_ticks = humanize(song, seed=len(name))

    piece, tokens = parse_piece(name, played)  # auto: the parse job's default

    assert looks_performed(read_midi(played)) and not looks_performed(song)
    assert piece.onset_tolerance_ms == PERFORMED_TOLERANCE_MS
    assert [(t.token, t.pitches) for t in tokens] == [(t.token, t.pitches) for t in score]
    # each token starts at its group's first note as played
    assert [t.offset for t in tokens] == [min(onset_ticks[i] for i in group) / 384 for group in groups_of(song)]
    assert len({note.velocity for note in read_midi(played).notes}) > 20

    _, exact = parse_piece(name, played, onset_tolerance_ms=0)
    chords = sum(len(t.pitches) > 1 for t in score)
    assert len(exact) > len(score) + chords // 2  # on exact ticks most chords fall apart


def test_the_tolerance_is_real_time_by_the_tempo_map():
    # Two notes 24 ticks apart (a 20th of a quarter), first at 120 BPM (25 ms), then at 30 BPM (100 ms).
    notes = track((0, tempo(120)), (0, on(60)), (24, on(64)), (456, off(60)), (0, off(64)), (0, tempo(30)),
                  (0, on(62)), (24, on(65)), (456, off(62)), (0, off(65)))
    song = read_midi(midi_file(notes, ticks_per_quarter=480))
    assert seconds_at([0, 24, 480, 504], song.tempos, 480).tolist() == pytest.approx([0.0, 0.025, 0.5, 0.6])
    assert [t.token for t in tokenize(song, 50)] == ["0.4", "D4", "F4"]
    assert [t.token for t in tokenize(song, 120)] == ["0.4", "2.5"]
    assert [t.token for t in tokenize(song, 0)] == ["C4", "E4", "D4", "F4"]
    grouped = tokenize(song, 50)[0]
    assert (grouped.offset, grouped.duration, grouped.pitches) == (0.0, 1.0, [60, 64])


def test_the_flag_reads_auto_or_milliseconds():
    assert parse_onset_tolerance("auto") is None and parse_onset_tolerance("0") == 0.0
    assert parse_onset_tolerance("35") == 35.0
    for bad in ("-1", "1000", "soon", "nan"):
        with pytest.raises(Exception, match="not a tolerance"):
            parse_onset_tolerance(bad)
    with pytest.raises(ValueError, match="onset_tolerance_ms"):
        ParseConfig("in", "out", onset_tolerance_ms=-5)


def sequenced_files():
    files = sorted((ROOT / "midi_songs").glob("*.mid"))
    if SHARED_MIDI.is_dir():
        files += sorted(SHARED_MIDI.rglob("*.mid"))
    return files


def test_every_sequenced_file_keeps_its_tokens():
    """All of midi_songs (32) and of ../shared/midi/piano-midi (337, when present)."""
    files = sequenced_files()
    changed = []
    for path in files:
        song = read_midi(path.read_bytes())
        if onset_tolerance(song) != 0 or len(tokenize(song, onset_tolerance(song))) != len(tokenize(song)):
            changed.append(path.name)
    assert changed == []
    assert len(files) in (32, 32 + 337)


def test_the_parse_job_groups_recordings_and_says_how_each_piece_was_read(spark, tmp_path):
    import pyarrow.parquet as pq

    songs = tmp_path / "songs"
    songs.mkdir()
    sequenced = (ROOT / "midi_songs" / PLAYABLE[1]).read_bytes()
    (songs / "score.mid").write_bytes(sequenced)
    (songs / "played.mid").write_bytes(humanize(read_midi(sequenced), seed=3)[0])

    for setting, expected in ((None, {"score.mid": 0.0, "played.mid": 50.0}), (0.0, {"score.mid": 0.0, "played.mid": 0.0})):
        output = tmp_path / f"corpus-{setting}"
        summary = parse_corpus(spark, ParseConfig(str(songs), str(output), onset_tolerance_ms=setting))
        pieces = {row["path"].rsplit("/", 1)[1]: row for row in pq.read_table(output / "pieces").to_pylist()}
        assert {name: row["onset_tolerance_ms"] for name, row in pieces.items()} == expected
        assert summary.grouped == (1 if setting is None else 0)
        assert ("1 with onsets grouped in real time" in str(summary)) == (setting is None)
    n_tokens = {row["path"].rsplit("/", 1)[1]: row["n_tokens"]
                for row in pq.read_table(tmp_path / "corpus-None" / "pieces").to_pylist()}
    assert n_tokens["played.mid"] == n_tokens["score.mid"]
