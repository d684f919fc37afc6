"""How good a trained model is, on the pieces its training run held out, and in what it writes.

For each head (the token; for an expressive model also the onset gap, the duration and the
velocity): the mean cross-entropy of the next position over every validation window, its
perplexity and the accuracy of the likeliest class, with the network in inference mode.
Then a few generated pieces: distinct onset gaps, durations and velocity bins, and the copy
report.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np

from lstm_composer import model_dir as run_files
from lstm_composer.dataset import make_dataset, window_starts
from lstm_composer.expression import ATTRIBUTES
from lstm_composer.generate import GenerateConfig, TrainedModel, compose

BATCH = 256


def validation_scores(model: TrainedModel, validation: list[str]) -> dict:
    """{head: {cross_entropy, perplexity, accuracy}} over the windows of the validation pieces, in
    whole batches (all of them but fewer than one batch)."""
    stream = model.corpus()
    starts = window_starts(stream, model.config.sequence_length, set(validation))
    if not len(starts):
        raise ValueError("the validation pieces are shorter than one window: nothing to evaluate")
    heads = ATTRIBUTES if model.config.expressive else ATTRIBUTES[:1]
    batch = min(BATCH, len(starts))
    dataset = make_dataset(stream, starts, model.config, len(model.vocabulary), seed=0, shuffle=False,
                           batch_size=batch)
    totals = {head: [0.0, 0] for head in heads}  # summed -log p, correct
    steps = len(starts) // batch  # whole batches: at most one batch short of every window
    for inputs, targets in dataset.take(steps):
        outputs = model.network(inputs, training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        targets = [targets[f"next_{h}"] for h in heads] if isinstance(targets, dict) else [targets]
        for head, probabilities, target in zip(heads, outputs, targets):
            probabilities, target = probabilities.numpy(), target.numpy()
            target = target.argmax(-1) if target.ndim == 2 else target  # the paper's one-hot targets
            chosen = probabilities[np.arange(len(target)), target]
            totals[head][0] += float(-np.log(np.maximum(chosen, 1e-12)).sum())
            totals[head][1] += int((probabilities.argmax(-1) == target).sum())
    windows = steps * batch
    return {"windows": windows, **{head: {"cross_entropy": loss / windows, "perplexity": math.exp(loss / windows),
                                          "accuracy": correct / windows}
                                   for head, (loss, correct) in totals.items()}}


def evaluate(model_dir: str, pieces: int = 3, length: int = 500, seed: int = 0) -> dict:
    """Validation scores and `pieces` generated pieces' figures; saved as evaluation.json."""
    model = TrainedModel.load(model_dir)
    settings = run_files.read_json(run_files.file(model_dir, run_files.CONFIG_FILE))
    validation = settings.get("validation_pieces") or []
    if not validation:
        raise ValueError(f"{model_dir} held out no validation pieces (--val-fraction 0): nothing to evaluate")
    generated = []
    for i in range(pieces):
        report = compose(GenerateConfig(model_dir, length=length, seed=seed + i), model).report
        generated.append({key: value for key, value in asdict(report).items()
                          if key not in ("primer", "sampling")})
    result = {"preset": model.config.name, "validation_pieces": len(validation),
              "validation": validation_scores(model, validation), "generated": generated}
    run_files.write_atomic(run_files.file(model_dir, run_files.EVALUATION_FILE), json.dumps(result, indent=1))
    return result


def summary(result: dict) -> str:
    lines = [f"preset {result['preset']}: {result['validation']['windows']} validation windows "
             f"from {result['validation_pieces']} held-out pieces",
             "| head | cross-entropy | perplexity | accuracy |", "| --- | --- | --- | --- |"]
    for head in ATTRIBUTES:
        if head in result["validation"]:
            scores = result["validation"][head]
            lines.append(f"| {head} | {scores['cross_entropy']:.3f} | {scores['perplexity']:.1f} | "
                         f"{scores['accuracy']:.3f} |")
    lines += ["", "| generated piece | tokens | distinct tokens | onset gaps | durations | velocity bins | "
                  "longest copy | longest cycle |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, piece in enumerate(result["generated"]):
        cycle = piece["longest_cycle"]
        cycle = "none" if cycle is None else f"{cycle['period']} x {cycle['repeats']}"
        lines.append(f"| {i} | {piece['generated_tokens']} | {piece['distinct_tokens']} | "
                     f"{piece['distinct_onset_gaps']} | {piece['distinct_durations']} | "
                     f"{piece['distinct_velocity_bins']} | {piece['longest_copy']['length']} | "
                     f"{cycle} |")
    return "\n".join(lines)
