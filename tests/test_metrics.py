"""Metrics against hand-computed values (ties included) and a brute-force tie-breaking check."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmrec_core.data.metrics import full_rank_counts, metrics_from_counts, rank_counts, summarize

L2 = math.log2

# (positive score, negative scores, expected metrics): values worked out by hand.
CASES = [
    pytest.param(0.9, [0.1, 0.5, 0.95],
                 {"rank": 2, "HR@1": 0, "HR@2": 1, "NDCG@2": 1 / L2(3), "MRR": 1 / 2, "AUC": 2 / 3},
                 id="one-above"),
    pytest.param(1.0, [0.1, 0.2, 0.3],
                 {"rank": 1, "HR@1": 1, "NDCG@1": 1, "MRR": 1, "AUC": 1}, id="perfect"),
    pytest.param(0.0, [0.1, 0.2, 0.3],
                 {"rank": 4, "HR@3": 0, "HR@5": 1, "NDCG@5": 1 / L2(5), "MRR": 1 / 4, "AUC": 0}, id="last"),
    # ties: 1 above, 2 tied -> rank uniform on {2, 3, 4}
    pytest.param(0.5, [0.5, 0.5, 0.1, 0.9],
                 {"rank": 3, "HR@1": 0, "HR@2": 1 / 3, "HR@3": 2 / 3, "HR@5": 1,
                  "NDCG@3": (1 / L2(3) + 1 / L2(4)) / 3, "NDCG@5": (1 / L2(3) + 1 / L2(4) + 1 / L2(5)) / 3,
                  "MRR": (1 / 2 + 1 / 3 + 1 / 4) / 3, "AUC": (1 + 0.5 * 2) / 4},
                 id="ties"),
    # a constant model is at chance, not perfect: 20 ties -> HR@5 = 5/21, AUC = 0.5
    pytest.param(0.3, [0.3] * 20, {"rank": 11, "HR@5": 5 / 21, "HR@1": 1 / 21, "AUC": 0.5}, id="all-tied"),
]


@pytest.mark.parametrize(("pos", "negs", "expected"), CASES)
def test_metrics_match_hand_computed_values(pos: float, negs: list[float], expected: dict) -> None:
    g, t = rank_counts(np.array([pos]), np.array([negs]))
    row = metrics_from_counts(g, t, len(negs), ks=(1, 2, 3, 5)).iloc[0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value), name


def _brute_force(pos: float, negs: list[float], k: int) -> tuple[float, float, float]:
    """Average HR@k, NDCG@k, MRR over every ordering of the tied candidates."""
    scores = [pos, *negs]
    results = []
    for perm in itertools.permutations(range(len(scores))):
        # rank by score, ties broken by position in `perm`
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], perm.index(i)))
        r = order.index(0) + 1
        results.append((float(r <= k), (1 / L2(r + 1)) if r <= k else 0.0, 1 / r))
    return tuple(np.mean(results, axis=0))


@pytest.mark.parametrize("seed", range(6))
def test_tie_handling_equals_average_over_random_tie_breaks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    negs = rng.integers(0, 3, size=5).astype(float).tolist()  # few distinct values -> many ties
    pos = float(rng.integers(0, 3))
    g, t = rank_counts(np.array([pos]), np.array([negs]))
    row = metrics_from_counts(g, t, len(negs), ks=(2,)).iloc[0]
    hr, ndcg, mrr = _brute_force(pos, negs, 2)
    assert (row["HR@2"], row["NDCG@2"], row["MRR"]) == pytest.approx((hr, ndcg, mrr))


def test_nan_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        rank_counts(np.array([0.5]), np.array([[0.1, np.nan]]))


def test_full_ranking_leaves_out_the_history_and_a_repeat_positive_is_a_miss() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5],
                       [0.1, 0.5, 0.5, 0.9, 0.2],
                       [0.1, 0.5, 0.5, 0.9, 0.2]])
    positives = np.array([3, 2, 1])
    # user 0 bought items 0 and 1 before (they would outrank the positive); user 1 bought item 3 and
    # ties with item 1; user 2's positive is item 1, which they bought before: never recommended
    g, t, n = full_rank_counts(scores, positives, [np.array([0, 1]), np.array([3]), np.array([3, 1])])
    assert g.tolist() == [1, 0, 3] and t.tolist() == [0, 1, 0] and n.tolist() == [2, 3, 3]
    per_user = metrics_from_counts(g, t, n, ks=(1, 3))
    assert per_user["HR@1"].tolist() == [0.0, 0.5, 0.0] and per_user["HR@3"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["AUC"].tolist() == pytest.approx([1 / 2, (2 + 0.5) / 3, 0.0])


def test_summary_reports_all_users_and_the_repeat_split() -> None:
    per_user = metrics_from_counts(np.array([0, 4, 0, 9]), np.zeros(4, int), 20, ks=(1,))
    table = summarize(per_user, is_repeat=np.array([True, False, True, False]))
    assert table.loc["all", "users"] == 4 and table.loc["all", "HR@1"] == 0.5
    assert table.loc["repeat", "HR@1"] == 1.0 and table.loc["no_repeat", "HR@1"] == 0.0
