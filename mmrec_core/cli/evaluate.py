"""`mmrec eval | compare | report`: stage 6, a model or the LLM on the test part, every model at once
(`eval --all`, then the leaderboard), two runs user by user, a self-contained HTML report."""

from __future__ import annotations

import argparse

import pandas as pd

from mmrec_core.cli.profiles import PROTOCOL_HELP
from mmrec_core.cli.progress import bar_per_run, with_progress
from mmrec_core.cli.recommend import add_llm_options, with_adapter
from mmrec_core.core.options import add_arguments, build
from mmrec_core.evaluate.two_stage import TwoStageConfig
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.scale.jobs import ScaleConfig
from mmrec_core.store.workspace import Workspace, default_protocol


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate the newest trained model (or the LLM: `eval llm`) on the test part")
    p.add_argument(
        "model",
        nargs="?",
        help="a trained model (sasrec, ...), llm, two-stage (retrieve, LLM re-rank), or ablations (the LLM with each "
        "part of its context taken away in turn: paired runs); none: --all",
    )
    p.add_argument("dataset", nargs="?")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    add_llm_options(p, skip=("explain",))  # evaluation writes no rationales
    add_arguments(p, {"two-stage": TwoStageConfig})
    p.add_argument("--users", type=int, help="llm: a seeded subset of this many users (default: all)")
    add_arguments(p, {"scale": ScaleConfig})
    p.add_argument("--all", action="store_true", help="every available model, then the leaderboard with intervals")
    p.add_argument("--llm-modes", default="pointwise", help="--all: zero-shot LLM modes (default pointwise)")
    p.add_argument("--no-llm", action="store_true", help="--all: leave the LLM (zero-shot and adapters) out")
    p.add_argument(
        "--ablations",
        help="ablations: only these, comma separated: no-images, catalog-text, descriptions, no-profile, no-similar "
        "(default: all)",
    )
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser(
        "eval-rationales",
        help="do the LLM's rationales cite verified evidence, invent claims, and cite what moves the score?",
    )
    p.add_argument("dataset")
    add_llm_options(p)  # --adapter: that adapter alone
    p.add_argument("--users", type=int, default=20, help="a seeded subset of this many test users (default 20)")
    p.add_argument("--no-adapters", action="store_true", help="the zero-shot LLM only (default: and every adapter)")
    p.set_defaults(run=cmd_eval_rationales)

    p = sub.add_parser("compare", help="two eval runs user by user: paired bootstrap interval and Wilcoxon test")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--metric", default="NDCG@5", help="HR@5, NDCG@5, HR@10, NDCG@10, MRR or AUC (default NDCG@5)")
    p.set_defaults(run=cmd_compare)
    p = sub.add_parser("report", help="a self-contained HTML report of a data set's eval runs")
    p.add_argument("dataset")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.add_argument("--out", help="HTML file to write (default: <data folder>/reports/<dataset>.html)")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="also write the tables as Markdown beside the HTML (<out>.md), as in RESULTS.md",
    )
    p.set_defaults(run=cmd_report)


def eval_config(args: argparse.Namespace) -> RecommendConfig:
    """The recommender's settings for evaluation: the flags given, and no rationales (nothing reads them)."""
    return build(RecommendConfig, {**vars(args), "explain": 0})


def cmd_eval(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.evaluate.offline import evaluate_model

    if args.all:
        return cmd_eval_all(ws, args)
    if not (args.model and args.dataset):
        raise ValueError("Use `mmrec eval MODEL DATASET`, or `mmrec eval --all DATASET`.")
    if build(ScaleConfig, vars(args)).backend == "ray" and args.model != "llm":
        raise ValueError("--backend ray runs the LLM's scoring (`mmrec eval llm DATASET --backend ray`) only.")
    if args.model == "llm":
        return cmd_eval_llm(ws, args)
    if args.model == "two-stage":
        return cmd_eval_two_stage(ws, args)
    if args.model == "ablations":
        return cmd_eval_ablations(ws, args)
    run_id, table = evaluate_model(ws, args.dataset, args.model, args.protocol)
    print(f"{args.dataset}: {args.model}, run {run_id}, test part, all evaluated users")
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))


def cmd_eval_llm(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.evaluate.llm import evaluate_llm

    engine, config, scale = get_engine(with_adapter(ws, args)), eval_config(args), build(ScaleConfig, vars(args))
    scorer = None
    if scale.backend == "ray":
        from mmrec_core.scale.scoring import ray_scorer

        scorer = ray_scorer(scale)
    result = with_progress(
        "user",
        lambda p: evaluate_llm(ws, engine, args.dataset, args.protocol, config, args.users, progress=p, scorer=scorer),
    )
    users = len(result.per_user)
    print(
        f"{args.dataset}: LLM {config.mode} ({engine.model_names()['llm']}), run {result.run_id}, test part, "
        f"{users} users ({result.scored} scored now, {result.reused} read back from earlier runs)"
    )
    if args.users:
        print(f"   a seeded subset of {users} users, not all evaluated users")
    print_llm_problems(result)
    print(result.table.to_string(float_format=lambda x: f"{x:.4f}"))
    print("\nSame users, same stored candidates:")
    print(result.compare.to_string(float_format=lambda x: f"{x:.4f}"))


def cmd_eval_ablations(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.evaluate.ablations import run_ablations

    engine, config = get_engine(with_adapter(ws, args)), eval_config(args)
    names = [n.strip() for n in args.ablations.split(",") if n.strip()] if args.ablations else None
    protocol = default_protocol(ws, args.dataset, args.protocol)
    with bar_per_run("user") as progress_for:
        done = run_ablations(ws, engine, args.dataset, protocol, config, args.users, names, progress_for)
    rows = {name: r.table.loc["all", ["HR@5", "NDCG@5", "AUC"]] for name, r in done}
    print(f"{args.dataset}: LLM {config.mode}, {len(done[0][1].per_user)} users, runs:")
    for name, r in done:
        print(f"   {name}: run {r.run_id}")
    print(pd.DataFrame(rows).T.to_string(float_format=lambda x: f"{x:.4f}"))
    print(f"Paired against the full prompt: `mmrec report {args.dataset} --markdown` (section Ablations).")


def print_llm_problems(result, most: int = 5) -> None:
    """Users left out of an LLM run (with the first reasons) and candidates cut to fit the prompt budget."""
    from mmrec_core.core.safe_text import display_text

    if result.failed:
        print(
            f"   {len(result.failed)} users FAILED and are left out: the metrics cover {len(result.per_user)} users, "
            "and the leaderboard lists this run apart as a subset"
        )
        for user, reason in result.failed[:most]:
            print(f"      user {display_text(user)}: {display_text(reason)}")
    if result.truncated:
        items = sorted({i for cut in result.truncated.values() for i in cut})
        shown = ", ".join(display_text(i) for i in items[:most]) + (" ..." if len(items) > most else "")
        print(
            f"   {len(items)} candidate texts were cut to fit the prompt budget "
            f"({len(result.truncated)} users): {shown}"
        )


def cmd_eval_two_stage(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.evaluate.two_stage import evaluate_two_stage

    engine = get_engine(with_adapter(ws, args))
    config, rec_config = build(TwoStageConfig, vars(args)), eval_config(args)
    run = lambda p: evaluate_two_stage(ws, engine, args.dataset, args.protocol, config, rec_config, p)  # noqa: E731
    result = with_progress("user", run)
    print(
        f"{args.dataset}: two-stage, run {result.run_id}: {result.retriever} retrieves the top {config.k} of the "
        f"whole catalog, the LLM ({engine.model_names()['llm']}) re-ranks them {rec_config.mode}; all test users, "
        "history left out"
    )
    recall = ", ".join(f"{m} {v:.4f}" for m, v in sorted(result.valid_recall.items(), key=lambda kv: -kv[1]))
    print(f"   retriever chosen on valid Recall@{config.k} over the whole catalog: {recall}")
    print(
        f"   the test item is in the top {config.k} for {result.reranked} users (re-ranked; {result.scored} scored "
        "now); the others keep the retriever's rank"
    )
    if rec_config.mode == "listwise":
        print(f"   {result.invalid} of {result.reranked} answers were invalid (those users keep the retriever's order)")
    print(result.table.to_string(float_format=lambda x: f"{x:.4f}"))


def cmd_eval_all(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.evaluate.eval_all import eval_all

    dataset = args.dataset or args.model  # `mmrec eval --all sample`: the one positional is the data set
    if not dataset or (args.dataset and args.model):
        raise ValueError("Use `mmrec eval --all DATASET` (no model name: every available model runs).")
    protocol = default_protocol(ws, dataset, args.protocol)
    modes = tuple(m.strip() for m in args.llm_modes.split(",") if m.strip())
    with bar_per_run("user") as progress_for:  # one bar per LLM run
        done = eval_all(ws, dataset, protocol, modes, args.users, not args.no_llm, lambda run: progress_for(run.label))
    for row in done:
        print(f"   {row['label']}: run {row['run_id']} ({row['seconds']} s)")
    print_leaderboard(ws, dataset, protocol)


def print_leaderboard(ws: Workspace, dataset: str, protocol_id: str) -> None:
    from mmrec_core.evaluate.leaderboard import breakdown, full_catalog_board, leaderboard
    from mmrec_core.evaluate.report import format_table

    board = leaderboard(ws, dataset, protocol_id)
    print(f"\n{dataset} · {protocol_id} · {board.users} users · mean [95% bootstrap interval]")
    print(format_table(board.table).drop(columns=["users"]).to_string(index=False))
    for row in board.excluded.itertuples():
        print(f"   not ranked: {row.label} ({row.run_id}): {row.reason}")
    if board.table.empty:
        return
    labels = dict(zip(board.table["run_id"], board.table["label"], strict=True))
    frames = [breakdown(ws, dataset, protocol_id, list(labels), "cold", m).assign(metric=m) for m in ("HR@5", "NDCG@5")]
    split = pd.concat(frames).assign(label=lambda f: f["run_id"].map(labels))
    users = split.drop_duplicates("group").set_index("group")["users"]
    table = split.pivot_table(index="label", columns=["metric", "group"], values="value", sort=False)
    print(
        f"\ncold test items (bought in no training interaction): {users.get('cold', 0)} users, warm: "
        f"{users.get('warm', 0)}"
    )
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    full = full_catalog_board(ws, dataset, protocol_id)
    if not full.empty:
        print("\nwhole catalog, every test user, history left out (two-stage: `mmrec eval two-stage`)")
        print(full.drop(columns="run_id").to_string(index=False, float_format=lambda x: f"{x:.4f}", na_rep=""))


def cmd_compare(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.evaluate.leaderboard import METRICS, paired_test

    if args.metric not in METRICS:
        raise ValueError(f"Unknown metric {args.metric}; use one of {', '.join(METRICS)}.")
    r = paired_test(ws, args.run_a, args.run_b, args.metric)
    print(f"{args.metric} over {r.users} users: {args.run_a} {r.mean_a:.4f} vs {args.run_b} {r.mean_b:.4f}")
    print(f"   difference {r.diff:+.4f}, 95% paired bootstrap interval [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]")
    print(f"   Wilcoxon signed-rank p = {r.p_value:.4f}; users better {r.a_better}, worse {r.b_better}")


def cmd_report(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.evaluate.report import write_report

    protocol = default_protocol(ws, args.dataset, args.protocol)
    out = args.out or ws.settings.data_dir / "reports" / f"{args.dataset}.html"
    path = write_report(ws, args.dataset, protocol, out)
    print(f"{args.dataset}: report written to {path}")
    if args.markdown:
        from mmrec_core.evaluate.markdown import markdown_report

        command = f"mmrec report {args.dataset} --markdown" + (f" --protocol {args.protocol}" if args.protocol else "")
        md = path.with_suffix(".md")
        tmp = md.with_suffix(".md.tmp")  # written whole, then renamed
        tmp.write_text(markdown_report(ws, args.dataset, protocol, command), encoding="utf-8")
        tmp.replace(md)
        print(f"{args.dataset}: Markdown tables written to {md}")


def rationale_models(ws: Workspace, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, adapter) of each model `eval-rationales` runs: --adapter alone, or zero-shot and every SFT/GRPO
    adapter of the data set (none with --no-adapters)."""
    from mmrec_core.explain.faithfulness import rationale_adapters

    if args.adapter:
        return [(f"adapter {args.adapter}", args.adapter)]
    models = [("zero-shot", "")]
    if not args.no_adapters:
        trained = rationale_adapters(ws, args.dataset)
        models += [(f"{row.method} {row.adapter}", str(row.adapter)) for row in trained.itertuples()]
    return models


def cmd_eval_rationales(ws: Workspace, args: argparse.Namespace) -> None:
    import dataclasses

    from mmrec_core.engines import get_engine

    config = build(RecommendConfig, vars(args))
    for label, adapter in rationale_models(ws, args):
        print_rationales(ws, args, config, label, get_engine(dataclasses.replace(ws.settings, adapter=adapter)))


def print_rationales(ws: Workspace, args: argparse.Namespace, config: RecommendConfig, label: str, engine) -> None:
    """One model's block: verifiability of its rationales, then their faithfulness (stored as a run)."""
    from mmrec_core.core.safe_text import display_text
    from mmrec_core.evaluate.rationales import evaluate_rationales
    from mmrec_core.explain.faithfulness import FIGURES, evaluate_faithfulness

    summary, table = with_progress(
        "user", lambda p: evaluate_rationales(ws, engine, args.dataset, args.users, config, progress=p)
    )
    which = f"the top {config.explain_top}" if config.mode == "pointwise" else "the answer's first item (listwise)"
    print(
        f"\n{args.dataset} · LLM {label} ({engine.model_names()['llm']}): rationales for {which} of "
        f"{summary['users']} test users"
    )
    for name, value in summary.items():
        print(f"  {name:28} {value:.3f}" if isinstance(value, float) else f"  {name:28} {value}")
    if len(table):
        shown = table[["item_id", "cites", "unsupported", "rationale"]].head(6).map(display_text)  # model-written
        print(shown.to_string(index=False, max_colwidth=70))
    faith, _ = with_progress(
        "user",
        lambda p: evaluate_faithfulness(ws, engine, args.dataset, args.users, config, progress=p, written=table),
    )
    print(f"  faithfulness (run {faith['run_id']}): is the piece that moves the score most cited?")
    for name in FIGURES:
        print(f"  {name:28} {faith[name]:.3f}")
    print(f"  {'seconds per user':28} {faith['seconds per user']:.2f} (attribution)")
    for user, reason in faith["failed"][:5]:
        print(f"  user {display_text(user)} FAILED and is left out: {display_text(reason)}")
