"""`mmrec textualize | eval-descriptions`: stage 1, item descriptions and keywords."""

from __future__ import annotations

import argparse

from mmrec_core.cli.progress import with_progress
from mmrec_core.core.options import add_arguments, build
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.build import TextualizeConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("textualize", help="descriptions, keywords and rewards for every item (skips unchanged ones)")
    p.add_argument("dataset")
    p.add_argument("--items", nargs="+", help="only these item ids")
    add_arguments(p, {"textualize": TextualizeConfig})
    p.set_defaults(run=cmd_textualize)

    p = sub.add_parser(
        "eval-descriptions",
        help="describers on held-out H&M articles (detail_desc withheld): unsupported claims, similarity, accuracy",
    )
    p.add_argument("dataset")
    p.add_argument("-n", type=int, default=200, help="held-out articles to describe (default 200 seeded; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the article sample (default 0)")
    p.set_defaults(run=cmd_eval_descriptions)


def cmd_textualize(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.textualize.build import textualize

    config = build(TextualizeConfig, vars(args))
    engine = get_engine(ws.settings)
    report = with_progress("item", lambda p: textualize(ws, engine, args.dataset, args.items, config, p))
    print(f"{args.dataset}: {report}")
    for item_id, reason in report.failed:
        print(f"  skipped {item_id}: {reason}")


def cmd_eval_descriptions(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.textualize.quality import evaluate_descriptions

    engine = get_engine(ws.settings)
    report = with_progress(
        "item", lambda p: evaluate_descriptions(ws, engine, args.dataset, n=args.n, seed=args.seed, progress=p)
    )
    number = lambda x: f"{x:.3f}"  # noqa: E731
    print(f"{args.dataset}: {report.items} held-out articles ({report.split_id}), detail_desc withheld")
    print("\nDescriptions (image + catalog fields but detail_desc):")
    print(report.describers.to_string(index=False, float_format=number))
    print(f"\nFrom the image alone ({engine.model_names()['vlm']}):")
    print(report.image.to_string(index=False, float_format=number))
