"""`mmrec pipeline DATASET`: every stage in dependency order, skipping what is up to date (resumable)."""

from __future__ import annotations

import argparse

from mmrec_core.cli.progress import tqdm_progress
from mmrec_core.core.options import add_arguments, build
from mmrec_core.pipeline.stages import HELP, STAGES, run_pipeline, select, status
from mmrec_core.scale.jobs import ScaleConfig
from mmrec_core.store.workspace import Workspace, default_protocol


def register(sub: argparse._SubParsersAction) -> None:
    order = " -> ".join(STAGES)
    p = sub.add_parser(
        "pipeline",
        help=f"every stage in order ({order}), skipping what is up to date",
        description="Run the pipeline of a data set; each stage skips what it already made, so a stopped run "
        "picks up where it was. Stages: " + "; ".join(f"{s}: {h}" for s, h in HELP.items()) + ".",
    )
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--from", dest="start", choices=STAGES, help="first stage to run (default: the first)")
    p.add_argument("--until", choices=STAGES, help="last stage to run (default: the last)")
    p.add_argument("--llm", action=argparse.BooleanOptionalAction, default=True,
                   help="eval: also score every test user with the LLM (the longest part on a CPU)")  # fmt: skip
    p.add_argument("--llm-users", type=int, help="profiles and the LLM's eval for a seeded subset of this many test "
                   "users (default: all); the other models cover every user")  # fmt: skip
    p.add_argument("--with-sft", action="store_true", help="also train an SFT adapter (hours on a CPU)")
    p.add_argument("--status", action="store_true", help="only show each stage's state; run nothing")
    add_arguments(p, {"scale": ScaleConfig})  # textualize and the LLM's eval as Ray jobs
    p.set_defaults(run=cmd_pipeline)


def cmd_pipeline(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine

    stages = select(args.start, args.until, args.with_sft)
    protocol = default_protocol(ws, args.dataset, args.protocol)
    engine = get_engine(ws.settings)
    if not args.status:
        bars = []

        def progress_for(stage: str):
            print(f"[{stages.index(stage) + 1}/{len(stages)}] {stage}: {HELP[stage]}", flush=True)
            progress, close = tqdm_progress("step")
            bars.append(close)
            return progress

        def done(stage: str, summary: str, seconds: float) -> None:
            bars.pop()()
            print(f"   {stage} finished in {seconds:.0f} s: {summary}", flush=True)

        try:
            run_pipeline(
                ws, engine, args.dataset, protocol, stages, progress_for, done, llm=args.llm, llm_users=args.llm_users,
                scale=build(ScaleConfig, vars(args)),
            )
        finally:
            for close in bars:
                close()
    table = status(ws, engine, args.dataset, protocol, args.llm_users)
    print(f"{args.dataset} ({protocol}):")
    print(table[["stage", "state", "detail", "made"]].to_string(index=False))
