"""Figures of the leaderboard (shared by the Evaluate page) and `mmrec report`'s self-contained HTML file."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmrec_core.evaluate.leaderboard import METRICS, Leaderboard, breakdown, leaderboard, paired_test
from mmrec_core.store.workspace import Workspace


def leaderboard_figure(table: pd.DataFrame, metric: str) -> go.Figure:
    """One bar per run with its 95% bootstrap interval as error bars."""
    fig = go.Figure(
        go.Bar(
            x=table["label"],
            y=table[metric],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": table[f"{metric}_hi"] - table[metric],
                "arrayminus": table[metric] - table[f"{metric}_lo"],
            },
        )
    )
    return fig.update_layout(
        title=f"{metric} (95% bootstrap interval over users)", yaxis_title=metric, margin={"t": 40, "b": 10}, height=360
    )


GROUP_NAMES = {"history": "history length", "category": "test item category", "cold": "test item"}


def breakdown_figure(frame: pd.DataFrame, labels: dict[str, str], metric: str, by: str) -> go.Figure:
    """Grouped bars: the metric per user group, one colour per run (user counts in the hover)."""
    frame = frame.assign(run=frame["run_id"].map(labels))
    fig = px.bar(
        frame,
        x="group",
        y="value",
        color="run",
        barmode="group",
        hover_data=["users"],
        labels={"value": metric, "group": GROUP_NAMES.get(by, by)},
    )
    return fig.update_layout(height=360, margin={"t": 30, "b": 10})


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard for reading: 'mean [lo, hi]' per metric."""
    out = table[["label", "users"]].copy()
    for m in METRICS:
        out[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in table[[m, f"{m}_lo", f"{m}_hi"]].to_numpy()]
    out["s/user"] = table["seconds_per_user"].map(lambda s: "" if pd.isna(s) else f"{s:.3g}")
    out["run"] = table["run_id"]
    return out


def paired_against_best(ws: Workspace, board: Leaderboard, metric: str = "NDCG@5") -> pd.DataFrame:
    """The top run against each other run, user by user."""
    rows = []
    if board.table.empty:
        return pd.DataFrame()
    best = board.table.iloc[0]
    for other in board.table.iloc[1:].itertuples():
        r = paired_test(ws, best["run_id"], other.run_id, metric)
        rows.append(
            {
                "best": best["label"],
                "vs": other.label,
                "difference": round(r.diff, 4),
                "95% interval": f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]",
                "p (Wilcoxon)": round(r.p_value, 4),
                "users better / worse": f"{r.a_better} / {r.b_better}",
            }
        )
    return pd.DataFrame(rows)


def write_report(ws: Workspace, dataset: str, protocol_id: str, path: str | Path) -> Path:
    """A single HTML file (plotly inlined, opens offline) with the leaderboard, figures, tests and breakdowns."""
    board = leaderboard(ws, dataset, protocol_id)
    if board.table.empty:
        raise ValueError(f"No comparable eval runs for {protocol_id}; run `mmrec eval --all {dataset}` first.")
    labels = dict(zip(board.table["run_id"], board.table["label"], strict=True))
    figures = [leaderboard_figure(board.table, m) for m in ("HR@5", "NDCG@5", "AUC")]
    for by in ("history", "category"):
        figures.append(breakdown_figure(breakdown(ws, dataset, protocol_id, list(labels), by), labels, "NDCG@5", by))
    parts = [
        f"<h1>MMRec Studio report: {html.escape(dataset)}</h1>",
        f"<p>Protocol <code>{html.escape(protocol_id)}</code>, {board.users} evaluated users, test part; "
        f"written {datetime.now():%Y-%m-%d %H:%M}. Intervals: 95% percentile bootstrap over users.</p>",
        "<h2>Leaderboard</h2>",
        format_table(board.table).to_html(index=False, escape=True),
        "<h2>Best run against the others (NDCG@5, paired over users)</h2>",
        paired_against_best(ws, board).to_html(index=False, escape=True),
    ]
    if not board.excluded.empty:
        parts += ["<h2>Runs not ranked here</h2>", board.excluded.to_html(index=False, escape=True)]
    parts.append("<h2>Figures</h2>")
    parts += [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")  # written whole, then renamed: never a half file
    tmp.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>MMRec report</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>" + "\n".join(parts) + "</body></html>",
        encoding="utf-8",
    )
    tmp.replace(path)
    return path
