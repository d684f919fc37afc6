"""Style labels (`styles.py`): read from a CSV beside the corpus or from each file's folder, kept in
the model directory's copy of the notes table, told to the network, chosen by generate --style."""
import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_composer.expression import Expression
from lstm_composer.presets import preset
from lstm_composer.styles import StyleSource, read_labels
from lstm_composer.tables import read_token_stream
from lstm_composer.tokens import note_name

PATHS = {"p1": "file:/music/Debussy/clair.mid", "p2": "s3://bucket/music/Ravel/bolero.mid",
         "p3": "file:/music/loose.mid"}


def test_labels_come_from_each_files_folder_or_a_csv_beside_the_files(tmp_path):
    assert read_labels(StyleSource.parse("folder"), PATHS) == {"p1": "Debussy", "p2": "Ravel", "p3": "music"}
    table = tmp_path / "metadata.csv"
    table.write_text("composer,title,midi\nDebussy,Clair de lune,Debussy/clair.mid\nRavel,Bolero,./Ravel/bolero.mid\n"
                     ",Untitled,loose.mid\nSatie,Gymnopedie,Satie/gymnopedie.mid\n")
    # Matched by the end of each path; a row without a label, or naming no piece, labels nothing.
    assert read_labels(StyleSource.parse(f"{table}:midi:composer"), PATHS) == {"p1": "Debussy", "p2": "Ravel"}
    plain = tmp_path / "labels.csv"
    plain.write_text("path,label\n/music/loose.mid,sketch\n")
    assert read_labels(StyleSource.parse(str(plain)), PATHS) == {"p3": "sketch"}

    with pytest.raises(ValueError, match="has no column 'path' .*--style-from .*:PATH_COLUMN:LABEL_COLUMN"):
        read_labels(StyleSource.parse(str(table)), PATHS)
    plain.write_text("path,label\nelsewhere/other.mid,x\n")
    with pytest.raises(ValueError, match="no path of .*labels.csv names a file of the corpus"):
        read_labels(StyleSource.parse(str(plain)), PATHS)
    with pytest.raises(ValueError, match="--style-from is 'folder' or a CSV file"):
        StyleSource.parse("composers.txt")
    with pytest.raises(ValueError, match="cannot read --style-from"):
        read_labels(StyleSource.parse(str(tmp_path / "missing.csv")), PATHS)


def write_corpus(root, paths: dict[str, str]) -> None:
    """A notes table of 30 single notes per piece, and a pieces table naming each piece's file."""
    rows = [(piece, i, note_name(60 + i % 12), [60 + i % 12], float(i), 1.0, 64) for piece in paths for i in range(30)]
    names = ("piece_id", "position", "token", "pitches", "offset", "duration", "velocity")
    columns = dict(zip(names, map(list, zip(*rows))))
    columns["position"] = pa.array(columns["position"], pa.int32())
    (root / "notes").mkdir(parents=True)
    (root / "pieces").mkdir()
    pq.write_table(pa.table(columns), root / "notes/part-0.parquet")
    pq.write_table(pa.table({"piece_id": list(paths), "path": list(paths.values())}), root / "pieces/part-0.parquet")


def test_training_keeps_each_pieces_label_in_its_notes_table_and_its_settings(tmp_path):
    from lstm_composer.training import TrainConfig, prepare_run

    write_corpus(tmp_path / "corpus", PATHS)
    model = replace(preset("small"), sequence_length=6, batch_size=1)
    config = TrainConfig(str(tmp_path / "corpus"), str(tmp_path / "model"), model, epochs=1, num_proc=1,
                         val_fraction=0.0, style_from=StyleSource.parse("folder"))
    run = prepare_run(config)
    assert run.model.styles == ("Debussy", "Ravel", "music") == tuple(
        json.loads((tmp_path / "model/config.json").read_text())["model"]["styles"])
    copied = pq.read_table(tmp_path / "model/corpus/notes").to_pydict()
    assert {(piece, style) for piece, style in zip(copied["piece_id"], copied["style"])} == {
        ("p1", "Debussy"), ("p2", "Ravel"), ("p3", "music")}
    assert "style" not in pq.read_table(tmp_path / "corpus/notes").column_names  # the corpus itself is untouched
    stream = read_token_stream(run.corpus, run.vocabulary, Expression(), styles=("Ravel", "Debussy"))
    assert [stream.style[stream.bounds[i]] for i in range(3)] == [2, 1, 0]  # by the order given; unknown: 0

    plain = prepare_run(replace(config, style_from=None, overwrite=True))
    assert plain.model.styles == () and "style" not in pq.read_table(tmp_path / "model/corpus/notes").column_names


def test_a_share_of_training_windows_is_told_no_style_and_no_validation_window(tmp_path):
    import numpy as np

    from lstm_composer.dataset import UNLABELLED_SHARE, dense_window_starts, make_dataset
    from lstm_composer.tables import Corpus
    from lstm_composer.tokens import Vocabulary

    rows = [(piece, i, note_name(60 + i % 12), [60 + i % 12], float(i), 1.0, 64, label)
            for piece, label in (("p1", "Debussy"), ("p2", "Ravel")) for i in range(40)]
    names = ("piece_id", "position", "token", "pitches", "offset", "duration", "velocity", "style")
    columns = dict(zip(names, map(list, zip(*rows))))
    columns["position"] = pa.array(columns["position"], pa.int32())
    (tmp_path / "notes").mkdir()
    pq.write_table(pa.table(columns), tmp_path / "notes/part-0.parquet")
    vocabulary = Vocabulary({note_name(p) for p in range(60, 72)})
    config = replace(preset("small"), sequence_length=8, batch_size=400, transpose=(0, 0), styles=("Debussy", "Ravel"))
    stream = read_token_stream(Corpus(str(tmp_path)), vocabulary, Expression(), bass=config.bass, key=config.key,
                               metre=config.metre, styles=config.styles)
    starts = dense_window_starts(stream, 8)

    def told(shuffle: bool) -> np.ndarray:  # (windows, positions): the style each position is told
        batch = make_dataset(stream, np.repeat(starts, 50, axis=0), config, len(vocabulary), seed=0, shuffle=shuffle)
        return next(iter(batch))[0]["style"].numpy()

    training = told(True)
    untold = (training == 0).all(axis=1)
    assert ((training == 0).any(axis=1) == untold).all()  # a window is told its style throughout, or none
    assert abs(untold.mean() - UNLABELLED_SHARE) < 0.06, untold.mean()
    assert (told(False) > 0).all()


def styled_model_dir(tmp_path) -> str:
    """A randomised network told its style, over a corpus of a busy piece labelled "busy" and a
    calm one labelled "calm"."""
    from test_controls import keyed_model_dir

    return keyed_model_dir(tmp_path, metre=True, styles={"a": "busy", "b": "calm"})


def test_a_style_draws_the_window_from_its_pieces_and_tells_the_network(tmp_path):
    from lstm_composer.generate import GenerateConfig, GenerationError, compose
    from midi_bytes import melody, midi_file

    model_dir = styled_model_dir(tmp_path)
    assert {compose(GenerateConfig(model_dir, length=10, seed=seed, style="Calm")).report.primer["piece_id"]
            for seed in range(6)} == {"b"}
    assert {compose(GenerateConfig(model_dir, length=10, seed=seed)).report.primer["piece_id"]
            for seed in range(6)} == {"a", "b"}
    # After the same file, the style the network is told changes what it writes.
    primer = tmp_path / "mine.mid"
    primer.write_bytes(midi_file(melody([60, 62, 64, 65, 67, 69, 71, 72] * 2)))
    busy, calm = (compose(GenerateConfig(model_dir, length=40, seed=3, primer_path=str(primer), style=style))
                  for style in ("busy", "calm"))
    assert busy.tokens != calm.tokens

    with pytest.raises(GenerationError, match="--style 'baroque' is none of the model's: busy, calm"):
        compose(GenerateConfig(model_dir, length=10, style="baroque"))


def test_a_model_without_labels_refuses_a_style_and_still_generates(tmp_path):
    from lstm_composer.generate import GenerateConfig, GenerationError, compose
    from test_controls import keyed_model_dir

    model_dir = keyed_model_dir(tmp_path, metre=True)
    assert len(compose(GenerateConfig(model_dir, length=10)).tokens) == 10
    with pytest.raises(GenerationError, match="--style needs a model trained with style labels"):
        compose(GenerateConfig(model_dir, length=10, style="calm"))


def test_style_guidance_pushes_each_head_away_from_the_network_told_no_style(tmp_path):
    import numpy as np

    from lstm_composer.decoder import Decoder, Guided
    from lstm_composer.generate import GenerateConfig, compose
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.sampling import Sampling

    model_dir = styled_model_dir(tmp_path)
    model = ModelDir(model_dir).load()
    plain = Decoder(model.network, model.config, len(model.vocabulary))
    where = model.config.attributes.index("style")
    window = np.random.default_rng(0).integers(1, 4, (6, len(model.config.attributes)))
    window[:, where] = 2
    untold_window = window.copy()
    untold_window[:, where] = 0
    told, told_state = plain.prime(window)
    untold, _ = plain.prime(untold_window)
    guided, guided_state = Guided(plain, 1.5).prime(window)
    for t, u, g in zip(told, untold, guided):
        expected = t ** 2.5 / u ** 1.5
        assert np.allclose(g, expected / expected.sum()) and not np.allclose(g, t)
    assert all(np.allclose(g, t) for g, t in zip(Guided(plain, 0.0).prime(window)[0], told))
    assert all(np.allclose(g, u) for g, u in zip(Guided(plain, 1.5).prime(untold_window)[0], untold))  # told none

    pieces = [compose(GenerateConfig(model_dir, length=40, seed=3, style="calm", sampling=Sampling(style_guidance=w)),
                      model).tokens for w in (0.0, 2.0)]
    assert pieces[0] != pieces[1]
    assert compose(GenerateConfig(model_dir, length=40, seed=3, sampling=Sampling(style_guidance=2.0)),
                   model).tokens == compose(GenerateConfig(model_dir, length=40, seed=3), model).tokens  # no style


def test_of_several_drafts_in_a_style_the_one_the_network_finds_most_in_it_is_kept(tmp_path):
    import numpy as np

    from lstm_composer.decoder import Decoder, style_evidence
    from lstm_composer.generate import GenerateConfig, compose
    from lstm_composer.model_dir import ModelDir
    from test_decoder import keras_inputs

    model_dir = styled_model_dir(tmp_path)
    model = ModelDir(model_dir).load()
    config, where = model.config, model.config.attributes.index("style")
    # The evidence, read by Keras: every head's id after a window told "calm", against after the same told none.
    window = np.random.default_rng(0).integers(1, 4, (config.sequence_length + 1, len(config.attributes)))
    window[:, where] = 2
    untold = window.copy()
    untold[:, where] = 0
    told_p, untold_p = ([float(np.log(head.numpy()[0, i])) for head, i in
                         zip(model.network(keras_inputs(config, w[:-1], None), training=False), w[-1])]
                        for w in (window, untold))
    assert len(told_p) == len(config.heads) == 4  # the token, its onset gap, duration and velocity
    decoder = Decoder(model.network, config, len(model.vocabulary))
    assert style_evidence(decoder, window[:-1], window[-1:]) == pytest.approx(sum(told_p) - sum(untold_p), abs=1e-4)
    assert style_evidence(decoder, untold[:-1], untold[-1:]) == 0.0  # told none: nothing to tell apart

    # Of four drafts the likeliest in the style is kept: more so than the first draft alone (the
    # same seed draws it first).
    kept, first = (compose(GenerateConfig(model_dir, length=30, seed=1, style="calm", candidates=n), model)
                   for n in (4, 1))
    assert kept.report.primer["candidates"] == 4 and first.report.primer["candidates"] == 1
    assert kept.report.primer["style_evidence"] > first.report.primer["style_evidence"]
    assert kept.tokens != first.tokens
    assert "candidates" not in compose(GenerateConfig(model_dir, length=30, seed=1, candidates=4), model).report.primer
