"""Evaluation: its scores against Keras's own outputs on windows the test lists itself, and what
evaluate.json and the printed table hold."""
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from lstm_composer.evaluate import evaluate, summary, validation_scores
from lstm_composer.expression import Expression
from lstm_composer.generate import GenerateConfig, TrainedModel, compose
from lstm_composer.model import build_model
from lstm_composer.model_dir import vocabulary_json
from lstm_composer.presets import preset
from lstm_composer.tokens import Vocabulary, note_name

TOKENS = sorted([note_name(p) for p in range(55, 80)] + ["0.4.7", "2.5.9"])
LENGTHS = {"p0": 40, "p1": 30, "p2": 50, "p3": 25}
VALIDATION = ["p1", "p3"]
WINDOW = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A notes table whose every token sits exactly on one class of each expression attribute, so
    the classes are known from how the table was made: {piece: (token ids, (n, 3) classes)}."""
    expression = Expression()
    rng = np.random.default_rng(0)
    pieces, rows = {}, []
    for piece, n in LENGTHS.items():
        ids = rng.integers(len(TOKENS), size=n)
        classes = np.stack([rng.integers(1, len(expression.ioi), size=n), rng.integers(len(expression.duration), size=n),
                            rng.integers(len(expression.velocity), size=n)], axis=1)
        classes[0, 0] = 0  # a piece's first token: no gap before it
        offsets = np.cumsum([expression.ioi[c] for c in classes[:, 0]])
        for position in range(n):
            rows.append((piece, position, TOKENS[ids[position]], float(offsets[position]),
                         expression.duration[classes[position, 1]], expression.velocity[classes[position, 2]]))
        pieces[piece] = (ids, classes)
    root = tmp_path_factory.mktemp("evaluate")
    names = ("piece_id", "position", "token", "offset", "duration", "velocity")
    (root / "corpus/notes").mkdir(parents=True)
    pq.write_table(pa.table({name: list(column) for name, column in zip(names, zip(*rows))}),
                   root / "corpus/notes/part-0.parquet")
    return root, pieces


def write_model_dir(directory, corpus_root, expressive: bool):
    config = replace(preset("tiny"), sequence_length=WINDOW)  # scalar inputs, one-hot targets, BatchNorm
    if expressive:
        config = replace(preset("expressive"), sequence_length=WINDOW, lstm_units=(16, 16), dense_units=16,
                         embedding_dim=6, precision="float32")
    expression = Expression() if expressive else None
    tf.keras.utils.set_random_seed(3)
    directory.mkdir()
    build_model(config, len(TOKENS), expression_sizes=expression.sizes() if expression else None).save(
        directory / "model.keras")
    (directory / "vocab.json").write_text(vocabulary_json(Vocabulary(TOKENS), expression))
    (directory / "config.json").write_text(json.dumps({"model": config.to_dict(), "corpus_path": str(corpus_root / "corpus"),
                                                      "validation_pieces": VALIDATION}))
    return directory


def keras_scores(network, pieces: dict, expressive: bool) -> dict:
    """Each head's mean cross-entropy and accuracy over every window of the validation pieces,
    the windows listed here, the network called by Keras in inference mode."""
    windows, targets = [], []
    for piece in VALIDATION:
        ids, classes = pieces[piece]
        columns = np.concatenate([ids[:, None], classes], axis=1)  # token, ioi, duration, velocity
        for start in range(len(ids) - WINDOW):
            windows.append(columns[start:start + WINDOW])
            targets.append(columns[start + WINDOW])
    windows, targets = np.array(windows), np.array(targets)
    if expressive:
        outputs = network({name: windows[..., i] for i, name in enumerate(("token", "ioi", "duration", "velocity"))},
                          training=False)
        heads = ("token", "ioi", "duration", "velocity")
    else:
        outputs = [network(windows[..., :1] / len(TOKENS), training=False)]
        heads = ("token",)
    scores = {"windows": len(windows)}
    for i, (head, probabilities) in enumerate(zip(heads, outputs)):
        probabilities = probabilities.numpy().astype(np.float64)
        chosen = probabilities[np.arange(len(windows)), targets[:, i]]
        scores[head] = (-np.log(chosen).mean(), (probabilities.argmax(-1) == targets[:, i]).mean())
    return scores


@pytest.mark.parametrize("expressive", [False, True], ids=["paper-like", "expressive"])
def test_validation_scores_are_what_keras_gives_on_every_held_out_window(corpus, tmp_path, expressive):
    root, pieces = corpus
    model = TrainedModel.load(str(write_model_dir(tmp_path / "model", root, expressive)))
    scores = validation_scores(model, VALIDATION)
    expected = keras_scores(model.network, pieces, expressive)
    assert scores["windows"] == expected["windows"] == (30 - WINDOW) + (25 - WINDOW)  # fewer than a batch: all
    for head in ("token", "ioi", "duration", "velocity") if expressive else ("token",):
        cross_entropy, accuracy = expected[head]
        assert scores[head]["cross_entropy"] == pytest.approx(cross_entropy, rel=1e-5), head
        assert scores[head]["perplexity"] == pytest.approx(math.exp(cross_entropy), rel=1e-5), head
        assert scores[head]["accuracy"] == pytest.approx(accuracy), head
    assert set(scores) == ({"windows", "token", "ioi", "duration", "velocity"} if expressive else {"windows", "token"})


def printed_rows(text: str) -> dict:
    """The printed markdown tables' rows by their first cell."""
    return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}


def test_evaluate_writes_and_prints_the_scores_and_each_generated_pieces_report(corpus):
    root, _ = corpus
    directory = write_model_dir(root / "expressive-model", root, expressive=True)
    result = evaluate(str(directory), pieces=2, length=16, seed=5)
    assert json.loads((directory / "evaluation.json").read_text()) == json.loads(json.dumps(result))
    model = TrainedModel.load(str(directory))
    assert result["validation"] == validation_scores(model, VALIDATION)
    assert (result["preset"], result["validation_pieces"]) == ("expressive", 2)
    for i, generated in enumerate(result["generated"]):  # seeds 5 and 6
        report = asdict(compose(GenerateConfig(str(directory), length=16, seed=5 + i), model).report)
        assert generated == {key: value for key, value in report.items() if key not in ("primer", "sampling")}

    rows = printed_rows(summary(result))
    for head in ("token", "ioi", "duration", "velocity"):
        scores = result["validation"][head]
        assert rows[head] == [f"{scores['cross_entropy']:.3f}", f"{scores['perplexity']:.1f}",
                              f"{scores['accuracy']:.3f}"], head
    for i, piece in enumerate(result["generated"]):
        cycle = piece["longest_cycle"]
        assert rows[str(i)] == [str(piece[key]) for key in ("generated_tokens", "distinct_tokens", "distinct_onset_gaps",
                                                             "distinct_durations", "distinct_velocity_bins")] + [
            str(piece["longest_copy"]["length"]), "none" if cycle is None else f"{cycle['period']} x {cycle['repeats']}"]
