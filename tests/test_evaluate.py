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

from lstm_composer.evaluate import NetworkScorer, evaluate, summary
from lstm_composer.ngram import KneserNey
from lstm_composer.statistics import FEATURES
from lstm_composer.expression import Expression, beat_phase
from lstm_composer.form import FORM_FEATURES, piece_features
from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.model import build_model
from lstm_composer.model_dir import ModelDir
from lstm_composer.presets import preset
from lstm_composer.tokens import Vocabulary, note_name, token_pitches

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
                         expression.duration[classes[position, 1]], expression.velocity[classes[position, 2]],
                         token_pitches(TOKENS[ids[position]]), 0))
        pieces[piece] = (ids, classes)
    root = tmp_path_factory.mktemp("evaluate")
    names = ("piece_id", "position", "token", "offset", "duration", "velocity", "pitches", "program")
    (root / "corpus/notes").mkdir(parents=True)
    pq.write_table(pa.table({name: list(column) for name, column in zip(names, zip(*rows))}),
                   root / "corpus/notes/part-0.parquet")
    return root, pieces


def write_model_dir(directory, corpus_root, expressive: bool, batch_size: int = 16):
    """A paper-like model (scalar inputs, one-hot targets, BatchNorm, the next token after a
    window), or a dense expressive one (a prediction at every position, pointer, bass, phase)."""
    config = replace(preset("tiny"), sequence_length=WINDOW, batch_size=batch_size)
    if expressive:
        config = replace(preset("expressive"), sequence_length=WINDOW, lstm_units=(16, 16), dense_units=16,
                         embedding_dim=6, precision="float32", bass=False, metre=False, key=False)
    expression = Expression() if expressive else None
    tf.keras.utils.set_random_seed(3)
    directory.mkdir()
    build_model(config, len(TOKENS), expression_sizes=expression.sizes() if expression else None).save(
        directory / "model.keras")
    ModelDir(str(directory)).write_vocabulary(Vocabulary(TOKENS), expression)
    (directory / "config.json").write_text(json.dumps({"model": config.to_dict(), "corpus_path": str(corpus_root / "corpus"),
                                                      "validation_pieces": VALIDATION}))
    return directory


def keras_scores(network, config, pieces: dict, expressive: bool) -> dict:
    """Each head's mean cross-entropy and accuracy over the validation pieces' targets, worked
    out here with Keras in inference mode: for the paper-like network every window and the
    token after it; for the dense one every position after the first, the whole piece in one
    call of a copy of the network that takes any length."""
    heads = ("token", "ioi", "duration", "velocity") if expressive else ("token",)
    losses, correct = [], []
    for piece in VALIDATION:
        ids, classes = pieces[piece]
        if expressive:
            copy = build_model(config, len(TOKENS), expression_sizes=Expression().sizes(), window=None)
            copy.set_weights(network.get_weights())
            phases = beat_phase(np.cumsum([Expression().ioi[c] for c in classes[:, 0]]))
            inputs = {"token": ids[None, :-1], "ioi": classes[None, :-1, 0], "duration": classes[None, :-1, 1],
                      "velocity": classes[None, :-1, 2], "phase": phases[None, :-1]}
            if config.chosen_input:  # the heads that see the token chosen for their position: the next one
                inputs["chosen_token"] = ids[None, 1:]
            outputs = [o.numpy()[0].astype(np.float64) for o in copy(inputs, training=False)]
            targets = np.concatenate([ids[1:, None], classes[1:]], axis=1)
        else:
            windows = np.array([ids[s:s + WINDOW] for s in range(len(ids) - WINDOW)])
            outputs = [network(windows[..., None] / len(TOKENS), training=False).numpy().astype(np.float64)]
            targets = ids[WINDOW:, None]
        rows = np.arange(len(targets))
        losses.append(np.stack([-np.log(o[rows, targets[:, h]]) for h, o in enumerate(outputs)], 1))
        correct.append(np.stack([o.argmax(-1) == targets[:, h] for h, o in enumerate(outputs)], 1))
    losses, correct = np.concatenate(losses), np.concatenate(correct)
    return {"targets": len(losses), **{head: (losses[:, h].mean(), correct[:, h].mean()) for h, head in enumerate(heads)}}


@pytest.mark.parametrize("expressive", [False, True], ids=["paper-like", "dense expressive"])
def test_validation_scores_are_what_keras_gives_on_every_held_out_target(corpus, tmp_path, expressive):
    root, pieces = corpus
    model = ModelDir(str(write_model_dir(tmp_path / "model", root, expressive))).load()
    first = 1 if expressive else WINDOW
    held_out = [i for i, piece in enumerate(model.tokens().piece_ids) if piece in VALIDATION]
    scores = NetworkScorer(model, model.tokens()).scores(held_out, first)
    expected = keras_scores(model.network, model.config, pieces, expressive)
    assert scores["targets"] == expected["targets"] == (30 - first) + (25 - first)
    for head in ("token", "ioi", "duration", "velocity") if expressive else ("token",):
        cross_entropy, accuracy = expected[head]
        assert scores[head]["cross_entropy"] == pytest.approx(cross_entropy, rel=1e-5), head
        assert scores[head]["perplexity"] == pytest.approx(math.exp(cross_entropy), rel=1e-5), head
        assert scores[head]["accuracy"] == pytest.approx(accuracy), head
    assert set(scores) == ({"targets", "token", "ioi", "duration", "velocity"} if expressive else {"targets", "token"})


def printed_rows(text: str) -> dict:
    """The printed markdown tables' rows by their first cell."""
    return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}


def test_batch_norm_check_agrees_on_training_windows_whose_statistics_the_network_holds(corpus, tmp_path):
    """Each BatchNorm given the mean and variance of what reaches it (inference mode) over all
    the training pieces' windows, and a batch of exactly those windows: training mode
    normalises by the same figures, so the check's two losses agree there. Statistics as stale
    as Keras's were (a variance a thousandth of the real one) show as a ratio far from 1."""
    root, pieces = corpus
    training = [p for p in LENGTHS if p not in VALIDATION]
    windows = np.concatenate([np.stack([pieces[p][0][s:s + WINDOW] for s in range(LENGTHS[p] - WINDOW)])
                              for p in training])
    model = ModelDir(str(write_model_dir(tmp_path / "model", root, False, batch_size=len(windows)))).load()
    stream = model.tokens()
    scorer = NetworkScorer(model, stream)
    inputs = windows[..., None] / len(TOKENS)
    norms = [layer for layer in scorer.network.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in norms:  # in order, each measured with the earlier ones already set
        reached = tf.keras.Model(scorer.network.inputs, layer.input)(inputs, training=False).numpy()
        reached = reached.reshape(-1, reached.shape[-1])
        layer.moving_mean.assign(reached.mean(0))
        layer.moving_variance.assign(reached.var(0))
    training_ids = [i for i, piece in enumerate(stream.piece_ids) if piece in training]
    check = scorer.batch_norm_check(training_ids)
    assert len(norms) == 2 and check["windows"] == len(windows) == (40 - WINDOW) + (50 - WINDOW)
    assert check["ratio"] == pytest.approx(1.0, abs=1e-4)
    for layer in norms:
        layer.moving_variance.assign(layer.moving_variance * 1e-3)
    assert abs(scorer.batch_norm_check(training_ids)["ratio"] - 1) > 0.05


def test_evaluate_writes_and_prints_scores_baselines_and_each_generated_pieces_report(corpus):
    root, pieces = corpus
    directory = write_model_dir(root / "expressive-model", root, expressive=True)
    result = evaluate(str(directory), pieces=2, length=16, seed=5)
    assert json.loads((directory / "evaluation.json").read_text()) == json.loads(json.dumps(result))
    model = ModelDir(str(directory)).load()
    assert (result["preset"], result["validation_pieces"], result["first_target"]) == ("expressive", 2, 1)
    assert result["targets"] == result["validation"]["targets"] == 29 + 24
    # the n-gram yardsticks on the same targets, fitted on the two training pieces only
    training = [pieces[p][0] for p in LENGTHS if p not in VALIDATION]
    held_out = [pieces[p][0] for p in VALIDATION]
    unigram = (np.bincount(np.concatenate(training), minlength=len(TOKENS)) + 1) / (sum(map(len, training)) + len(TOKENS))
    expected = math.exp(-np.log(unigram[np.concatenate([p[1:] for p in held_out])]).mean())
    assert result["baselines"]["unigram"]["perplexity"] == pytest.approx(expected)
    bigram = KneserNey(training, 2, len(TOKENS)).cross_entropy(held_out, 1)[0]
    assert result["baselines"]["kneser_ney_2"]["cross_entropy"] == pytest.approx(bigram)
    best = min(result["baselines"].values(), key=lambda b: b["perplexity"])["perplexity"]
    assert result["ratio_to_best_baseline"] == pytest.approx(result["validation"]["token"]["perplexity"] / best)
    assert set(result["context_curve"]) == {"1", "4", "16", "full", "targets"}
    generated_pieces = [compose(GenerateConfig(str(directory), length=16, seed=5 + i), model) for i in range(2)]
    for generated, piece in zip(result["generated"], generated_pieces):  # seeds 5 and 6
        report = asdict(piece.report)
        assert {k: v for k, v in generated.items() if k != "overlaps"} == {
            key: value for key, value in report.items() if key not in ("primer", "sampling")}
        assert 0 <= generated["overlaps"]["mean"] <= 1

    printed = summary(result)
    lowest_together = min(result["generated_together"][name] for name in FEATURES)
    ratio = result["generated_together"]["mean"] / result["held_out_together"]["mean"]
    assert f"(ratio {ratio:.3f}); lowest generated" in printed and f", together {lowest_together:.2f}\n" in printed
    rows = printed_rows(printed)
    for head in ("token", "ioi", "duration", "velocity"):
        scores = result["validation"][head]
        assert rows[head] == [f"{scores['cross_entropy']:.3f}", f"{scores['perplexity']:.1f}",
                              f"{scores['accuracy']:.3f}"], head
    for name, scores in result["baselines"].items():
        assert rows[name] == [f"{scores['perplexity']:.1f}"]
    for i, piece in enumerate(result["generated"]):
        overlaps = piece["overlaps"]
        assert rows[f"generated {i}"] == [f"{overlaps[n]:.2f}" for n in FEATURES] + [
            f"{overlaps['mean']:.2f}", str(piece["longest_copy"]["length"])]
    # Key and form of each kind of piece, the classifier's AUC last.
    form = result["form"]
    assert form["generated"]["excerpts"] == sum(len(piece_features(p.events)) for p in generated_pieces)
    for kind in ("generated", "held_out", "training"):
        assert rows[kind.replace("_", " ")] == [f"{form[kind]['together'][n]:.3f}" for n in FORM_FEATURES]
    assert printed.endswith(f"generated {form['auc']['generated']:.2f}, held out {form['auc']['held_out']:.2f} "
                            f"(two halves of the training pieces: {form['auc']['training_halves']:.2f})")
