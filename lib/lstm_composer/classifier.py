"""Can a simple classifier tell two kinds of excerpts apart? A logistic regression on their
features, cross-validated with whole pieces held out together, reported as the area under the
ROC curve: 0.5 when it cannot, 1.0 when it always can."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

FOLDS = 5
REPEATS = 5  # draws of the folds the AUC is averaged over
RIDGE = 1.0  # L2 penalty on the standardised features' weights


def fit_logistic(features: np.ndarray, labels: np.ndarray, ridge: float = RIDGE, steps: int = 50) -> np.ndarray:
    """Weights (intercept last) of an L2-penalised logistic regression, by Newton's method, each
    class weighing as much as the other whatever their sizes: otherwise the intercept follows
    the share of each class in the fitting folds, which differs from fold to fold, and the
    scores of different folds could not be ranked together."""
    x = np.hstack([features, np.ones((len(features), 1))])
    positives = labels.sum()
    balance = np.where(labels > 0, 0.5 / max(positives, 1), 0.5 / max(len(labels) - positives, 1)) * len(labels)
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], ridge)
    penalty[-1] = 0.0  # the intercept is not penalised
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -30, 30)))
        gradient = x.T @ (balance * (p - labels)) + penalty * weights
        hessian = (x * (balance * p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([positives, negatives])[order]
    # average ranks over ties
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    ends = np.concatenate([starts[1:], [len(values)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    rank_sum = ranks[:len(positives)].sum()
    return float((rank_sum - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives)))


def cross_validated_auc(features: np.ndarray, labels: np.ndarray, groups: Sequence, folds: int = FOLDS,
                        repeats: int = REPEATS) -> float:
    """Each excerpt scored by a regression fitted on the other folds' pieces (a piece's excerpts
    never in two folds), features standardised by the fitting folds and missing values set to
    their mean; the AUC of all scores together, averaged over `repeats` draws of the folds (one
    draw alone moves it by a tenth on a corpus of thirty pieces)."""
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    return float(np.nanmean([_one_draw(features, labels, groups, folds, seed) for seed in range(repeats)]))


def _one_draw(features: np.ndarray, labels: np.ndarray, groups: Sequence, folds: int, seed: int) -> float:
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: rank % folds for rank, i in enumerate(order)}
    fold = np.array([fold_of[group] for group in groups])
    scores = np.full(len(labels), np.nan)
    for k in range(folds):
        test, train = fold == k, fold != k
        if not test.any() or len(set(labels[train])) < 2:
            continue
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a feature missing in every fitting excerpt
            mean = np.nan_to_num(np.nanmean(features[train], axis=0))
            spread = np.nanstd(features[train], axis=0)
        spread[~(spread > 0)] = 1.0
        standardised = np.nan_to_num((np.where(np.isnan(features), mean, features) - mean) / spread)
        weights = fit_logistic(standardised[train], labels[train])
        scores[test] = np.hstack([standardised[test], np.ones((test.sum(), 1))]) @ weights
    kept = ~np.isnan(scores)
    return auc(scores[kept], labels[kept])
