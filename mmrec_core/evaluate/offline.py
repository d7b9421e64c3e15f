"""Evaluate the trained non-LLM recommenders (training: `models.registry`) and record the result as a run.

`evaluate_model` scores the TEST part of the newest trained model for that protocol: the stored
1 positive + n negatives (HR@K, NDCG@K, MRR, AUC) and the full catalog with the user's history items
left out, so a repeat purchase is a miss there (Recall@K = HR@K with one positive, NDCG@K), over ALL
evaluated users, split by
repeat/no-repeat and cold/warm targets; it records an 'eval' run with every figure in the metrics table and each
user's rank of the positive in `user_ranks` (what intervals and paired tests are computed from, see
`leaderboard`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.provenance import code_version
from mmrec_core.data.metrics import full_rank_counts, metrics_from_counts, sampled_metrics, sampled_ranks, summarize
from mmrec_core.models.base import Recommender
from mmrec_core.models.data import TrainData, load_train_data
from mmrec_core.models.registry import TRAINING_FREE, load_trained, train_model
from mmrec_core.store.runs import RANK_COLUMNS
from mmrec_core.store.workspace import Workspace, default_protocol

SAMPLED_KS, FULL_KS = (5, 10), (10, 20, 50)  # 50: the two-stage default K, its ceiling


def candidates_hash(data: TrainData, users: list[str] | None = None, part: str = "test") -> str:
    """Fingerprint of the users and their stored candidate lists: runs are ranked together only if equal."""
    cand = data.parts[part]
    keep = None if users is None else set(users)
    rows = [
        [u, [str(data.item_ids[i]) for i in items]]
        for u, items in zip(cand.users, cand.items, strict=True)
        if keep is None or u in keep
    ]
    return input_hash(rows, length=16)


def metric_rows(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """A `summarize` table (users included) as metrics-table rows: part, subset, name, value."""
    long = table.astype(float).stack().rename("value").reset_index()
    long.columns = ["subset", "name", "value"]
    return long.assign(part=part).dropna(subset=["value"])  # a subset with no users has no means


def ranking_metrics(model: Recommender, data: TrainData, part: str = "test", batch: int = 1024) -> pd.DataFrame:
    """Per-user metrics on the stored candidates and on the full catalog (history items left out), and
    the rank counts on the stored candidates (RANK_COLUMNS)."""
    cand = data.parts[part]
    sampled, ranks, full = [], [], []
    for first in range(0, len(cand.users), batch):
        rows = slice(first, first + batch)
        scores = model.score(cand.users[rows], cand.histories[rows])
        picked = np.take_along_axis(scores, cand.items[rows], axis=1)
        sampled.append(sampled_metrics(picked, ks=SAMPLED_KS))
        ranks.append(sampled_ranks(picked))
        g, t, n = full_rank_counts(scores, cand.items[rows, 0], [np.asarray(h) for h in cand.histories[rows]])
        full.append(metrics_from_counts(g, t, n, ks=FULL_KS).add_prefix("full:"))
    per_user = pd.concat([pd.concat(frames, ignore_index=True) for frames in (sampled, full, ranks)], axis=1)
    per_user = per_user.rename(columns={f"full:HR@{k}": f"full:Recall@{k}" for k in FULL_KS})
    return per_user.drop(columns=["full:MRR", "full:AUC"]).assign(user_id=cand.users)


def evaluate_model(
    ws: Workspace, dataset: str, method: str, protocol_id: str | None = None, data: TrainData | None = None
) -> tuple[str, pd.DataFrame]:
    """Score the test part with the newest trained `method` (popularity and repeat are fitted on the spot)."""
    protocol_id = default_protocol(ws, dataset, protocol_id)
    data = data or load_train_data(ws.store, dataset, protocol_id)
    try:
        model, train_run = load_trained(ws, dataset, method, protocol_id)
    except KeyError:
        if method not in TRAINING_FREE:
            raise
        train_run = train_model(ws, dataset, method, protocol_id, data=data)
        model, train_run = load_trained(ws, dataset, method, protocol_id)
    start = time.perf_counter()
    per_user = ranking_metrics(model, data, "test")
    seconds = time.perf_counter() - start
    test = data.parts["test"]
    table = summarize(per_user.drop(columns=["user_id", *RANK_COLUMNS]), test.is_repeat, test.is_cold)
    speed = pd.DataFrame({"subset": ["all"], "name": ["seconds_per_user"], "value": [seconds / len(per_user)]})
    metrics = pd.concat([metric_rows(table), speed.assign(part="test")], ignore_index=True)
    params = {
        "train_run": train_run,
        "negatives": data.parts["test"].items.shape[1] - 1,
        "users": len(per_user),
        "subset": False,
        "candidates_hash": candidates_hash(data),
        "code_version": code_version(),
    }
    run_id = ws.store.record_run(dataset, protocol_id, "eval", method, params, None, metrics, per_user)
    return run_id, table
