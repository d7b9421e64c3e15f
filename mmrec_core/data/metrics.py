"""Ranking metrics for one positive per user: HR@K, NDCG@K, MRR, AUC.

Ties are scored by their expectation under uniformly random tie-breaking: a positive with `g`
strictly higher-scored and `t` equally-scored competitors has a rank uniform on g+1 .. g+t+1. A
model that gives every candidate the same score therefore gets chance level, never a perfect
score (optimistic ties) or zero (pessimistic ties); results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_KS = (5, 10, 20)


def rank_counts(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each user (row): how many negatives score strictly higher than the positive, and how many tie.

    pos_scores: shape (n_users,); neg_scores: shape (n_users, n_neg); NaN scores are refused.
    """
    pos = np.asarray(pos_scores, dtype=np.float64)[:, None]
    neg = np.asarray(neg_scores, dtype=np.float64)
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("NaN scores: a model produced no score for some candidate.")
    return (neg > pos).sum(axis=1), (neg == pos).sum(axis=1)


def full_rank_counts(scores: np.ndarray, positives: np.ndarray, exclude: Sequence[np.ndarray]) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Full-catalog ranking: scores (n_users, n_items), the positive's column per user, and per user
    the columns to leave out (the items in the user's history). Returns (greater, ties, n_competitors).

    Left-out items are never recommended, so a positive among them (a repeat purchase) is a miss:
    every competitor ranks above it. Keeping it while leaving out the rest of the history would tell
    a model that scores the customer's own items high which of them is the answer.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    rows = np.arange(len(positives))
    pos = scores[rows, positives].copy()
    n_items = scores.shape[1]
    n_comp, left_out = np.empty(len(positives), dtype=np.int64), np.zeros(len(positives), dtype=bool)
    for r, cols in enumerate(exclude):
        cols = np.unique(np.asarray(cols, dtype=np.int64))
        left_out[r] = positives[r] in cols
        scores[r, cols] = np.nan
        n_comp[r] = n_items - len(cols) - (not left_out[r])
    scores[rows, positives] = np.nan
    with np.errstate(invalid="ignore"):
        greater = (scores > pos[:, None]).sum(axis=1)
        ties = (scores == pos[:, None]).sum(axis=1)
    greater[left_out], ties[left_out] = n_comp[left_out], 0
    return greater, ties, n_comp


def metrics_from_counts(greater: np.ndarray, ties: np.ndarray, n_competitors: np.ndarray | int,
                        ks: Sequence[int] = DEFAULT_KS) -> pd.DataFrame:
    """Per-user metrics (one row per user) from rank counts; see the module docstring for ties."""
    g = np.asarray(greater, dtype=np.int64)
    t = np.asarray(ties, dtype=np.int64)
    n = np.broadcast_to(np.asarray(n_competitors, dtype=np.int64), g.shape)
    top = int((g + t).max(initial=0)) + 2
    # cumulative sums over ranks 1..top: harmonic numbers and DCG gains
    ranks = np.arange(1, top + 1, dtype=np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / ranks)])
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(ranks + 1))])
    span = t + 1  # number of equally likely ranks
    out = {"rank": g + 1 + t / 2.0}
    for k in ks:
        out[f"HR@{k}"] = np.clip(k - g, 0, span) / span
        out[f"NDCG@{k}"] = (gains[np.minimum(g + span, k)] - gains[np.minimum(g, k)]) / span
    out["MRR"] = (harmonic[g + span] - harmonic[g]) / span
    out["AUC"] = np.where(n > 0, (n - g - 0.5 * t) / np.maximum(n, 1), np.nan)
    return pd.DataFrame(out)


def sampled_ranks(scores: np.ndarray) -> pd.DataFrame:
    """Per user: greater, ties, competitors of the positive in column 0 (what `user_ranks` stores)."""
    scores = np.asarray(scores, dtype=np.float64)
    greater, ties = rank_counts(scores[:, 0], scores[:, 1:])
    return pd.DataFrame({"greater": greater, "ties": ties, "competitors": scores.shape[1] - 1})


def sampled_metrics(scores: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> pd.DataFrame:
    """Per-user metrics of candidate lists scored row by row, the positive in column 0 (stored protocol order)."""
    r = sampled_ranks(scores)
    return metrics_from_counts(r["greater"], r["ties"], r["competitors"], ks=ks)


def summarize(
    per_user: pd.DataFrame, is_repeat: np.ndarray | None = None, is_cold: np.ndarray | None = None
) -> pd.DataFrame:
    """Means over ALL users, and (given `is_repeat`) over targets that are / are not repeats, and (given
    `is_cold`) over targets absent from / present in the training data.

    Returns a frame indexed by subset ('all', 'no_repeat', 'repeat', 'warm', 'cold') with one column per
    metric plus `users`. The repeat split shows whether a model wins only by recalling past purchases; the
    cold split whether it can rank an item it never saw bought (where content must do the work).
    """
    metric_cols = [c for c in per_user.columns if c != "rank"]
    rows = {"all": per_user}
    if is_repeat is not None:
        mask = np.asarray(is_repeat, dtype=bool)
        rows["no_repeat"] = per_user[~mask]
        rows["repeat"] = per_user[mask]
    if is_cold is not None:
        cold = np.asarray(is_cold, dtype=bool)
        rows["warm"] = per_user[~cold]
        rows["cold"] = per_user[cold]
    table = pd.DataFrame({name: df[metric_cols].mean() for name, df in rows.items()}).T
    table["users"] = [len(df) for df in rows.values()]
    return table
