"""The answer and retrieval metrics on hand-computed cases."""
import math

import pytest

from compare_metrics import answer_match, exact_match, normalize, percentile, recall_at_k, token_f1


def test_normalize_drops_case_punctuation_and_articles():
    assert normalize("The  Code is: R-18592!") == "code is r 18592"


def test_accents_are_folded():
    assert normalize("São Paulo, Zürich") == "sao paulo zurich"
    assert answer_match("You live in Sao Paulo.", "São Paulo") == 1.0


def test_exact_match():
    assert exact_match("  Lisbon. ", "lisbon") == 1.0
    assert exact_match("Anna lives in Lisbon.", "Lisbon") == 0.0


def test_answer_match_needs_whole_contiguous_words():
    assert answer_match("Your birthday is on 12 December.", "12 December") == 1.0
    assert answer_match("December 12", "12 December") == 0.0
    # 1890852 must not match inside a longer number
    assert answer_match("The number is 18908521.", "1890852") == 0.0
    assert answer_match("", "x") == 0.0


def test_token_f1_hand_computed():
    # prediction "anna lives in lisbon" (4 tokens), gold "lisbon portugal" (2): 1 common
    # precision 1/4, recall 1/2 -> F1 = 2 * 1/8 / (3/4) = 1/3
    assert token_f1("Anna lives in Lisbon.", "Lisbon, Portugal") == pytest.approx(1 / 3)
    assert token_f1("Lisbon", "Lisbon") == 1.0
    assert token_f1("Paris", "Lisbon") == 0.0
    # bag of words: common = min(2, 1) + min(1, 2) = 2 of 3 on each side
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)


def test_recall_at_k():
    assert recall_at_k([5, 3, 9], [9], 3) == 1.0
    assert recall_at_k([5, 3, 9], [9], 2) == 0.0
    assert recall_at_k([5, 3, 9], [1, 3], 2) == 1.0
    assert recall_at_k([], [1], 8) == 0.0


def test_percentile_matches_linear_interpolation():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([10.0, 0.0], 95) == pytest.approx(9.5)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
