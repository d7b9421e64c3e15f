"""`mmrec report DATASET --markdown`: the leaderboard and its breakdowns as Markdown (RESULTS.md is made of these).

Every figure comes from the stored per-user ranks and metrics, so the file can be regenerated from the database
at any time; the header names the command, the code versions that made the runs and the date.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from mmrec_core.core.provenance import code_version
from mmrec_core.evaluate.ablations import ablation_name, full_setting
from mmrec_core.evaluate.costs import cost_table
from mmrec_core.evaluate.leaderboard import (
    METRICS,
    Leaderboard,
    breakdown,
    full_catalog_board,
    leaderboard,
    paired_test,
    paired_values,
    run_label,
    subset_board,
    user_groups,
)
from mmrec_core.store.workspace import Workspace

SPLIT_METRICS = ("HR@5", "NDCG@5", "AUC")  # per cold / warm group


def _table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table; '|' inside a cell is escaped so a label cannot break the layout."""
    cells = frame.astype(str).map(lambda v: v.replace("|", "\\|"))
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def _by_cold(groups: pd.Series, a: pd.Series, b: pd.Series, metric: str) -> dict[str, str]:
    """The paired difference a - b of per-user values on warm and on cold test items apart (`groups`: user ->
    warm | cold)."""
    out = {}
    for group in ("warm", "cold"):
        users = groups.index[groups == group]
        r = paired_values(a[a.index.isin(users)], b[b.index.isin(users)], metric)
        out[f"{group}: difference [95%]"] = f"{r.diff:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]" if r.users else ""
    return out


def strongest_baseline(board: Leaderboard) -> pd.Series | None:
    """The best run by NDCG@5 that uses no LLM: what every LLM setting must beat."""
    baselines = board.table[~board.table["method"].str.startswith("llm-")]
    return None if baselines.empty else baselines.iloc[0]


def _train_seconds(ws: Workspace, run_ids: list[str]) -> dict[str, float | None]:
    """Per eval run, the training time of the model it evaluated (None for the LLM and untimed runs)."""
    evals = ws.store.runs_by_id(run_ids)
    train_of = {r: json.loads(p).get("train_run") for r, p in zip(evals["run_id"], evals["params"], strict=True)}
    trains = ws.store.runs_by_id([t for t in train_of.values() if t])
    seconds = {t: json.loads(p).get("train_seconds") for t, p in zip(trains["run_id"], trains["params"], strict=True)}
    return {r: seconds.get(t) for r, t in train_of.items()}


def leaderboard_section(ws: Workspace, board: Leaderboard) -> str:
    cost = _train_seconds(ws, list(board.table["run_id"]))
    rows = pd.DataFrame({"run": board.table["label"], "users": board.table["users"]})
    for m in METRICS:
        rows[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in board.table[[m, f"{m}_lo", f"{m}_hi"]].to_numpy()]
    rows["train s"] = ["" if cost.get(r) is None else f"{cost[r]:.1f}" for r in board.table["run_id"]]
    rows["score s/user"] = ["" if pd.isna(s) else f"{s:.2g}" for s in board.table["seconds_per_user"]]
    rows["eval run"] = board.table["run_id"].map(lambda r: f"`{r}`")
    return "### Leaderboard\n\n" + _table(rows)


def paired_section(ws: Workspace, dataset: str, protocol_id: str, board: Leaderboard, metric: str = "NDCG@5") -> str:
    base = strongest_baseline(board)
    if base is None or len(board.table) < 2:
        return ""
    groups = user_groups(ws, dataset, protocol_id, "cold")
    base_values = board.per_user[base["run_id"]][metric]
    rows = []
    for other in board.table.itertuples():
        if other.run_id == base["run_id"]:
            continue
        r = paired_test(ws, other.run_id, base["run_id"], metric)
        rows.append(
            {
                "run": other.label,
                f"{metric} difference": f"{r.diff:+.4f}",
                "95% interval": f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]",
                "excludes zero": "yes" if r.ci[0] > 0 or r.ci[1] < 0 else "no",
                "p (Wilcoxon)": f"{r.p_value:.4f}",
                "users better / worse": f"{r.a_better} / {r.b_better}",
                **_by_cold(groups, board.per_user[other.run_id][metric], base_values, metric),
            }
        )
    title = f"### Against the strongest baseline ({base['label']}), {metric} paired over users"
    return f"{title}\n\n{_table(pd.DataFrame(rows))}"


def ablation_section(ws: Workspace, dataset: str, protocol_id: str, board: Leaderboard, metric: str = "NDCG@5") -> str:
    """Each setting with a part taken away (`evaluate.ablations`: the LLM's context, the item graph) against the
    same setting with it, paired over users (all, then warm and cold test items apart)."""
    made = ws.store.runs_by_id(list(board.table["run_id"])).set_index("run_id")
    groups = user_groups(ws, dataset, protocol_id, "cold")
    full_runs = {}
    ablated = []
    for row in board.table.itertuples():
        params = json.loads(made.loc[row.run_id, "params"])
        name = ablation_name(params, row.method)
        base = run_label(*full_setting(row.method, params))
        if name:
            ablated.append((row, name, base))
        elif row.label == base:
            full_runs[base] = row
    rows = []
    for row, name, base in ablated:
        full = full_runs.get(base)
        if full is None:
            continue
        r = paired_test(ws, row.run_id, full.run_id, metric)
        rows.append(
            {
                "setting": base,
                "ablation": name,
                f"{metric} full": f"{r.mean_b:.3f}",
                f"{metric} ablated": f"{r.mean_a:.3f}",
                "difference": f"{r.diff:+.4f}",
                "95% interval": f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]",
                "excludes zero": "yes" if r.ci[0] > 0 or r.ci[1] < 0 else "no",
                "p (Wilcoxon)": f"{r.p_value:.4f}",
                **_by_cold(groups, board.per_user[row.run_id][metric], board.per_user[full.run_id][metric], metric),
                "eval run": f"`{row.run_id}`",
            }
        )
    if not rows:
        return ""
    title = f"### Ablations: one part taken away, against the full setting ({metric}, paired over users)"
    return f"{title}\n\n{_table(pd.DataFrame(rows))}"


def subset_sections(ws: Workspace, dataset: str, protocol_id: str, board: Leaderboard, metric: str = "NDCG@5") -> str:
    """For each run on a seeded subset of the users (ranked apart above): every full run on the same users, each
    paired on them against the strongest baseline of the full leaderboard (stored per-user ranks make this exact)."""
    out = []
    groups = user_groups(ws, dataset, protocol_id, "cold")
    for run in board.excluded.itertuples():
        try:
            sub = subset_board(ws, dataset, protocol_id, run.run_id, board=board)
        except (KeyError, ValueError):  # made before per-user ranks, or on other candidates: no like-for-like rows
            continue
        base = strongest_baseline(board)  # the one every other table pairs against
        values = {r: sub.per_user[r][metric] for r in sub.table["run_id"]}
        rows = pd.DataFrame({"run": sub.table["label"], "users": sub.table["users"]})
        for m in ("HR@5", "NDCG@5", "AUC"):
            rows[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in sub.table[[m, f"{m}_lo", f"{m}_hi"]].to_numpy()]
        if base is not None:
            tests = [paired_values(values[r], values[base["run_id"]], metric) for r in sub.table["run_id"]]
            rows[f"{metric} vs {base['label']}"] = [
                "" if r == base["run_id"] else f"{t.diff:+.4f} [{t.ci[0]:+.4f}, {t.ci[1]:+.4f}]"
                for r, t in zip(sub.table["run_id"], tests, strict=True)
            ]
            runs = list(sub.table["run_id"])
            split = [_by_cold(groups, values[r], values[base["run_id"]], metric) for r in runs]
            for column in split[0]:
                rows[column] = ["" if r == base["run_id"] else d[column] for r, d in zip(runs, split, strict=True)]
        rows["eval run"] = sub.table["run_id"].map(lambda r: f"`{r}`")
        out.append(f"### On the {sub.users} users of {run.label} (a seeded subset), every run\n\n{_table(rows)}")
    return "\n\n".join(out)


def cold_warm_section(ws: Workspace, dataset: str, protocol_id: str, board: Leaderboard) -> str:
    """Each run on warm and on cold test items (a cold item never occurs in training)."""
    labels = dict(zip(board.table["run_id"], board.table["label"], strict=True))
    parts = {m: breakdown(ws, dataset, protocol_id, list(labels), "cold", m) for m in SPLIT_METRICS}
    users = parts[SPLIT_METRICS[0]].groupby("group")["users"].first().to_dict()
    rows = pd.DataFrame({"run": list(labels.values())})
    for group in ("warm", "cold"):
        for m in SPLIT_METRICS:
            got = parts[m][parts[m]["group"] == group].set_index("run_id")["value"]
            rows[f"{m} {group}"] = [_f(got.get(r)) for r in labels]
    counts = ", ".join(f"{g} {users.get(g, 0)}" for g in ("warm", "cold"))
    return f"### Warm and cold test items (users: {counts})\n\n{_table(rows)}"


def history_section(ws: Workspace, dataset: str, protocol_id: str, board: Leaderboard, metric: str = "NDCG@5") -> str:
    labels = dict(zip(board.table["run_id"], board.table["label"], strict=True))
    long = breakdown(ws, dataset, protocol_id, list(labels), "history", metric)
    wide = long.pivot(index="run_id", columns="group", values="value").loc[list(labels)]
    wide = wide[sorted(wide.columns, key=lambda g: int(g.split("-")[0]))]  # shortest histories first
    users = long.groupby("group", sort=False)["users"].first()
    wide.columns = [f"{g} ({users[g]} users)" for g in wide.columns]
    wide = wide.map(_f).reset_index(drop=True)
    wide.insert(0, "run", list(labels.values()))
    return f"### {metric} by training history length\n\n{_table(wide)}"


def full_catalog_section(ws: Workspace, dataset: str, protocol_id: str) -> str:
    table = full_catalog_board(ws, dataset, protocol_id)
    if table.empty:
        return ""
    rows = table.drop(columns="run_id").rename(columns={"label": "run"})
    for c in rows.columns[1:]:
        rows[c] = rows[c].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.4f}")
    return "### Whole catalog (history left out, repeat purchases count as misses)\n\n" + _table(rows)


def cost_section(ws: Workspace, dataset: str, protocol_id: str) -> str:
    table = cost_table(ws, dataset, protocol_id)
    title = "### Cost per stage (this machine), and at 10x and 100x the data\n\n"
    if table.empty:
        return title + f"No stage timings recorded yet: they are recorded by `mmrec pipeline {dataset}`."
    note = (
        "\n\nSummed over the stage's runs that did work (a resumed stage adds runs). Projections scale the measured "
        "time by the growth of the work: linear, except the item graph, which compares every item with every other."
    )
    return title + _table(table.fillna("")) + note


def markdown_report(ws: Workspace, dataset: str, protocol_id: str, command: str | None = None) -> str:
    """The data set's results as Markdown: header with provenance, then one table per view."""
    board = leaderboard(ws, dataset, protocol_id)
    if board.table.empty:
        raise ValueError(f"No comparable eval runs for {protocol_id}; run `mmrec eval --all {dataset}` first.")
    made = ws.store.runs_by_id(list(board.table["run_id"]))
    versions = sorted({json.loads(p).get("code_version", "unknown") for p in made["params"]})
    first, last = made["finished_at"].min(), made["finished_at"].max()
    header = (
        f"**{dataset}**, protocol `{protocol_id}`: {board.users} test users, each with 1 held-out item and its "
        "stored negatives, tie-aware ranks, every test user counted. Intervals: 95% bootstrap over users.\n"
        f"Eval runs made by mmrec {', '.join(versions)} between {first:%Y-%m-%d %H:%M} and {last:%Y-%m-%d %H:%M}; "
        f"this page by `{command or f'mmrec report {dataset} --markdown'}` (mmrec {code_version()}, "
        f"{datetime.now():%Y-%m-%d %H:%M})."
    )
    sections = [
        header,
        leaderboard_section(ws, board),
        paired_section(ws, dataset, protocol_id, board),
        ablation_section(ws, dataset, protocol_id, board),
        cold_warm_section(ws, dataset, protocol_id, board),
        history_section(ws, dataset, protocol_id, board),
        full_catalog_section(ws, dataset, protocol_id),
        cost_section(ws, dataset, protocol_id),
    ]
    if not board.excluded.empty:
        apart = board.excluded.rename(columns={"label": "run", "run_id": "eval run"})
        sections.append("### Runs not ranked here\n\n" + _table(apart[["run", "eval run", "reason"]]))
        sections.append(subset_sections(ws, dataset, protocol_id, board))
    return "\n\n".join(s for s in sections if s) + "\n"
