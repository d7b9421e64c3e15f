"""Train and evaluate the non-LLM recommenders on a stored protocol, and record both as runs.

`train_model` fits a model on the protocol's training sequences (valid picks the epoch), saves it
under `<data folder>/runs/<run id>/` and records a 'train' run. `evaluate_model` scores the TEST part
of the newest trained model for that protocol: the stored 1 positive + n negatives (HR@K, NDCG@K,
MRR, AUC) and the full catalog with the user's history items left out (Recall@K = HR@K with one
positive, NDCG@K), over ALL evaluated users, split by repeat/no-repeat targets; it records an 'eval'
run with every figure in the metrics table and each user's rank of the positive in `user_ranks`
(what intervals and paired tests are computed from, see `leaderboard`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec_core.metrics import full_rank_counts, metrics_from_counts, sampled_metrics, sampled_ranks, summarize
from mmrec_core.models.base import Progress, Recommender
from mmrec_core.models.data import TrainData, load_train_data
from mmrec_core.models.lightgcn import ItemGraphConfig, ItemGraphLightGCN
from mmrec_core.models.popularity import Popularity, PopularityConfig
from mmrec_core.models.sasrec import SASRec, SASRecConfig
from mmrec_core.splits import create_protocol
from mmrec_core.workspace import Workspace

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "popularity": (Popularity, PopularityConfig),
    "sasrec": (SASRec, SASRecConfig),
    "lightgcn": (ItemGraphLightGCN, ItemGraphConfig),
}
SAMPLED_KS, FULL_KS = (5, 10), (10, 20)
RANK_COLUMNS = ["greater", "ties", "competitors"]


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout (recorded with every eval run)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("mmrec-studio")
    except PackageNotFoundError:
        base = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+{commit}" if commit else base


def candidates_hash(data: TrainData, users: list[str] | None = None, part: str = "test") -> str:
    """Fingerprint of the users and their stored candidate lists: runs are ranked together only if equal."""
    cand = data.parts[part]
    keep = None if users is None else set(users)
    rows = [
        [u, [str(data.item_ids[i]) for i in items]]
        for u, items in zip(cand.users, cand.items, strict=True)
        if keep is None or u in keep
    ]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _model_class(method: str) -> tuple[type[Recommender], type]:
    if method not in MODELS:
        raise ValueError(f"Unknown model '{method}'; choose one of {', '.join(MODELS)}.")
    return MODELS[method]


def record_run(
    ws: Workspace,
    dataset: str,
    protocol_id: str,
    kind: str,
    method: str,
    params: dict,
    artifact: Path | None,
    metrics: pd.DataFrame | None = None,
    ranks: pd.DataFrame | None = None,
) -> str:
    """Store a run, its metrics and (eval runs) each user's rank counts (user_id + RANK_COLUMNS) at once."""
    run_id = f"{kind}-{method}-{uuid.uuid4().hex[:10]}"
    key = json.dumps([protocol_id, method, params], sort_keys=True, default=str)
    with ws.store.transaction() as tx:
        tx.execute(
            "INSERT INTO runs (run_id, dataset, protocol_id, kind, method, status, artifact_path, finished_at, "
            "engine, model, params, input_hash) VALUES (?, ?, ?, ?, ?, 'done', ?, current_timestamp, 'torch', ?, ?, ?)",
            [
                run_id,
                dataset,
                protocol_id,
                kind,
                method,
                str(artifact) if artifact else None,
                method,
                json.dumps(params, default=str),
                hashlib.sha256(key.encode()).hexdigest(),
            ],
        )
        if metrics is not None:
            tx.register("_m", metrics.assign(run_id=run_id))
            tx.execute(
                "INSERT INTO metrics (run_id, part, subset, name, value) "
                "SELECT run_id, part, subset, name, value FROM _m"
            )
            tx.unregister("_m")
        if ranks is not None:
            tx.register("_r", ranks[["user_id", *RANK_COLUMNS]].assign(run_id=run_id))
            tx.execute(
                "INSERT INTO user_ranks (run_id, user_id, greater, ties, competitors) "
                "SELECT run_id, user_id, greater, ties, competitors FROM _r"
            )
            tx.unregister("_r")
    return run_id


def metric_rows(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """A `summarize` table (users included) as metrics-table rows: part, subset, name, value."""
    long = table.astype(float).stack().rename("value").reset_index()
    long.columns = ["subset", "name", "value"]
    return long.assign(part=part).dropna(subset=["value"])  # a subset with no users has no means


def attach_graph_inputs(ws: Workspace, data: TrainData) -> TrainData:
    """Add the newest item graph of the protocol, the item text vectors and the profile embeddings."""
    from mmrec_core.item_graph import ITEM_TEXT_KIND, latest_graph_id, load_graph

    graph_id = latest_graph_id(ws.store, data.dataset, data.protocol_id)
    if graph_id is None:
        raise KeyError(f"No item graph for {data.protocol_id}; build one with `mmrec graph {data.dataset}`.")
    index = data.index()
    edges = load_graph(ws.store, data.dataset, graph_id)
    data.edges = (
        pd.DataFrame({"src": edges["src"].map(index), "dst": edges["dst"].map(index), "weight": edges["weight"]})
        .dropna()
        .astype({"src": int, "dst": int})
    )
    vectors = ws.store.embeddings(data.dataset, ITEM_TEXT_KIND).set_index("key")["vector"]
    missing = set(data.item_ids) - set(vectors.index)
    if missing:
        raise KeyError(f"{len(missing)} items have no text embedding; rebuild with `mmrec graph {data.dataset}`.")
    data.item_features = np.stack([np.asarray(vectors[i], dtype=np.float32) for i in data.item_ids])
    profiles = ws.store.embeddings(data.dataset, f"profile:{data.protocol_id}")
    data.user_features = {
        u: np.asarray(v, dtype=np.float32) for u, v in zip(profiles["key"], profiles["vector"], strict=True)
    }
    return data


def train_model(
    ws: Workspace,
    dataset: str,
    method: str,
    protocol_id: str | None = None,
    config=None,
    progress: Progress | None = None,
    data: TrainData | None = None,
) -> str:
    """Fit `method` on the protocol's training data, save it, record a 'train' run; returns the run id."""
    cls, config_type = _model_class(method)
    protocol_id = protocol_id or create_protocol(ws.store, dataset)
    config = config or config_type()
    data = data or load_train_data(ws.store, dataset, protocol_id)
    if method == "lightgcn":
        data = attach_graph_inputs(ws, data)
    start = time.perf_counter()
    model = cls(config)
    model.fit(data, progress)
    folder = ws.settings.data_dir / "runs" / f"{method}-{uuid.uuid4().hex[:10]}"
    model.save(folder)
    params = {
        **dataclasses.asdict(config),
        "train_seconds": round(time.perf_counter() - start, 2),
        "epochs_run": len(model.log),
        "train_users": len(data.sequences),
    }
    if data.user_features is not None:  # the item-graph model: how many users had an LLM profile
        params["users_with_profile"] = sum(u in data.user_features for u in data.sequences)
    return record_run(ws, dataset, protocol_id, "train", method, params, folder)


def load_trained(ws: Workspace, dataset: str, method: str, protocol_id: str) -> tuple[Recommender, str]:
    """The newest model of `method` trained on this protocol, and its run id."""
    cls, config_type = _model_class(method)
    row = ws.store.sql_df(
        "SELECT run_id, artifact_path FROM runs WHERE dataset = ? AND protocol_id = ? AND kind = 'train' "
        "AND method = ? ORDER BY finished_at DESC LIMIT 1",
        [dataset, protocol_id, method],
    )
    if row.empty:
        raise KeyError(f"No trained {method} for {protocol_id}; run `mmrec train {method} {dataset}` first.")
    return cls.load(Path(row["artifact_path"].iloc[0]), config_type), row["run_id"].iloc[0]


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
    """Score the test part with the newest trained `method` (popularity is fitted on the spot if none)."""
    protocol_id = protocol_id or create_protocol(ws.store, dataset)
    data = data or load_train_data(ws.store, dataset, protocol_id)
    try:
        model, train_run = load_trained(ws, dataset, method, protocol_id)
    except KeyError:
        if method != "popularity":
            raise
        train_run = train_model(ws, dataset, method, protocol_id, data=data)
        model, train_run = load_trained(ws, dataset, method, protocol_id)
    start = time.perf_counter()
    per_user = ranking_metrics(model, data, "test")
    seconds = time.perf_counter() - start
    table = summarize(per_user.drop(columns=["user_id", *RANK_COLUMNS]), data.parts["test"].is_repeat)
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
    run_id = record_run(ws, dataset, protocol_id, "eval", method, params, None, metrics, per_user)
    return run_id, table
