"""Dense targets and transposed training windows, on tiny tables written here."""
import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_composer.dataset import dense_window_starts, make_dataset, transposition_table
from lstm_composer.expression import Expression
from lstm_composer.form import KEY_NAMES, transposed_key
from lstm_composer.metre import bar_beat
from lstm_composer.presets import preset
from lstm_composer.tables import Corpus, notes_summary, read_token_stream
from lstm_composer.tokens import Vocabulary, note_name, token_for, transpose_token, with_transpositions
from lstm_composer.rank import rank_datasets
from lstm_composer.training import TrainConfig, prepare_run

# Piece "low" starts on the piano's lowest key (A0 = 21), so it cannot go down; "mid" can.
PIECES = {"low": [[21], [24, 28, 31], [23], [26], [21, 25, 28], [22], [24]],
          "mid": [[60], [62], [64], [60, 64, 67], [65], [67], [69], [71], [72], [48, 55, 64], [62]]}


def write_notes(path):
    rows = []
    for piece, onsets in PIECES.items():
        for position, pitches in enumerate(onsets):
            rows.append((piece, position, token_for(pitches), pitches, position * 0.5, 0.5, 64 + position))
    names = ("piece_id", "position", "token", "pitches", "offset", "duration", "velocity")
    columns = dict(zip(names, map(list, zip(*rows))))
    columns["position"] = pa.array(columns["position"], pa.int32())
    (path / "notes").mkdir(parents=True)
    pq.write_table(pa.table(columns), path / "notes/part-0.parquet")


@pytest.fixture
def stream(tmp_path):
    write_notes(tmp_path)
    tokens = {t for t in pq.read_table(tmp_path / "notes", columns=["token"])["token"].to_pylist()}
    vocabulary = Vocabulary(with_transpositions(tokens, (-5, 6)))
    return vocabulary, read_token_stream(Corpus(str(tmp_path)), vocabulary, Expression(), bass=True, key=True,
                                         metre=True)


def test_transposing_there_and_back_gives_the_token_again():
    for token in ["C4", "B-3", "A0", "C8", "0.4.7", "4.7.11", "0.4.8", "0.3.6.9", "1.3.5.7.9.11"]:
        for shift in range(-5, 7):
            moved = transpose_token(token, shift)
            if moved is None:
                continue
            assert transpose_token(moved, -shift) == token
    assert transpose_token("C4", 7) == "G4" and transpose_token("4.7.11", 1) == "5.8.0"
    assert transpose_token("0.4.8", 4) == "0.4.8"  # symmetric chords map onto themselves
    assert transpose_token("A0", -1) is None and transpose_token("C8", 1) is None
    assert with_transpositions(["A0"], (-5, 6)) == {note_name(p) for p in range(21, 28)}
    assert len(with_transpositions(["0.4.7"], (-5, 6))) == 12


def test_dense_windows_tile_each_piece_and_targets_are_the_next_positions(stream):
    vocabulary, tokens = stream
    config = replace(preset("small"), sequence_length=4, batch_size=5, transpose=(0, 0))
    starts = dense_window_starts(tokens, 4)
    # low: 7 tokens → windows at 0 and 4 (the second has 2 targets); mid: 11 tokens → 7, 11, 15.
    assert starts.tolist() == [[0, 0, 7], [4, 0, 7], [7, 7, 18], [11, 7, 18], [15, 7, 18]]
    features, targets, weights = next(iter(make_dataset(tokens, starts, config, len(vocabulary), seed=0,
                                                        shuffle=False)))
    inputs, nexts = features["token"].numpy(), targets["next_token"].numpy()
    weight = weights["next_token"].numpy()
    for row, (start, begin, end) in enumerate(starts):
        real = min(4, end - start - 1)  # positions whose next token is in the piece
        assert inputs[row, :real].tolist() == tokens.ids[start:start + real].tolist()
        assert nexts[row, :real].tolist() == tokens.ids[start + 1:start + 1 + real].tolist()
        assert weight[row].tolist() == [1.0] * real + [0.0] * (4 - real)
    # every position after the first of each piece is a target exactly once
    assert weight.sum() == sum(len(p) - 1 for p in PIECES.values())
    basses = features["bass"].numpy()
    assert basses[0, :4].tolist() == [21, 24, 23, 26]
    assert features["chosen_token"].numpy().tolist() == nexts.tolist()


def test_training_windows_are_transposed_as_a_whole_and_stay_on_the_piano(stream):
    vocabulary, tokens = stream
    config = replace(preset("small"), sequence_length=6, batch_size=2, transpose=(-5, 6))
    starts = dense_window_starts(tokens, 6)[[0, 1]]  # the first window of each piece
    table = transposition_table(vocabulary, config.transpose)
    seen = {0: set(), 1: set()}
    dataset = make_dataset(tokens, starts, config, len(vocabulary), seed=3, shuffle=False, transpositions=table)
    for features, targets, _ in dataset.take(60):
        for row, (start, _, _) in enumerate(starts):
            original = vocabulary.decode(tokens.ids[start:start + 6])
            moved = vocabulary.decode(features["token"].numpy()[row])
            shift = int(features["bass"].numpy()[row, 0] - tokens.bass[start])
            assert moved == [transpose_token(t, shift) for t in original]
            assert (features["bass"].numpy()[row] - tokens.bass[start:start + 6] == shift).all()
            assert vocabulary.decode([targets["next_token"].numpy()[row, 0]]) == [transpose_token(original[1], shift)]
            assert features["ioi"].numpy()[row].tolist() == tokens.expression[start:start + 6, 0].tolist()
            # the key moves with the notes, its mode kept; where in the bar they fall does not
            assert features["key"].numpy()[row].tolist() == [transposed_key(int(k), shift)
                                                              for k in tokens.key[start:start + 6]]
            assert features["bar_beat"].numpy()[row].tolist() == bar_beat(tokens.bar_position[start:start + 6]).tolist()
            seen[row].add(shift)
    assert seen[0] == set(range(0, 7))  # from A0 only upwards
    assert seen[1] == set(range(-5, 7))
    assert KEY_NAMES[tokens.key[7]] == "C major" and KEY_NAMES[transposed_key(tokens.key[7], -3)] == "A major"
    assert KEY_NAMES[transposed_key(KEY_NAMES.index("E minor"), 5)] == "A minor"


def test_a_rank_transposes_its_training_windows_and_never_its_validation_windows(stream):
    vocabulary, tokens = stream
    config = replace(preset("small"), sequence_length=6, batch_size=2, transpose=(-5, 6))
    starts = dense_window_starts(tokens, 6)[[0, 1]]
    training, validation = rank_datasets(config, vocabulary, (tokens, starts), (tokens, starts),
                                         fewest_validation=2, seed=0)
    originals = {tuple(tokens.ids[start:start + 6]) for start in starts[:, 0]}
    trained = [tuple(row) for features, _, _ in training.take(20) for row in features["token"].numpy()]
    assert {t for row in trained for t in row} - set(tokens.ids.tolist()) - {0}  # tokens only transposition makes
    validated = [tuple(row) for features, _, _ in validation["validation_data"].take(10)
                 for row in features["token"].numpy()]
    assert set(validated) == originals and validation["validation_steps"] == 1


def test_a_runs_vocabulary_holds_every_transposition_its_training_makes(tmp_path):
    write_notes(tmp_path / "corpus")
    config = TrainConfig(str(tmp_path / "corpus"), str(tmp_path / "model"), replace(preset("fast"), batch_size=1),
                         epochs=1, num_proc=1)
    run = prepare_run(config)
    vocabulary, first_epoch, counts = run.vocabulary, run.first_epoch, notes_summary(run.corpus)[1]  # the model's copy
    corpus = {token_for(pitches) for onsets in PIECES.values() for pitches in onsets}
    moved = {transpose_token(token, shift) for token in corpus for shift in range(-5, 7)} - {None}
    assert set(vocabulary.tokens) == moved and (first_epoch, counts) == (0, {"low": 7, "mid": 11})
    assert "C#1" not in corpus and "C#1" in moved and "G#0" not in moved  # nothing below A0
    assert json.loads((tmp_path / "model" / "vocab.json").read_text())["tokens"] == vocabulary.tokens
