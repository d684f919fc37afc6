"""The n-gram yardstick, checked against probabilities worked out by hand."""
import math

import numpy as np
import pytest

from lstm_composer.ngram import KneserNey, unigram_add_one

A, B, C, D = 0, 1, 2, 3  # D never occurs in training
PIECE = [A, B, A, B, A, C]


def test_kneser_ney_bigram_by_hand():
    # Bigrams: AB x2, BA x2, AC x1. Counts of counts n1 = 1, n2 = 2: discount 1 / (1 + 2 * 2) = 0.2.
    # Unigram level, continuation counts: A, B and C each follow one distinct token (3 in all),
    # all three seen once, so n1 = 3, n2 = 0: discount 1, held at 0.95. With 4 tokens:
    #   P1(A) = P1(B) = P1(C) = (1 - 0.95 + 0.95 * 3 / 4) / 3,   P1(D) = (0.95 * 3 / 4) / 3
    p1_seen, p1_d = (0.05 + 0.7125) / 3, 0.7125 / 3
    # After A: AB 2, AC 1 (total 3, two followers). After B: BA 2 (total 2, one follower).
    p_b_after_a = (2 - 0.2 + 0.2 * 2 * p1_seen) / 3
    p_c_after_a = (1 - 0.2 + 0.2 * 2 * p1_seen) / 3
    p_a_after_b = (2 - 0.2 + 0.2 * 1 * p1_seen) / 2
    model = KneserNey([PIECE], order=2, vocab_size=4)
    assert model.probability([A], B) == pytest.approx(p_b_after_a)
    assert model.probability([A], C) == pytest.approx(p_c_after_a)
    assert model.probability([B], A) == pytest.approx(p_a_after_b)
    assert model.probability([C], D) == pytest.approx(p1_d)  # C is never followed: the unigram level
    assert model.probability([D], A) == pytest.approx(p1_seen)

    entropy, targets = model.cross_entropy([[A, B, A, C]], first_target=1)
    assert targets == 3
    assert entropy == pytest.approx(-(math.log(p_b_after_a) + math.log(p_a_after_b) + math.log(p_c_after_a)) / 3)
    assert math.exp(entropy) == pytest.approx(1.7834, abs=1e-4)  # (0.6339 * 0.9254 * 0.3006) ** (-1 / 3)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_gives_a_distribution(order):
    rng = np.random.default_rng(order)
    pieces = [rng.integers(0, 6, size=rng.integers(3, 30)) for _ in range(12)]
    model = KneserNey(pieces, order, vocab_size=8)
    for context in ([], [1], [2, 3], [1, 2, 3], [7, 7, 7], [0, 5, 1]):
        assert sum(model.probability(context, w) for w in range(8)) == pytest.approx(1.0)


def test_counts_stop_at_piece_boundaries():
    # Joined, "A B" would be followed by "C D"; as two pieces, nothing follows B.
    model = KneserNey([[A, B], [C, D]], order=2, vocab_size=4)
    assert model.levels[2].counts.get((B,)) is None


def test_unigram_is_add_one():
    assert unigram_add_one([[A, A, B]], 4).tolist() == [3 / 7, 2 / 7, 1 / 7, 1 / 7]
