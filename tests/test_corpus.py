import pyarrow.parquet as pq

from lstm_composer.corpus import ParseConfig, parse_corpus, piece_id
from midi_bytes import chords, melody, midi_file

MELODY = midi_file(melody([60, 62, 64, 65]))
CHORDS = midi_file(chords([[60, 64, 67], [62, 65, 69]]))


def test_a_bad_file_becomes_an_error_row_and_the_rest_is_parsed(spark, tmp_path):
    songs = tmp_path / "songs"
    (songs / "nested").mkdir(parents=True)
    (songs / "melody.mid").write_bytes(MELODY)
    (songs / "nested" / "CHORDS.MIDI").write_bytes(CHORDS)
    (songs / "broken.mid").write_bytes(b"this is not a MIDI file")
    (songs / "notes.txt").write_bytes(MELODY)  # not a .mid: ignored
    output = tmp_path / "corpus"

    summary = parse_corpus(spark, ParseConfig(str(songs), str(output)))

    assert (summary.files, summary.parsed, summary.empty, summary.failed, summary.tokens) == (3, 2, 0, 1, 6)
    pieces = {row["path"].rsplit("/", 1)[1]: row for row in pq.read_table(output / "pieces").to_pylist()}
    assert pieces["broken.mid"]["status"] == "error"
    assert "not a MIDI file" in pieces["broken.mid"]["error"]
    assert pieces["melody.mid"]["piece_id"] == piece_id(MELODY)
    assert (pieces["CHORDS.MIDI"]["status"], pieces["CHORDS.MIDI"]["n_tokens"]) == ("ok", 2)

    notes = pq.read_table(output / "notes").sort_by([("piece_id", "ascending"), ("position", "ascending")])
    by_piece = {}
    for row in notes.to_pylist():
        by_piece.setdefault(row["piece_id"], []).append(row)
    assert [(r["position"], r["token"], r["offset"], r["duration"]) for r in by_piece[piece_id(MELODY)]] == [
        (0, "C4", 0.0, 0.5), (1, "D4", 0.5, 0.5), (2, "E4", 1.0, 0.5), (3, "F4", 1.5, 0.5)]
    assert [(r["token"], r["pitches"], r["velocity"]) for r in by_piece[piece_id(CHORDS)]] == [
        ("0.4.7", [60, 64, 67], 80), ("2.5.9", [62, 65, 69], 80)]
