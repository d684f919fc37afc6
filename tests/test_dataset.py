from dataclasses import replace

import numpy as np
import pytest
import pyarrow as pa
import pyarrow.parquet as pq

from lstm_composer.dataset import make_dataset, rank_window_starts, window_starts
from lstm_composer.shards import hold_out
from lstm_composer.tables import Corpus, read_token_stream
from lstm_composer.presets import preset
from lstm_composer.tokens import Vocabulary

# Two pieces whose tokens sort into ids equal to their value: a0..a6 and b0..b4.
PIECES = {"a": [f"a{i}" for i in range(7)], "b": [f"b{i}" for i in range(5)]}


def write_notes(path, order) -> Corpus:
    rows = [(pid, pos, tok) for pid in order for pos, tok in enumerate(PIECES[pid])]
    rows.reverse()  # the reader must restore piece and position order itself
    pid, pos, tok = zip(*rows)
    (path / "notes").mkdir()
    pq.write_table(pa.table({"piece_id": pid, "position": pa.array(pos, pa.int32()), "token": tok}),
                   path / "notes/part-0.parquet")
    return Corpus(str(path))


def test_windows_stay_inside_one_piece(tmp_path):
    corpus = write_notes(tmp_path, ["b", "a"])
    vocabulary = Vocabulary(PIECES["a"] + PIECES["b"])
    stream = read_token_stream(corpus, vocabulary)
    assert stream.piece_ids == ["a", "b"]
    assert stream.bounds.tolist() == [0, 7, 12]
    assert vocabulary.decode(stream.piece(1)) == PIECES["b"]
    # windows of 3 + the next token: a gives 4 (starts 0..3), b gives 2 (starts 7, 8)
    assert window_starts(stream, 3).tolist() == [0, 1, 2, 3, 7, 8]
    assert window_starts(stream, 7).tolist() == []


def test_dataset_batches_are_windows_and_their_next_token(tmp_path):
    corpus = write_notes(tmp_path, ["a", "b"])
    vocabulary = Vocabulary(PIECES["a"] + PIECES["b"])
    stream = read_token_stream(corpus, vocabulary)
    starts = window_starts(stream, 3)
    config = replace(preset("tiny"), sequence_length=3, batch_size=2, input_encoding="embedding",
                     sparse_targets=True)
    seen = set()
    for windows, targets in make_dataset(stream, starts, config, len(vocabulary), seed=1).take(6):
        for window, target in zip(windows.numpy(), targets.numpy()):
            start = int(np.flatnonzero(stream.ids == window[0])[0])
            assert window.tolist() == stream.ids[start:start + 3].tolist()
            assert target == stream.ids[start + 3]
            seen.add(start)
    assert seen == set(starts.tolist())  # three batches of two cover all six windows, twice


def test_paper_encoding_is_scaled_scalars_and_one_hot_targets(tmp_path):
    corpus = write_notes(tmp_path, ["a", "b"])
    vocabulary = Vocabulary(PIECES["a"] + PIECES["b"])
    stream = read_token_stream(corpus, vocabulary)
    config = replace(preset("paper"), sequence_length=3, batch_size=1)
    windows, targets = next(iter(make_dataset(stream, np.array([7]), config, len(vocabulary), seed=0)))
    assert windows.shape == (1, 3, 1)
    assert np.allclose(windows.numpy()[0, :, 0], np.array([7, 8, 9]) / 12)
    assert targets.numpy()[0].tolist() == [0.0] * 10 + [1.0, 0.0]


def test_validation_pieces_are_a_seeded_share_and_their_windows_are_not_trained_on(tmp_path):
    pieces = [f"piece{i:02d}" for i in range(20)]
    held_out = hold_out(pieces, 0.1, seed=3)
    assert len(held_out) == 2 and set(held_out) <= set(pieces)
    assert hold_out(pieces, 0.1, seed=3) == held_out
    assert hold_out(pieces, 0.1, seed=4) != held_out
    assert hold_out(pieces[:2], 0.1, seed=0) != ()  # at least one piece when there are two
    assert hold_out(pieces[:1], 0.5, seed=0) == () and hold_out(pieces, 0.0, seed=0) == ()

    corpus = write_notes(tmp_path, ["a", "b"])
    stream = read_token_stream(corpus, Vocabulary(PIECES["a"] + PIECES["b"]))
    assert window_starts(stream, 3, {"b"}).tolist() == [7, 8]
    assert window_starts(stream, 3, {"a"}).tolist() == [0, 1, 2, 3]


def test_the_ranks_together_use_every_window_once(tmp_path):
    # Four pieces of 7, 5, 12 and 2 tokens; windows of 3 tokens and the next one.
    lengths = {"a": 7, "b": 5, "c": 12, "d": 2}
    rows = [(piece, position, f"t{position}") for piece, n in lengths.items() for position in range(n)]
    (tmp_path / "notes").mkdir()
    pq.write_table(pa.table({"piece_id": [r[0] for r in rows], "position": [r[1] for r in rows],
                             "token": [r[2] for r in rows]}), tmp_path / "notes/part-0.parquet")
    stream = read_token_stream(Corpus(str(tmp_path)), Vocabulary(f"t{i}" for i in range(12)))

    def windows(starts) -> list[tuple[str, int]]:  # (piece, position of the window's first token)
        pieces = np.searchsorted(stream.bounds, starts, side="right") - 1
        return [(stream.piece_ids[p], int(s - stream.bounds[p])) for p, s in zip(pieces, starts)]

    for pieces in ({"a", "b", "c", "d"}, {"c", "d"}, {"b"}):
        every_window = sorted((p, s) for p in pieces for s in range(lengths[p] - 3))
        for size in (1, 2, 3, 5):
            used = [w for rank in range(size) for w in windows(rank_window_starts(stream, 3, pieces, rank, size))]
            assert sorted(used) == every_window, (pieces, size)  # each window once: none missing, none twice


def write_pieces(path, lengths: dict[str, int], files: int = 3) -> Corpus:
    """Pieces of the given lengths, spread over `files` Parquet files, each file sorted by piece
    in row groups of 7 rows, as the parse job lays out the notes table."""
    names = sorted(lengths)
    (path / "notes").mkdir()
    for f in range(files):
        rows = [(pid, pos, f"t{pos % 5}") for pid in names[f::files] for pos in range(lengths[pid])]
        pid, pos, tok = zip(*rows)
        pq.write_table(pa.table({"piece_id": pid, "position": pa.array(pos, pa.int32()), "token": tok}),
                       path / f"notes/part-{f}.parquet", row_group_size=7)
    return Corpus(str(path))


def test_each_rank_reads_only_its_range_of_whole_pieces_and_together_they_read_everything(tmp_path):
    from lstm_composer.shards import plan_shards, shard_bounds
    from lstm_composer.tables import notes_summary

    lengths = {f"{i:02x}" + "0" * 14: 10 + (i * 7) % 23 for i in range(30)}
    corpus = write_pieces(tmp_path, lengths)
    vocabulary, counts = notes_summary(corpus)
    assert counts == lengths and vocabulary.tokens == [f"t{i}" for i in range(5)]
    held_out = tuple(sorted(lengths)[5::10])
    plan = plan_shards(counts, held_out, ranks=3, sequence_length=4)
    assert plan.ranks == 3 and plan.held_out_by_range  # each range holds a held-out piece

    whole = read_token_stream(corpus, vocabulary)
    streams = [read_token_stream(corpus, vocabulary, shard=plan.shard(rank)) for rank in range(3)]
    assert sum((s.piece_ids for s in streams), []) == whole.piece_ids  # each piece once, whole
    assert np.concatenate([s.ids for s in streams]).tolist() == whole.ids.tolist()
    trained = [sum(lengths[p] for p in s.piece_ids if p not in held_out) for s in streams]
    assert max(trained) - min(trained) <= max(lengths.values()), trained  # balanced to within a piece
    assert all(s.nbytes < whole.nbytes for s in streams)

    # Fewer held-out pieces than ranks are read by every rank.
    assert not plan_shards(counts, held_out[:1], ranks=3, sequence_length=4).held_out_by_range
    with pytest.raises(ValueError, match="fewer than the 3 ranks"):
        shard_bounds({"a": 10, "b": 10, "c": 3}, (), ranks=3, sequence_length=4)
    assert shard_bounds({"a": 100, "b": 10, "c": 10}, (), ranks=3, sequence_length=4) == [None, "b", "c", None]


def test_ranks_validate_on_disjoint_shares_of_the_held_out_windows(tmp_path):
    from lstm_composer.shards import plan_shards
    from lstm_composer.tables import notes_summary
    from lstm_composer.rank import RankTask, read_windows

    lengths = {f"{i:02x}" + "0" * 14: 10 + (i * 7) % 23 for i in range(30)}
    corpus = write_pieces(tmp_path, lengths)
    vocabulary, counts = notes_summary(corpus)
    everything = read_token_stream(corpus, vocabulary)
    for held_out, by_range in ((tuple(sorted(lengths)[:1]), False), (tuple(sorted(lengths)[3::7]), True)):
        plan = plan_shards(counts, held_out, ranks=2, sequence_length=4)
        assert plan.held_out_by_range == by_range
        held_out_windows = window_starts(everything, 4, set(held_out))
        shares = []
        for rank in range(2):
            task = RankTask(replace(preset("tiny"), sequence_length=4), corpus.root, str(tmp_path / "model"),
                            tuple(vocabulary.tokens), None, plan, 0, 1, 0, 1)
            windows = read_windows(task, vocabulary, rank, 2)
            val_stream, val_starts = windows.validation
            # each window as (piece, position in it), whichever stream the rank read it from
            pieces = np.searchsorted(val_stream.bounds, val_starts, side="right") - 1
            shares.append({(val_stream.piece_ids[p], int(s - val_stream.bounds[p])) for p, s in zip(pieces, val_starts)})
        assert not shares[0] & shares[1] and len(shares[0]) and len(shares[1])
        pieces = np.searchsorted(everything.bounds, held_out_windows, side="right") - 1
        assert shares[0] | shares[1] == {(everything.piece_ids[p], int(s - everything.bounds[p]))
                                         for p, s in zip(pieces, held_out_windows)}


def test_a_shard_can_be_an_explicit_list_of_pieces(tmp_path):
    from lstm_composer.tables import Shard

    corpus = write_notes(tmp_path, ["a", "b"])
    vocabulary = Vocabulary(PIECES["a"] + PIECES["b"])
    stream = read_token_stream(corpus, vocabulary, shard=Shard(only=("b",)))
    assert stream.piece_ids == ["b"] and vocabulary.decode(stream.ids) == PIECES["b"]
    empty = read_token_stream(corpus, vocabulary, shard=Shard(first="c"))
    assert empty.piece_ids == [] and window_starts(empty, 3).tolist() == []
