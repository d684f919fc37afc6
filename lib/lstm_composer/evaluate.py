"""How good a trained model is, always on the pieces its training run held out.

Three yardsticks, as the field judges a language model of music:
- **Scores beside baselines.** Each head's cross-entropy, perplexity and accuracy over the
  validation pieces' targets, with the network in inference mode, and on the same targets
  the n-gram models fitted on the training pieces (unigram; interpolated Kneser-Ney of orders
  2 to 5): the network's token perplexity over the best n-gram's is the figure to watch.
  A dense network predicts every position of a piece after its first, from everything before
  it (the state carried, as generation does); the paper's network every position after its
  first window, from the window before it.
- **The context curve.** The token loss with the network shown only the last 1, 4 or 16
  tokens, against all it normally sees, on the targets that have 16 tokens before them: a
  network that does not use its context scores the same with 4 tokens as with all of them.
- **What it writes** (`judging.py`): generated pieces and the held-out real pieces, each
  against the training pieces: the histograms of their notes, and their key and form, should
  be as close to the corpus as real pieces the network never saw, and a classifier should not
  tell their excerpts from the corpus's. With the copy and cycle reports.
For networks with BatchNorm, the token loss in training mode (batch statistics) beside the
inference-mode one, on held-out and on training windows, shows whether the moving statistics
are sound.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lstm_composer.generate import GenerateConfig, compose
from lstm_composer.judging import judge_writing, writing_summary
from lstm_composer.model_dir import ModelDir, TrainedModel
from lstm_composer.ngram import KneserNey, unigram_add_one
from lstm_composer.reprise import Form
from lstm_composer.sampling import Sampling
from lstm_composer.tables import TokenStream, read_played

BATCH = 256
CONTEXTS = (1, 4, 16)
NGRAM_ORDERS = (2, 3, 4, 5)


def evaluate(model_dir: str, pieces: int = 12, length: int = 500, seed: int = 0, sampling: Sampling = Sampling(),
             form: Form | None = Form(), modulate: bool = True) -> dict:
    """Scores, baselines, context curve and statistics, the generated pieces drawn from seeds
    `seed`, `seed + 1`, ... as `GenerateConfig` says with `sampling`, `form` and `modulate`;
    saved as evaluation.json."""
    if pieces < 1:
        raise ValueError(f"pieces must be at least 1, got {pieces}: the generated pieces are half of what is judged")
    directory = ModelDir(model_dir)
    model = directory.load()
    directory.check_writable()  # evaluation.json goes there at the end
    if not model.held_out:
        raise ValueError(f"{model_dir} held out no pieces (--val-fraction 0): nothing to evaluate")
    stream = model.tokens()
    held_out_rows = stream.rows(model.held_out)
    training_rows = stream.rows(set(stream.piece_ids) - set(model.held_out))
    first_target = 1 if model.config.dense_targets else model.config.sequence_length
    if not any(len(stream.piece(i)) > first_target for i in held_out_rows):
        raise ValueError(f"the held-out pieces are not longer than {first_target} tokens: nothing to evaluate")
    result = {"preset": model.config.name, "validation_pieces": len(model.held_out),
              **network_scores(model, stream, held_out_rows, training_rows, first_target)}
    generated = [compose(GenerateConfig(model_dir, length=length, seed=seed + i, sampling=sampling, form=form,
                                        modulate=modulate), model) for i in range(pieces)]
    result.update(judge_writing(read_played(model.corpus), [stream.piece_ids[i] for i in held_out_rows],
                                [stream.piece_ids[i] for i in training_rows], generated))
    directory.write_evaluation(result)
    return result


def network_scores(model: TrainedModel, stream: TokenStream, held_out_rows: list[int], training_rows: list[int],
                   first_target: int) -> dict:
    """The network's scores on the held-out pieces (`held_out_rows` of `stream`) beside the
    n-gram models' on the same targets, its context curve and, with BatchNorm, the check of its
    statistics."""
    network = NetworkScorer(model, stream)
    scores = network.scores(held_out_rows, first_target)
    baselines = ngram_scores([stream.piece(i) for i in training_rows], [stream.piece(i) for i in held_out_rows],
                             len(model.vocabulary), first_target)
    best = min(baselines, key=lambda name: baselines[name]["perplexity"])
    result = {
        "targets": scores["targets"],
        "first_target": first_target,
        "validation": scores,
        "baselines": baselines,
        "best_baseline": best,
        "ratio_to_best_baseline": scores["token"]["perplexity"] / baselines[best]["perplexity"],
        "context_curve": network.context_curve(held_out_rows, max(first_target, max(CONTEXTS))),
    }
    if model.config.batch_norm:
        check = network.batch_norm_check(held_out_rows)
        check["training_pieces"] = network.batch_norm_check(training_rows, windows=check["windows"])
        result["batch_norm_check"] = check
    return result


def ngram_scores(training_tokens: list[np.ndarray], held_out_tokens: list[np.ndarray], vocab_size: int,
                 first_target: int) -> dict:
    """{name: {cross_entropy, perplexity}} of the n-gram yardsticks fitted on the training pieces'
    token ids, on the targets from `first_target` on of each held-out piece."""
    unigram = unigram_add_one(training_tokens, vocab_size)
    targets = np.concatenate([piece[first_target:] for piece in held_out_tokens])
    entropy = float(-np.log(unigram[targets]).mean())
    scores = {"unigram": {"cross_entropy": entropy, "perplexity": math.exp(entropy)}}
    for order in NGRAM_ORDERS:
        entropy, _ = KneserNey(training_tokens, order, vocab_size).cross_entropy(held_out_tokens, first_target)
        scores[f"kneser_ney_{order}"] = {"cross_entropy": entropy, "perplexity": math.exp(entropy)}
    return scores


class NetworkScorer:
    """The trained network, rebuilt to take windows of any length, scoring held-out pieces."""

    def __init__(self, model: TrainedModel, stream: TokenStream):
        from lstm_composer.model import build_model

        self.config, self.stream = model.config, stream
        self.vocab_size = len(model.vocabulary)
        self.sizes = model.expression.sizes() if model.expression else None
        self.network = build_model(self.config, self.vocab_size, expression_sizes=self.sizes, window=None)
        self.network.set_weights(model.network.get_weights())
        self.columns = stream.attributes(self.config)
        self.heads = self.config.heads

    def _inputs(self, windows: np.ndarray, chosen: np.ndarray):
        """Network inputs for (batch, steps) rows of the stream; `chosen`: the next tokens."""
        import tensorflow as tf

        from lstm_composer.dataset import encode_windows
        from lstm_composer.model import CHOSEN_TOKEN

        rows = self.columns[windows]
        if not self.config.expressive:
            return encode_windows(tf.constant(rows[..., 0]), self.config, self.vocab_size)
        inputs = {name: tf.constant(rows[..., i]) for i, name in enumerate(self.config.attributes)}
        if self.config.chosen_input:
            inputs[CHOSEN_TOKEN] = tf.constant(chosen)
        return inputs

    def _probabilities(self, windows: np.ndarray) -> list[np.ndarray]:
        """Each head's probabilities at every position of each window: (batch, steps, classes)."""
        next_tokens = self.columns[np.minimum(windows + 1, len(self.columns) - 1), 0]
        outputs = self.network(self._inputs(windows, next_tokens), training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        return [o.numpy() if o.ndim == 3 else o.numpy()[:, None, :] for o in outputs]

    def _from_windows(self, ends: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(-ln p, correct), each (targets, heads), of the stream's positions `ends`, each
        predicted from the `context` positions before it."""
        losses, correct = [], []
        for begin in range(0, len(ends), BATCH):
            chunk = ends[begin:begin + BATCH]
            windows = chunk[:, None] - context + np.arange(context)
            probabilities = [p[:, -1] for p in self._probabilities(windows)]
            losses.append(np.stack([_chosen(p, self.columns[chunk, h]) for h, p in enumerate(probabilities)], 1))
            correct.append(np.stack([p.argmax(-1) == self.columns[chunk, h] for h, p in enumerate(probabilities)], 1))
        return np.concatenate(losses), np.concatenate(correct)

    def _piece_losses(self, piece: int) -> tuple[np.ndarray, np.ndarray]:
        """A dense network over a whole piece: (-ln p, correct) per target position 1.., per head."""
        begin, end = int(self.stream.bounds[piece]), int(self.stream.bounds[piece + 1])
        window = np.arange(begin, end - 1)[None, :]
        probabilities = self._probabilities(window)
        targets = self.columns[begin + 1:end]
        losses = np.stack([_chosen(p[0], targets[:, h]) for h, p in enumerate(probabilities)], axis=1)
        correct = np.stack([p[0].argmax(-1) == targets[:, h] for h, p in enumerate(probabilities)], axis=1)
        return losses, correct

    def _targets(self, pieces: list[int], first_target: int) -> np.ndarray:
        return np.concatenate([np.arange(int(self.stream.bounds[i]) + first_target, int(self.stream.bounds[i + 1]))
                               for i in pieces])

    def scores(self, pieces: list[int], first_target: int) -> dict:
        """{head: {cross_entropy, perplexity, accuracy}} over the targets of `pieces`."""
        if self.config.dense_targets:
            parts = [self._piece_losses(i) for i in pieces if len(self.stream.piece(i)) > 1]
            losses = np.concatenate([p[0] for p in parts])
            correct = np.concatenate([p[1] for p in parts])
        else:
            losses, correct = self._from_windows(self._targets(pieces, first_target), self.config.sequence_length)
        result = {"targets": int(len(losses))}
        for h, head in enumerate(self.heads):
            entropy = float(losses[:, h].mean())
            result[head] = {"cross_entropy": entropy, "perplexity": math.exp(entropy),
                            "accuracy": float(correct[:, h].mean())}
        return result

    def context_curve(self, pieces: list[int], first_target: int) -> dict:
        """Token cross-entropy with the context cut to each of CONTEXTS tokens, and with all of
        it ("full"), on the targets from `first_target` on."""
        ends = self._targets(pieces, first_target)
        curve = {}
        for context in CONTEXTS:
            if context <= self.config.sequence_length or self.config.dense_targets:
                curve[str(context)] = float(self._from_windows(ends, context)[0][:, 0].mean())
        if self.config.dense_targets:
            parts = [self._piece_losses(i)[0][first_target - 1:, 0] for i in pieces
                     if len(self.stream.piece(i)) > first_target]
            curve["full"] = float(np.concatenate(parts).mean())
        else:
            curve["full"] = float(self._from_windows(ends, self.config.sequence_length)[0][:, 0].mean())
        curve["targets"] = int(len(ends))
        return curve

    def batch_norm_check(self, pieces: list[int], windows: int | None = None) -> dict:
        """Token cross-entropy on the same windows of `pieces` (at most `windows` of them, drawn
        at random) in inference mode (BatchNorm's moving statistics) and in training mode (each
        batch's own statistics; dropout off), in batches of the preset's size drawn in random
        order. On the training pieces the two agree when the moving statistics are sound; on
        held-out pieces training mode also normalises by statistics of those few pieces alone,
        where every training batch mixed all the training pieces."""
        from lstm_composer.model import build_model

        length = self.config.sequence_length
        plain = replace(self.config, dropout=0.0, recurrent_dropout=0.0)
        undropped = build_model(plain, self.vocab_size, expression_sizes=self.sizes, window=None)
        undropped.set_weights(self.network.get_weights())
        # Batches as training draws them: windows in random order (seeded), not neighbours, whose
        # batch statistics would be those of one passage.
        ends = np.random.default_rng(0).permutation(self._targets(pieces, length))[:windows]
        batch = self.config.batch_size
        ends = ends[:len(ends) // batch * batch] if len(ends) >= batch else ends
        losses = {"inference": [], "training_mode": []}
        for begin in range(0, len(ends), batch):
            chunk = ends[begin:begin + batch]
            windows = chunk[:, None] - length + np.arange(length)
            for mode, training in (("inference", False), ("training_mode", True)):
                outputs = undropped(self._inputs(windows, self.columns[windows + 1, 0]), training=training)
                token = (outputs[0] if isinstance(outputs, list) else outputs).numpy()
                losses[mode].append(_chosen(token[:, -1] if token.ndim == 3 else token, self.columns[chunk, 0]))
        check = {mode: float(np.concatenate(values).mean()) for mode, values in losses.items()}
        check["ratio"] = check["inference"] / check["training_mode"]
        check["windows"] = int(len(ends))
        return check


def _chosen(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-ln of each row's probability of its target."""
    return -np.log(np.maximum(probabilities[np.arange(len(targets)), targets], 1e-12))


def summary(result: dict) -> str:
    validation = result["validation"]
    lines = [f"preset {result['preset']}: {result['targets']} targets in {result['validation_pieces']} held-out "
             f"pieces (every position from {result['first_target']} on)",
             "| head | cross-entropy | perplexity | accuracy |", "| --- | --- | --- | --- |"]
    for head, scores in validation.items():
        if isinstance(scores, dict):
            lines.append(f"| {head} | {scores['cross_entropy']:.3f} | {scores['perplexity']:.1f} | "
                         f"{scores['accuracy']:.3f} |")
    lines += ["", "| token model, same targets | perplexity |", "| --- | --- |",
              f"| network | {validation['token']['perplexity']:.1f} |"]
    lines += [f"| {name} | {scores['perplexity']:.1f} |" for name, scores in result["baselines"].items()]
    lines.append(f"ratio to the best n-gram ({result['best_baseline']}): {result['ratio_to_best_baseline']:.2f}x")
    curve = result["context_curve"]
    shown = [key for key in curve if key != "targets"]
    lines += ["", f"context curve (token cross-entropy, {curve['targets']} targets): "
              + ", ".join(f"{key}: {curve[key]:.3f}" for key in shown)]
    if "4" in curve:
        lines.append(f"full context vs 4 tokens: {100 * (1 - curve['full'] / curve['4']):.2f}% lower loss")
    if "batch_norm_check" in result:
        check = result["batch_norm_check"]
        for label, values in (("held-out", check), ("training", check["training_pieces"])):
            lines.append(f"BatchNorm on {values['windows']} {label} windows: inference {values['inference']:.3f}, "
                         f"training mode {values['training_mode']:.3f} (ratio {values['ratio']:.3f})")
    lines += writing_summary(result)
    return "\n".join(lines)
