"""Judging what a model writes against real pieces of its corpus, as `evaluate` reports it.

Generated pieces and the held-out real pieces are each compared with the training pieces:
- the histograms of their notes (`statistics`): pitch, register, chords, rhythm, loudness and
  melodic intervals, as overlaps;
- their key and form (`form`), on excerpts of 32 quarters: key clarity and stability, figures
  that recur, windows that resemble one another;
- whether a logistic regression on sixteen excerpt features (`classifier`) tells their
  excerpts from the training pieces', cross-validated with whole pieces held out together.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from lstm_composer.classifier import FOLDS, cross_validated_auc
from lstm_composer.form import FEATURES as EXCERPT_FEATURES
from lstm_composer.form import FORM_FEATURES, piece_features
from lstm_composer.generate import Composition
from lstm_composer.statistics import FEATURES, overlaps, pooled
from lstm_composer.tokens import Token


def judge_writing(played: dict[str, list[Token]], held_out: list[str], training: list[str],
                  pieces: list[Composition]) -> dict:
    """The generated `pieces` and the held-out real pieces (of `played`, the corpus's pieces by
    id), each against the training pieces: the histograms' overlaps of each piece and of each
    kind taken together, with the copy reports, and their key and form (`form_summary`)."""
    generated, everything_generated = [], []
    reference = pooled(played[piece] for piece in training)
    for piece in pieces:
        report = {key: value for key, value in asdict(piece.report).items() if key not in ("primer", "sampling")}
        generated.append({**report, "overlaps": overlaps(piece.events, reference)})
        everything_generated += piece.events
    real = [{"piece_id": piece, "tokens": len(played[piece]), "overlaps": overlaps(played[piece], reference)}
            for piece in held_out]
    result = {"generated": generated, "held_out": real,
              "held_out_together": overlaps([onset for piece in held_out for onset in played[piece]], reference),
              "generated_together": overlaps(everything_generated, reference)}
    result["overlap_summary"] = overlap_summary(generated, real, result["generated_together"],
                                                result["held_out_together"])
    result["form"] = form_summary([piece.events for piece in pieces], [played[piece] for piece in held_out],
                                  {piece: played[piece] for piece in training})
    return result


def overlap_summary(generated: list[dict], real: list[dict], generated_together: dict, real_together: dict) -> dict:
    """The generated pieces' overlaps with the training pieces beside the held-out real pieces',
    two ways: piece by piece (the mean over pieces; a short piece's histogram is noisy, and one
    piece keeps to its own key, register and dynamics), and all pieces of each kind taken
    together as one histogram. A ratio of 1: generated pieces as close to the corpus as real
    pieces the network never saw."""
    def mean(group):
        return {name: float(np.nanmean([p["overlaps"][name] for p in group])) for name in FEATURES + ("mean",)}

    by_piece = {"generated": mean(generated), "held_out": mean(real)}
    return {"by_piece": {**by_piece, "ratio": by_piece["generated"]["mean"] / by_piece["held_out"]["mean"]},
            "together": {"generated": generated_together, "held_out": real_together,
                         "ratio": generated_together["mean"] / real_together["mean"]},
            "generated_lowest": float(min(p["overlaps"][name] for p in generated for name in FEATURES)),
            "generated_together_lowest": float(min(generated_together[name] for name in FEATURES))}


def form_summary(generated: list, held_out: list, training: dict[str, list]) -> dict:
    """Key and form of each kind of piece (each a list of onsets; `training` by piece id), and
    the classifier's AUC against the training pieces' excerpts: {kind: {"per_piece": [...],
    "together": {...}, "excerpts": n}, "ratio": generated over training, "auc": {...}}."""
    kinds = {"generated": [piece_features(onsets) for onsets in generated],
             "held_out": [piece_features(onsets) for onsets in held_out],
             "training": [piece_features(onsets) for onsets in training.values()]}
    result = {kind: _form_of(pieces) for kind, pieces in kinds.items()}
    result["ratio"] = {name: _ratio(result["generated"]["together"][name], result["training"]["together"][name])
                       for name in FORM_FEATURES}
    result["auc"] = {kind: _auc_against(kinds[kind], kinds["training"]) for kind in ("generated", "held_out")}
    halves = kinds["training"][::2], kinds["training"][1::2]  # real against real: what no difference scores
    result["auc"]["training_halves"] = _auc_against(*halves)
    return result


def _form_of(pieces: list[list[dict]]) -> dict:
    excerpts = [excerpt for piece in pieces for excerpt in piece]
    return {"per_piece": [{name: _mean([e[name] for e in piece]) for name in FORM_FEATURES} for piece in pieces],
            "together": {name: _mean([e[name] for e in excerpts]) for name in FORM_FEATURES},
            "excerpts": len(excerpts)}


def _auc_against(pieces: list[list[dict]], reference: list[list[dict]]) -> float:
    """How well the classifier tells `pieces`' excerpts from `reference`'s, in as many folds as
    the smaller side has pieces (at most `classifier.FOLDS`), so that every fold holds some of each."""
    rows = [(excerpt, label, f"{label}-{i}") for label, group in ((1, pieces), (0, reference))
            for i, piece in enumerate(group) for excerpt in piece]
    folds = min(FOLDS, sum(1 for piece in pieces if piece), sum(1 for piece in reference if piece))
    if folds < 2:
        return float("nan")
    features = np.array([[excerpt[name] for name in EXCERPT_FEATURES] for excerpt, _, _ in rows])
    return cross_validated_auc(features, np.array([label for _, label, _ in rows]), [group for _, _, group in rows],
                               folds=folds)


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else float("nan")


def _mean(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def writing_summary(result: dict) -> list[str]:
    """The lines `evaluate.summary` prints for what the model writes."""
    lines = ["", "| piece | " + " | ".join(FEATURES) + " | mean | longest copy |",
             "| --- |" + " --- |" * (len(FEATURES) + 2)]
    for i, piece in enumerate(result["generated"]):
        values = piece["overlaps"]
        lines.append(f"| generated {i} | " + " | ".join(f"{values[n]:.2f}" for n in FEATURES)
                     + f" | {values['mean']:.2f} | {piece['longest_copy']['length']} |")
    for piece in result["held_out"]:
        values = piece["overlaps"]
        lines.append(f"| held out {piece['piece_id'][:8]} ({piece['tokens']} tokens) | "
                     + " | ".join(f"{values[n]:.2f}" for n in FEATURES) + f" | {values['mean']:.2f} | |")
    for label, key in (("generated, together", "generated_together"), ("held out, together", "held_out_together")):
        values = result[key]
        lines.append(f"| {label} | " + " | ".join(f"{values[n]:.2f}" for n in FEATURES)
                     + f" | {values['mean']:.2f} | |")
    overall = result["overlap_summary"]
    by_piece, together = overall["by_piece"], overall["together"]
    lines.append(f"overlap with the training pieces, generated / held out: piece by piece "
                 f"{by_piece['generated']['mean']:.3f} / {by_piece['held_out']['mean']:.3f} (ratio "
                 f"{by_piece['ratio']:.3f}); together {together['generated']['mean']:.3f} / "
                 f"{together['held_out']['mean']:.3f} (ratio {together['ratio']:.3f}); lowest generated "
                 f"{overall['generated_lowest']:.2f}, together {overall['generated_together_lowest']:.2f}")
    if "form" in result:
        lines += form_lines(result["form"])
    return lines


def form_lines(form: dict) -> list[str]:
    names = [name.replace("_", " ") for name in FORM_FEATURES]
    counts = ", ".join(f"{form[kind]['excerpts']} {kind.replace('_', '-')}"
                       for kind in ("generated", "held_out", "training"))
    lines = ["", f"key and form, on excerpts of 32 quarters ({counts}):",
             "| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for kind in ("generated", "held_out", "training"):
        together = form[kind]["together"]
        lines.append(f"| {kind.replace('_', ' ')} | " + " | ".join(f"{together[n]:.3f}" for n in FORM_FEATURES) + " |")
    spread = [[piece[n] for piece in form["generated"]["per_piece"] if not np.isnan(piece[n])] for n in FORM_FEATURES]
    lines.append("| generated, per piece: lowest / median / highest | " + " | ".join(
        f"{min(v):.2f} / {np.median(v):.2f} / {max(v):.2f}" if v else "-" for v in spread) + " |")
    lines.append("| generated / training | " + " | ".join(f"{form['ratio'][n]:.2f}x" for n in FORM_FEATURES) + " |")
    auc = form["auc"]
    lines.append(f"classifier AUC against the training pieces' excerpts: generated {auc['generated']:.2f}, "
                 f"held out {auc['held_out']:.2f} (two halves of the training pieces: {auc['training_halves']:.2f})")
    return lines
