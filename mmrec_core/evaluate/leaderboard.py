"""Comparing evaluation runs: leaderboard with bootstrap intervals, paired tests, disagreements, breakdowns.

Every eval run stores each user's rank counts (`user_ranks`), so any metric can be recomputed per
user and two runs compared user by user. Intervals: percentile bootstrap over users (the same seeded
resamples for every run). Paired test: bootstrap of the mean per-user difference, and the Wilcoxon
signed-rank test on the users where the two runs differ.

Protocol guard: a ranking only holds runs of one protocol whose users and candidate lists are exactly
the protocol's (same `candidates_hash`). Runs on a subset of users, or on candidates that are no
longer the stored ones, are listed apart with the reason and never ranked with the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec_core.data.metrics import metrics_from_counts
from mmrec_core.evaluate.ablations import ablation_name
from mmrec_core.evaluate.offline import SAMPLED_KS, candidates_hash
from mmrec_core.models.data import load_train_data
from mmrec_core.store.workspace import Workspace

METRICS = ["HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR", "AUC"]


def run_label(method: str, params: dict) -> str:
    """What the leaderboard calls a run: the model, and for the LLM zero-shot or the adapter's training run."""
    if params.get("ranking") == "full-catalog":  # a two-stage run: its retriever, K and re-ranker
        adapter = {"adapter": params["adapter"]} if params.get("adapter") else {}
        reranker = run_label(f"llm-{params.get('mode', 'pointwise')}", adapter).removesuffix(" zero-shot")
        return f"{params.get('retriever')} top-{params.get('k')} + {reranker}"
    if not method.startswith("llm-"):
        return method
    adapter = params.get("adapter")
    label = f"{method} + {Path(adapter).parent.name}" if adapter else f"{method} zero-shot"
    ablation = ablation_name(params)  # a setting with part of the context taken away is its own row
    return f"{label} ({ablation})" if ablation else label


def eval_runs(ws: Workspace, dataset: str, protocol_id: str) -> pd.DataFrame:
    """Eval runs of a protocol, newest first: run_id, method, label, users, subset, candidates_hash,
    seconds_per_user, finished_at, has_ranks (False for runs made before per-user ranks were stored)."""
    runs = ws.store.eval_runs(dataset, protocol_id)
    params = [json.loads(p) for p in runs.pop("params")]
    runs["label"] = [run_label(m, p) for m, p in zip(runs["method"], params, strict=True)]
    runs["users"] = runs.pop("n_ranks")
    runs["subset"] = [bool(p.get("subset", False)) for p in params]
    runs["candidates_hash"] = [p.get("candidates_hash") for p in params]
    runs["full_catalog"] = pd.Series([p.get("ranking") == "full-catalog" for p in params], index=runs.index, dtype=bool)
    runs["has_ranks"] = runs["users"] > 0
    return runs


def runs_version(ws: Workspace, dataset: str, protocol_id: str) -> str:
    """Changes whenever an eval run of the protocol is added (a cache key for the leaderboard)."""
    return ws.store.eval_runs_version(dataset, protocol_id)


def protocols(ws: Workspace, dataset: str) -> list[str]:
    """The data set's protocols, oldest (the default) first."""
    return ws.store.protocols(dataset)["protocol_id"].tolist()


def user_metrics(ws: Workspace, run_id: str, ks: tuple[int, ...] = SAMPLED_KS) -> pd.DataFrame:
    """Per-user metrics of one run, indexed by user_id (rank = expected rank of the positive)."""
    r = ws.store.user_ranks(run_id)
    if r.empty:
        raise KeyError(f"Run {run_id} has no per-user ranks; re-run it with `mmrec eval --all`.")
    return metrics_from_counts(r["greater"], r["ties"], r["competitors"], ks=ks).set_index(r["user_id"])


def bootstrap_means(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of `n_boot` resamples of the rows (users) of `values` (users x metrics): n_boot x metrics."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    idx = np.random.default_rng(seed).integers(len(values), size=(n_boot, len(values)))
    return values[idx].mean(axis=1)


@dataclass
class Leaderboard:
    table: pd.DataFrame  # one row per label (its newest run): metrics with _lo / _hi, seconds_per_user
    excluded: pd.DataFrame  # run_id, label, reason: runs that may not be ranked with these
    users: int  # the protocol's evaluated users
    per_user: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> the metrics of each user it covers


def leaderboard(ws: Workspace, dataset: str, protocol_id: str, n_boot: int = 2000, seed: int = 0) -> Leaderboard:
    """The newest comparable run of every model setting, with 95% bootstrap intervals over users."""
    data = load_train_data(ws.store, dataset, protocol_id)
    reference, n_users = candidates_hash(data), len(data.parts["test"].users)
    runs = eval_runs(ws, dataset, protocol_id)
    runs = runs[~runs["full_catalog"]]  # the two-stage protocol ranks the whole catalog: `full_catalog_board`
    runs["reason"] = [_reason(r, reference, n_users) for r in runs.itertuples()]
    ok = runs[runs["reason"] == ""].drop_duplicates("label")  # newest first: one run per setting
    newest = runs.drop_duplicates("label")
    apart = newest[newest["reason"] != ""]  # a setting's latest run that cannot be ranked is stated, never hidden
    table, per_user = _board(ws, ok, None, n_boot, seed)
    return Leaderboard(table, apart[["run_id", "label", "reason"]].reset_index(drop=True), n_users, per_user)


def _board(
    ws: Workspace, runs: pd.DataFrame, users: pd.Index | None, n_boot: int, seed: int
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per run (metrics over its users, or over `users`, with bootstrap intervals), best NDCG@5 first;
    and each run's per-user metrics (over the same users), which paired tests read."""
    rows, by_run = [], {}
    for run in runs.itertuples():
        per_user = user_metrics(ws, run.run_id)[METRICS]
        per_user = by_run[run.run_id] = per_user if users is None else per_user.loc[users]
        boot = bootstrap_means(per_user.to_numpy(), n_boot, seed)
        row = {"label": run.label, "run_id": run.run_id, "method": run.method, "users": len(per_user)}
        for j, name in enumerate(METRICS):
            row[name] = per_user[name].mean()
            row[f"{name}_lo"], row[f"{name}_hi"] = np.percentile(boot[:, j], [2.5, 97.5])
        rows.append({**row, "seconds_per_user": run.seconds_per_user, "finished_at": run.finished_at})
    table = pd.DataFrame(
        rows, columns=["label", "run_id", "method", "users", *_interval_columns(), "seconds_per_user", "finished_at"]
    )
    return table.sort_values("NDCG@5", ascending=False, ignore_index=True), by_run


def subset_board(
    ws: Workspace,
    dataset: str,
    protocol_id: str,
    run_id: str,
    n_boot: int = 2000,
    seed: int = 0,
    board: Leaderboard | None = None,
) -> Leaderboard:
    """A run on a seeded subset of the users (`--users N`: an LLM run too slow for all of them) beside every ranked
    full run restricted to the same users: every run stores each user's rank, so the restriction is exact and the
    rows compare like with like. Refuses a subset scored on candidates other than the protocol's stored ones.
    `board`: the protocol's leaderboard when the caller has it (whose ranked runs join the subset's)."""
    data = load_train_data(ws.store, dataset, protocol_id)
    runs = eval_runs(ws, dataset, protocol_id)
    subset = runs[runs["run_id"] == run_id]
    if subset.empty:
        raise KeyError(f"Unknown eval run {run_id} for {protocol_id}.")
    users = user_metrics(ws, run_id).index
    if subset["candidates_hash"].iloc[0] != candidates_hash(data, list(users)):
        raise ValueError(f"Run {run_id} was not scored on the protocol's stored candidates of its users.")
    board = board or leaderboard(ws, dataset, protocol_id, n_boot, seed)
    full = runs[runs["run_id"].isin(board.table["run_id"])]
    table, per_user = _board(ws, pd.concat([subset, full]), users, n_boot, seed)
    return Leaderboard(table, pd.DataFrame(), len(users), per_user)


FULL_METRICS = ["Recall@10", "NDCG@10", "Recall@20", "NDCG@20", "Recall@50"]
FULL_SPLIT_METRICS = ["Recall@10", "Recall@50"]  # shown on warm and on cold test items apart


def full_catalog_board(ws: Workspace, dataset: str, protocol_id: str) -> pd.DataFrame:
    """The full-catalog protocol: each model's newest eval run ranking the whole catalog (history left out)
    and each two-stage setting's newest run (retriever top K re-ranked by the LLM), all test users.

    Columns: label, run_id, FULL_METRICS, for two-stage runs the retriever's Recall@K (the ceiling), then
    FULL_SPLIT_METRICS on warm and on cold test items ("Recall@10 warm", ...).
    """
    runs = eval_runs(ws, dataset, protocol_id)
    runs = runs[~runs["subset"] & ~runs["label"].str.startswith("llm-")].drop_duplicates("label")
    metrics = ws.store.run_metrics(list(runs["run_id"]))
    cold = ws.store.test_targets(dataset, protocol_id).set_index("user_id")["cold"]
    split = [f"{m} {g}" for g in ("warm", "cold") for m in FULL_SPLIT_METRICS]
    rows = []
    for run in runs.itertuples():
        got = metrics[metrics["run_id"] == run.run_id]
        if run.full_catalog:
            values = got[got["subset"] == "retriever+llm"].set_index("name")["value"]
            ceiling = values.filter(like="(retriever)")  # Recall@K of the retriever alone
            row = {m: values.get(m) for m in FULL_METRICS}
            row["Recall@K (retriever)"] = ceiling.iloc[0] if len(ceiling) else None
            row |= _split_from_ranks(ws.store.user_ranks(run.run_id), cold)  # its stored ranks are full-catalog
        else:
            values = got[got["subset"] == "all"].set_index("name")["value"]
            row = {m: values.get(f"full:{m}") for m in FULL_METRICS}
            for group in ("warm", "cold"):
                part = got[got["subset"] == group].set_index("name")["value"]
                row |= {f"{m} {group}": part.get(f"full:{m}") for m in FULL_SPLIT_METRICS}
        if all(row[m] is not None for m in FULL_METRICS):
            rows.append({"label": run.label, "run_id": run.run_id, **row})
    table = pd.DataFrame(rows, columns=["label", "run_id", *FULL_METRICS, "Recall@K (retriever)", *split])
    return table.sort_values("NDCG@10", ascending=False, ignore_index=True)


def _split_from_ranks(ranks: pd.DataFrame, cold: pd.Series) -> dict[str, float | None]:
    """FULL_SPLIT_METRICS on warm and on cold test items from per-user full-catalog rank counts."""
    m = metrics_from_counts(ranks["greater"], ranks["ties"], ranks["competitors"], ks=(10, 50))
    is_cold = cold.reindex(ranks["user_id"]).fillna(False).to_numpy(dtype=bool)
    out: dict[str, float | None] = {}
    for group, mask in (("warm", ~is_cold), ("cold", is_cold)):
        for metric in FULL_SPLIT_METRICS:
            out[f"{metric} {group}"] = float(m[metric.replace("Recall", "HR")][mask].mean()) if mask.any() else None
    return out


def _interval_columns() -> list[str]:
    return [c for m in METRICS for c in (m, f"{m}_lo", f"{m}_hi")]


def _reason(run, reference: str, n_users: int) -> str:
    """Why a run may not be ranked with the protocol's full runs ('' if it may)."""
    if not run.has_ranks:
        return "made before per-user ranks were stored: re-run `mmrec eval --all`"
    if run.subset or run.users < n_users:
        return f"scored on {run.users} of {n_users} users (a subset): not comparable with full runs"
    if run.candidates_hash != reference:
        return "its users or candidate lists differ from the protocol's stored ones"
    return ""


@dataclass
class PairedResult:
    metric: str
    users: int
    mean_a: float
    mean_b: float
    diff: float  # mean of a - b over the common users
    ci: tuple[float, float]  # 95% paired bootstrap interval of diff
    p_value: float  # Wilcoxon signed-rank, two-sided (1.0 when no user differs)
    a_better: int
    b_better: int


def paired_test(
    ws: Workspace, run_a: str, run_b: str, metric: str = "NDCG@5", n_boot: int = 10000, seed: int = 0
) -> PairedResult:
    """Compare two runs user by user; refuses runs scored on different candidates (the protocol guard)."""
    _same_candidates(ws, run_a, run_b)
    return paired_values(user_metrics(ws, run_a)[metric], user_metrics(ws, run_b)[metric], metric, n_boot, seed)


def paired_values(a: pd.Series, b: pd.Series, metric: str, n_boot: int = 10000, seed: int = 0) -> PairedResult:
    """The paired comparison of two runs' per-user values (indexed by user), over the users both have."""
    from scipy.stats import wilcoxon

    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    d = (a - b).to_numpy()
    lo, hi = np.percentile(bootstrap_means(d, n_boot, seed)[:, 0], [2.5, 97.5])
    p = float(wilcoxon(d[d != 0]).pvalue) if np.count_nonzero(d) > 0 else 1.0
    return PairedResult(
        metric,
        len(d),
        float(a.mean()),
        float(b.mean()),
        float(d.mean()),
        (float(lo), float(hi)),
        p,
        int((d > 0).sum()),
        int((d < 0).sum()),
    )


def _same_candidates(ws: Workspace, run_a: str, run_b: str) -> None:
    rows = ws.store.runs_by_id([run_a, run_b])
    if len(rows) != len({run_a, run_b}):
        raise KeyError(f"Unknown run: {sorted({run_a, run_b} - set(rows['run_id']))}.")
    hashes = {json.loads(p).get("candidates_hash") for p in rows["params"]}
    if rows["protocol_id"].nunique() > 1 or len(hashes) > 1 or None in hashes:
        raise ValueError(
            f"Runs {run_a} and {run_b} were scored on different users or candidate lists "
            f"({', '.join(rows['protocol_id'].unique())}); compare runs of one protocol with all its users."
        )


def disagreements(ws: Workspace, dataset: str, protocol_id: str, run_a: str, run_b: str, k: int = 5) -> pd.DataFrame:
    """Customers whose test item one run ranks in its top k and the other does not.

    Columns: user_id, winner ('a' or 'b'), rank_a, rank_b, item_id, title; the widest gaps first.
    """
    _same_candidates(ws, run_a, run_b)
    ra, rb = user_metrics(ws, run_a)["rank"], user_metrics(ws, run_b)["rank"]
    hit_a, hit_b = ra <= k, rb <= k
    out = pd.DataFrame({"rank_a": ra, "rank_b": rb})[hit_a != hit_b]
    out.insert(0, "winner", np.where(hit_a[out.index], "a", "b"))
    targets = ws.store.test_targets(dataset, protocol_id).set_index("user_id")[["item_id", "title"]]
    out = out.join(targets).rename_axis("user_id").reset_index()
    out["gap"] = (out["rank_a"] - out["rank_b"]).abs()
    return out.sort_values(["winner", "gap"], ascending=[True, False], ignore_index=True).drop(columns="gap")


def user_groups(ws: Workspace, dataset: str, protocol_id: str, by: str, max_groups: int = 8) -> pd.Series:
    """Each evaluated user's group: `history` (training purchases, in 4 quantile bins), `category`
    (of the test item; the largest categories, the rest as 'other') or `cold` (whether the test item
    occurs in any training interaction: 'warm' or 'cold')."""
    if by == "history":
        n = ws.store.evaluated_train_lengths(dataset, protocol_id)
        edges = np.unique(np.quantile(n, [0, 0.25, 0.5, 0.75, 1.0]).round().astype(int))
        # bins are (left, right]: move the first edge down so the shortest history falls in the first bin
        edges = np.r_[edges[0] - 1, edges[1:] if len(edges) > 1 else edges]
        cut = pd.cut(n, edges)
        labels = {iv: f"{int(iv.left) + 1}-{int(iv.right)} purchases" for iv in cut.cat.categories}
        return cut.map(labels).rename("group")  # still categorical: the bins keep their numeric order
    if by == "category":
        cat = ws.store.test_targets(dataset, protocol_id).set_index("user_id")["category"]
        top = cat.value_counts().index[:max_groups]
        grouped = cat.where(cat.isin(top), "other")
        order = list(dict.fromkeys([*top, "other"]))  # largest first; a category really named "other" once
        return grouped.astype(pd.CategoricalDtype(order, ordered=True)).rename("group")
    if by == "cold":
        cold = ws.store.test_targets(dataset, protocol_id).set_index("user_id")["cold"]
        names = cold.map({False: "warm", True: "cold"})
        return names.astype(pd.CategoricalDtype(["warm", "cold"], ordered=True)).rename("group")
    raise ValueError(f"Unknown breakdown '{by}'; use 'history', 'category' or 'cold'.")


def breakdown(
    ws: Workspace, dataset: str, protocol_id: str, run_ids: list[str], by: str, metric: str = "NDCG@5"
) -> pd.DataFrame:
    """Mean `metric` per user group per run (long form): group, run_id, value, users."""
    groups = user_groups(ws, dataset, protocol_id, by)
    frames = []
    for run_id in run_ids:
        values = user_metrics(ws, run_id)[metric].to_frame("value").join(groups, how="inner")
        agg = values.groupby("group", observed=True)["value"].agg(["mean", "size"]).reset_index()
        agg["group"] = agg["group"].astype(str)
        frames.append(agg.rename(columns={"mean": "value", "size": "users"}).assign(run_id=run_id))
    return pd.concat(frames, ignore_index=True)[["group", "run_id", "value", "users"]]
