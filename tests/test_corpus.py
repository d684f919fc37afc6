import collections
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SHARED_MIDI
from lstm_composer import storage
from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.midi_files import list_midi_files, listing
from lstm_composer.piece import parse_piece, piece_id
from midi_bytes import chords, header, melody, midi_file, off, on, tempo, track, varlen

MELODY = midi_file(melody([60, 62, 64, 65]))
CHORDS = midi_file(chords([[60, 64, 67], [62, 65, 69]]))


def read_rows(path):
    return pq.read_table(path).to_pylist()


def write_songs(tmp_path, files: dict[str, bytes]):
    """`tmp_path`/songs holding the named files (names may hold folders)."""
    songs = tmp_path / "songs"
    songs.mkdir()
    for name, data in files.items():
        (songs / name).parent.mkdir(parents=True, exist_ok=True)
        (songs / name).write_bytes(data)
    return songs


def notes_by_piece(output):
    table = pq.read_table(output / "notes").sort_by([("piece_id", "ascending"), ("position", "ascending")])
    by_piece = collections.defaultdict(list)
    for row in table.to_pylist():
        by_piece[row["piece_id"]].append(row)
    return by_piece


def test_the_listing_finds_the_files_spark_finds_with_their_sizes_and_times(spark, tmp_path):
    names = ["a.mid", "b_c.MIDI", "deep/er/d.Mid", "x.y/e.midi", "odd [name] {1}.mid",  # listed
             "_hidden.mid", ".dot.mid", "_folder/f.mid", "sub/.dot/g.mid", "notes.txt", "h.midx"]  # not
    songs = write_songs(tmp_path, {name: MELODY + bytes(len(name)) for name in names})
    listed = listing(spark, str(songs))
    # Spark's own binaryFile listing is the reference: what the first run reads.
    spark_rows = list_midi_files(spark, str(songs)).select("path", "length", "modificationTime").collect()
    assert [path for path, _, _ in listed] == sorted(row["path"] for row in spark_rows)
    assert sorted(path.rsplit("/songs/", 1)[1] for path, _, _ in listed) == sorted(names[:5])
    assert {(row["path"], row["length"], int(row["modificationTime"].timestamp() * 1000)) for row in spark_rows} \
        == set(listed)


def test_a_bad_file_becomes_an_error_row_and_the_rest_is_parsed(spark, tmp_path):
    songs = write_songs(tmp_path, {"melody.mid": MELODY, "nested/CHORDS.MIDI": CHORDS,
                                   "broken.mid": b"this is not a MIDI file",
                                   "notes.txt": MELODY})  # not a .mid: ignored
    output = tmp_path / "corpus"

    summary = parse_corpus(spark, ParseConfig(str(songs), str(output)))

    assert (summary.files, summary.parsed, summary.empty, summary.failed, summary.tokens) == (3, 2, 0, 1, 6)
    pieces = {row["path"].rsplit("/", 1)[1]: row for row in read_rows(output / "pieces")}
    assert pieces["broken.mid"]["status"] == "error"
    assert "not a MIDI file" in pieces["broken.mid"]["error"]
    assert pieces["melody.mid"]["piece_id"] == piece_id(MELODY)
    assert (pieces["CHORDS.MIDI"]["status"], pieces["CHORDS.MIDI"]["n_tokens"]) == ("ok", 2)

    by_piece = notes_by_piece(output)
    assert [(r["position"], r["token"], r["offset"], r["duration"]) for r in by_piece[piece_id(MELODY)]] == [
        (0, "C4", 0.0, 0.5), (1, "D4", 0.5, 0.5), (2, "E4", 1.0, 0.5), (3, "F4", 1.5, 0.5)]
    assert [(r["token"], r["pitches"], r["velocity"]) for r in by_piece[piece_id(CHORDS)]] == [
        ("0.4.7", [60, 64, 67], 80), ("2.5.9", [62, 65, 69], 80)]


def with_track_length(data: bytes, length: int) -> bytes:
    """`data` with its first track's declared length replaced."""
    at = data.index(b"MTrk") + 4
    return data[:at] + length.to_bytes(4, "big") + data[at + 4:]


def many_notes(count: int) -> bytes:
    events = []
    for i in range(count):
        events += [(0, on(40 + i % 40)), (10, off(40 + i % 40))]
    return midi_file(track(*events))


# file name → (bytes, expected status, words expected in the reason); every case of a bad or odd
# file the parse job must survive, written here byte by byte.
CASES = {
    "not_midi.mid": (b"RIFF\x00\x00\x00\x00WAVEfmt ", "error", "not a MIDI file"),
    "zero_bytes.mid": (b"", "error", "empty file"),
    "cut_mid_track.mid": (MELODY[:-9], "error", "declares"),
    "length_too_long.mid": (with_track_length(MELODY, 5000), "error", "declares 5000 bytes"),
    "length_too_short.mid": (with_track_length(MELODY, 6), "error", "ends in the middle of an event"),
    "unknown_chunk.mid": (header(1) + b"XFIH\x00\x00\x00\x02hi" + melody([64]), "ok", None),
    "running_status.mid": (midi_file(track((0, b"\x90\x3c\x50"), (240, b"\x3c\x00"), (0, b"\x3e\x50"),
                                           (240, b"\x3e\x00"))), "ok", None),
    "velocity_zero_off.mid": (midi_file(track((0, on(60)), (480, on(60, 0)))), "ok", None),
    "never_ends.mid": (midi_file(track((0, on(60)), (960, b"\xff\x01\x01x"))), "ok", None),
    "percussion_only.mid": (midi_file(melody([36, 38], channel=9)), "empty", "percussion only"),
    "no_notes.mid": (midi_file(track((0, tempo(100)))), "empty", "no notes"),
    "format_2.mid": (midi_file(melody([60]), smf_format=2), "error", "format 2"),
    "too_big.mid": (midi_file(track((0, b"\xf0" + varlen(500_000) + bytes(500_000)), (0, on(60)), (480, off(60)))),
                    "error", "over the 400000 bytes limit (--max-bytes)"),
}
TOKENS_OF_OK_CASES = {"unknown_chunk.mid": ["E4"], "running_status.mid": ["C4", "D4"],
                      "velocity_zero_off.mid": ["C4"], "never_ends.mid": ["C4"]}


def test_every_bad_input_gets_its_own_row_and_reason(spark, tmp_path):
    songs = write_songs(tmp_path, {name: data for name, (data, _, _) in CASES.items()})
    output = tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output), max_bytes=400_000)

    summary = parse_corpus(spark, config)

    pieces = {row["path"].rsplit("/", 1)[1]: row for row in read_rows(output / "pieces")}
    assert sorted(pieces) == sorted(CASES)
    for name, (_, status, reason) in CASES.items():
        assert (name, pieces[name]["status"]) == (name, status)
        if reason:
            assert reason in pieces[name]["error"], name
    by_piece = notes_by_piece(output)
    for name, tokens in TOKENS_OF_OK_CASES.items():
        assert [r["token"] for r in by_piece[pieces[name]["piece_id"]]] == tokens
    assert by_piece[pieces["never_ends.mid"]["piece_id"]][0]["duration"] == 2.0
    assert (summary.parsed, summary.empty, summary.failed) == (4, 2, 7)


def test_a_file_over_the_time_limit_becomes_a_timeout_row(spark, tmp_path):
    # A limit of one microsecond: no machine parses 30,000 notes that fast, so the outcome does
    # not depend on this machine's speed. (The limit is a timer signal: it only works in the
    # main thread of the executor's Python worker, which is what this checks through Spark.)
    songs = write_songs(tmp_path, {"slow.mid": many_notes(30000)})
    summary = parse_corpus(spark, ParseConfig(str(songs), str(tmp_path / "corpus"), file_timeout=1e-6))
    assert (summary.parsed, summary.failed) == (0, 1)
    [piece] = read_rows(tmp_path / "corpus" / "pieces")
    assert (piece["status"], piece["error"]) == ("error", "timeout: parsing took over 1e-06 s (--file-timeout)")


def test_a_rerun_parses_only_new_content_and_counts_copies_once(spark, tmp_path):
    songs = write_songs(tmp_path, {"melody.mid": MELODY, "melody copy.mid": MELODY})
    output = tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output))

    first = parse_corpus(spark, config)
    (songs / "chords.mid").write_bytes(CHORDS)
    second = parse_corpus(spark, config)

    assert (first.files, first.parsed, first.duplicates, first.known) == (2, 1, 1, 0)
    assert (second.files, second.parsed, second.duplicates, second.known) == (3, 1, 0, 2)
    pieces = {row["path"].rsplit("/", 1)[1]: row for row in read_rows(output / "pieces")}
    assert {name: (row["status"], row["piece_id"]) for name, row in pieces.items()} == {
        "melody copy.mid": ("ok", piece_id(MELODY)), "melody.mid": ("duplicate", piece_id(MELODY)),
        "chords.mid": ("ok", piece_id(CHORDS))}  # the first path in order keeps the content
    assert pieces["melody.mid"]["error"].endswith("/melody copy.mid")
    assert {pid: len(rows) for pid, rows in notes_by_piece(output).items()} == {
        piece_id(MELODY): 4, piece_id(CHORDS): 2}


def test_a_small_rerun_parses_on_the_driver_into_the_tables_a_spark_job_writes(spark, tmp_path):
    songs = write_songs(tmp_path, {"melody.mid": MELODY})
    added = {"chords.mid": CHORDS, "copy of melody.mid": MELODY, "broken.mid": b"MThd not really",
             "nothing.mid": b"", "long.mid": midi_file(melody(list(range(40, 90))))}
    runs = {}
    for driver_max_files in (0, 1000):  # the re-run as a Spark job, then on the driver
        output = tmp_path / f"corpus-{driver_max_files}"
        config = ParseConfig(str(songs), str(output), driver_max_files=driver_max_files)
        parse_corpus(spark, config)
        for name, content in added.items():
            (songs / name).write_bytes(content)
        spark.sparkContext.setJobGroup(f"rerun-{driver_max_files}", "the re-run")
        summary = parse_corpus(spark, config)
        jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(f"rerun-{driver_max_files}")
        spark.sparkContext.setJobGroup("after", "")
        assert (len(jobs) == 0) == (driver_max_files > 0), jobs
        # Files are written anew for each output: all but their modification times must agree.
        pieces = [{k: v for k, v in row.items() if k not in ("run", "modified")} for row in read_rows(output / "pieces")]
        notes = [{k: v for k, v in row.items() if k != "run"} for row in read_rows(output / "notes")]
        runs[driver_max_files] = (summary, sorted(pieces, key=lambda r: r["path"]),
                                  sorted(notes, key=lambda r: (r["piece_id"], r["position"])))
        for name in added:
            (songs / name).unlink()
    assert runs[1000] == runs[0]
    summary = runs[0][0]
    assert (summary.parsed, summary.duplicates, summary.known, summary.files) == (2, 1, 1, 6), summary
    for part in (tmp_path / "corpus-1000" / "notes").rglob("*.parquet"):  # in order, as ranks read them
        rows = [(r["piece_id"], r["position"]) for r in pq.read_table(part).to_pylist()]
        assert rows == sorted(rows)


def hadoop_bytes_read(spark) -> int:
    """Bytes read so far through Hadoop's local filesystem in this JVM (the executors of local[2] too)."""
    statistics = spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(s.getBytesRead() for s in statistics if s.getScheme() == "file")


@pytest.mark.parametrize("driver_max_files", [0, 1000], ids=["spark job", "on the driver"])
def test_a_rerun_reads_no_byte_of_a_known_file_and_rereads_a_changed_one(spark, tmp_path, monkeypatch,
                                                                          driver_max_files):
    big = midi_file(track((0, b"\xf0" + varlen(300_000) + bytes(300_000)), (0, on(60)), (480, off(60))))
    songs = write_songs(tmp_path, {"big.mid": big, "melody.mid": MELODY})
    output = tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output), driver_max_files=driver_max_files)
    parse_corpus(spark, config)
    # What the driver reads goes through storage.read_bytes: counted on its way.
    read_on_driver = []
    monkeypatch.setattr(storage, "read_bytes",
                        lambda uri, read=storage.read_bytes: read_on_driver.append(read(uri)) or read_on_driver[-1])

    # Other bytes under the same path, size and modification time: a run that read the file would
    # find a new piece in it.
    stat = (songs / "melody.mid").stat()
    (songs / "melody.mid").write_bytes(MELODY.replace(bytes([0x90, 62]), bytes([0x90, 61])))
    os.utime(songs / "melody.mid", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (songs / "odd [name] {1}.mid").write_bytes(CHORDS)  # glob characters, taken literally
    before = hadoop_bytes_read(spark)
    second = parse_corpus(spark, config)
    read = hadoop_bytes_read(spark) - before + sum(map(len, read_on_driver))
    assert (second.files, second.known, second.parsed) == (3, 2, 1)
    assert len(CHORDS) <= read < len(big) // 2, read  # the new file and the pieces table, not big.mid
    assert read_on_driver == ([CHORDS] if driver_max_files else [])

    os.utime(songs / "melody.mid")  # now it counts as changed: read again, a new piece
    third = parse_corpus(spark, config)
    assert (third.known, third.parsed) == (2, 1)
    pieces = read_rows(output / "pieces")
    assert sorted(row["path"].rsplit("/", 1)[1] for row in pieces) == [
        "big.mid", "melody.mid", "melody.mid", "odd [name] {1}.mid"]
    assert all(row["size"] > 0 and row["modified"] is not None for row in pieces)


def test_retry_failed_parses_the_error_rows_again(spark, tmp_path):
    songs = write_songs(tmp_path, {"melody.mid": MELODY, "chords.mid": CHORDS})
    output = tmp_path / "corpus"
    small = ParseConfig(str(songs), str(output), max_bytes=len(MELODY))  # chords.mid is larger
    assert len(CHORDS) > len(MELODY)
    first = parse_corpus(spark, small)
    assert (first.parsed, first.failed) == (1, 1)

    larger = ParseConfig(str(songs), str(output), max_bytes=1 << 20)
    assert (parse_corpus(spark, larger).known, parse_corpus(spark, larger).parsed) == (2, 0)
    retried = parse_corpus(spark, ParseConfig(str(songs), str(output), max_bytes=1 << 20, retry_failed=True))
    assert (retried.known, retried.parsed, retried.failed) == (1, 1, 0)
    assert parse_corpus(spark, ParseConfig(str(songs), str(output), retry_failed=True)).known == 2
    assert {pid: len(rows) for pid, rows in notes_by_piece(output).items()} == {
        piece_id(MELODY): 4, piece_id(CHORDS): 2}


def test_notes_files_are_sorted_by_piece_and_position(spark, tmp_path):
    songs = write_songs(tmp_path, {path.name: path.read_bytes()
                                   for path in sorted((ROOT / "midi_songs").glob("*.mid"))[:8]})
    parse_corpus(spark, ParseConfig(str(songs), str(tmp_path / "corpus")))
    files = sorted((tmp_path / "corpus" / "notes").rglob("*.parquet"))
    assert files
    for file in files:
        keys = [(row["piece_id"], row["position"]) for row in pq.read_table(file, columns=["piece_id", "position"]).to_pylist()]
        assert keys == sorted(keys), file


def note_on_pitches(data: bytes) -> collections.Counter:
    """The independent count: music21's own low-level reader, note-ons off channel 10,
    one per (onset tick, pitch)."""
    from music21 import midi

    reader = midi.MidiFile()
    reader.readstr(data)
    struck = set()
    for midi_track in reader.tracks:
        tick = 0
        for event in midi_track.events:
            if event.isDeltaTime():
                tick += event.time
            elif event.isNoteOn() and event.channel != 10:
                struck.add((tick, event.pitch))
    return collections.Counter(pitch for _, pitch in struck)


def real_files():
    files = sorted((ROOT / "midi_songs").glob("*.mid"))
    if SHARED_MIDI.is_dir():
        files += sorted((SHARED_MIDI / "midis").rglob("*.mid"))[::12]
    return files


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_tokens_hold_exactly_the_files_note_ons(path: Path):
    piece, tokens = parse_piece(str(path), path.read_bytes())
    assert piece.status == "ok"
    pitches = collections.Counter(p for token in tokens for p in token.pitches)
    assert pitches == note_on_pitches(path.read_bytes())


@pytest.mark.parametrize("driver_max_files", [0, 1000], ids=["spark job", "on the driver"])
def test_a_file_deleted_after_the_listing_becomes_an_error_row(spark, tmp_path, monkeypatch, driver_max_files):
    from lstm_composer import corpus

    songs = write_songs(tmp_path, {"melody.mid": MELODY})
    output = tmp_path / "corpus"
    config = ParseConfig(str(songs), str(output), driver_max_files=driver_max_files)
    parse_corpus(spark, config)
    (songs / "chords.mid").write_bytes(CHORDS)
    (songs / "gone.mid").write_bytes(midi_file(melody([70, 72])))

    def listed_then_deleted(spark, input_path, list_files=corpus.listing):
        entries = list_files(spark, input_path)
        (songs / "gone.mid").unlink()  # as a user's upload or clean-up might, while the job runs
        return entries

    monkeypatch.setattr(corpus, "listing", listed_then_deleted)
    summary = parse_corpus(spark, config)
    assert (summary.files, summary.known, summary.parsed, summary.failed) == (3, 1, 1, 1), summary
    rows = {row["path"].rsplit("/", 1)[1]: row for row in read_rows(output / "pieces")}
    assert rows["gone.mid"]["status"] == "error"
    assert "could not be read" in rows["gone.mid"]["error"] and "does not exist" in rows["gone.mid"]["error"]
    assert (rows["chords.mid"]["status"], rows["chords.mid"]["n_tokens"]) == ("ok", 2)
    assert "1 failed: their reasons are in the pieces table" in str(summary)

    monkeypatch.undo()
    (songs / "gone.mid").write_bytes(midi_file(melody([70, 72])))  # back: the next run reads it, no flag needed
    again = parse_corpus(spark, config)
    assert (again.known, again.parsed, again.failed) == (2, 1, 0), again


def test_a_name_spark_cannot_take_is_parsed_with_the_others(spark, tmp_path):
    songs = write_songs(tmp_path, {"x:y.mid": MELODY, "chords.mid": CHORDS, "sub/a:b:c.midi": midi_file(melody([70]))})
    output = tmp_path / "corpus"
    summary = parse_corpus(spark, ParseConfig(str(songs), str(output)))
    assert (summary.files, summary.parsed, summary.failed) == (3, 3, 0), summary
    assert {row["path"].rsplit("/", 1)[1]: row["status"] for row in read_rows(output / "pieces")} == {
        "x:y.mid": "ok", "chords.mid": "ok", "a:b:c.midi": "ok"}
    assert len(notes_by_piece(output)[piece_id(MELODY)]) == 4


@pytest.mark.parametrize("case, message", [
    ("missing", "--input {} does not exist"),
    ("a file", "--input {} is a file: give the folder"),
    ("empty", "--input {} holds no .mid or .midi file")])
def test_an_input_with_nothing_to_parse_is_an_error_naming_it(spark, tmp_path, case, message):
    from lstm_composer.corpus import ParseInputError

    given = tmp_path / "songs"
    if case == "a file":
        given.write_bytes(MELODY)
    elif case == "empty":
        (given / "sub").mkdir(parents=True)
        (given / "notes.txt").write_text("no MIDI here")
    with pytest.raises(ParseInputError, match=re.escape(message.format(given))):
        parse_corpus(spark, ParseConfig(str(given), str(tmp_path / "corpus")))
    assert not (tmp_path / "corpus").exists()


def test_run_ids_sort_in_the_order_the_runs_began():
    import time

    from lstm_composer.corpus import new_run_id

    ids = []
    for _ in range(20):  # a re-run on the driver can begin within the second of the run before
        ids.append(new_run_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 20
