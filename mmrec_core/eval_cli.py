"""The comparison commands of `mmrec`: `eval --all`, `compare` and `report` (see `leaderboard`)."""

from __future__ import annotations

import argparse

from mmrec_core.splits import create_protocol
from mmrec_core.workspace import Workspace


def add_parsers(sub) -> None:
    p = sub.add_parser("compare", help="two eval runs user by user: paired bootstrap interval and Wilcoxon test")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--metric", default="NDCG@5", help="HR@5, NDCG@5, HR@10, NDCG@10, MRR or AUC (default NDCG@5)")
    p = sub.add_parser("report", help="a self-contained HTML report of a data set's eval runs")
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--out", help="HTML file to write (default: <data folder>/reports/<dataset>.html)")


def cmd_eval_all(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.cli import _tqdm_progress
    from mmrec_core.eval_all import eval_all

    dataset = args.dataset or args.model  # `mmrec eval --all sample`: the one positional is the data set
    if not dataset or (args.dataset and args.model):
        raise ValueError("Use `mmrec eval --all DATASET` (no model name: every available model runs).")
    protocol = args.protocol or create_protocol(ws.store, dataset)
    modes = tuple(m.strip() for m in args.llm_modes.split(",") if m.strip())
    bars = []

    def progress_for(run):
        if bars:
            bars[-1][1]()  # the previous LLM run is done
        print(f"{run.label} ...", flush=True)
        bars.append(_tqdm_progress("user"))
        return bars[-1][0]

    try:
        done = eval_all(ws, dataset, protocol, modes, args.users, not args.no_llm, progress_for)
    finally:
        for _, close in bars:
            close()
    for row in done:
        print(f"   {row['label']}: run {row['run_id']} ({row['seconds']} s)")
    print_leaderboard(ws, dataset, protocol)


def print_leaderboard(ws: Workspace, dataset: str, protocol_id: str) -> None:
    from mmrec_core.leaderboard import leaderboard
    from mmrec_core.report import format_table

    board = leaderboard(ws, dataset, protocol_id)
    print(f"\n{dataset} · {protocol_id} · {board.users} users · mean [95% bootstrap interval]")
    print(format_table(board.table).drop(columns=["users"]).to_string(index=False))
    for row in board.excluded.itertuples():
        print(f"   not ranked: {row.label} ({row.run_id}): {row.reason}")


def cmd_compare(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.leaderboard import METRICS, paired_test

    if args.metric not in METRICS:
        raise ValueError(f"Unknown metric {args.metric}; use one of {', '.join(METRICS)}.")
    r = paired_test(ws, args.run_a, args.run_b, args.metric)
    print(f"{args.metric} over {r.users} users: {args.run_a} {r.mean_a:.4f} vs {args.run_b} {r.mean_b:.4f}")
    print(f"   difference {r.diff:+.4f}, 95% paired bootstrap interval [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]")
    print(f"   Wilcoxon signed-rank p = {r.p_value:.4f}; users better {r.a_better}, worse {r.b_better}")


def cmd_report(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.report import write_report

    protocol = args.protocol or create_protocol(ws.store, args.dataset)
    out = args.out or ws.settings.data_dir / "reports" / f"{args.dataset}.html"
    path = write_report(ws, args.dataset, protocol, out)
    print(f"{args.dataset}: report written to {path}")
