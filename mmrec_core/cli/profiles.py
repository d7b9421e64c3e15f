"""`mmrec profiles | eval-profiles`: stage 2, recurrent preference summaries and how specific they are."""

from __future__ import annotations

import argparse
import dataclasses

from mmrec_core.cli.progress import with_progress
from mmrec_core.core.options import add_arguments, build
from mmrec_core.profiles.build import ProfileConfig
from mmrec_core.profiles.quality import ProfileEvalConfig
from mmrec_core.store.workspace import Workspace, default_protocol

PROTOCOL_HELP = "protocol id (default: the data set's default protocol)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="recurrent preference summaries from training histories (resumable)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.add_argument("--users", nargs="+", help="only these user ids (default: all)")
    add_arguments(p, {"profiles": ProfileConfig})
    p.set_defaults(run=cmd_profiles)

    p = sub.add_parser("eval-profiles", help="specificity and distinctness of the stored profiles")
    p.add_argument("dataset")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    add_arguments(p, {"eval-profiles": ProfileEvalConfig})
    p.set_defaults(run=cmd_eval_profiles)


def cmd_profiles(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.profiles.build import build_profiles

    config = dataclasses.replace(build(ProfileConfig, vars(args)), users=args.users)
    engine = get_engine(ws.settings)
    report = with_progress("block", lambda p: build_profiles(ws, engine, args.dataset, args.protocol, config, p))
    print(f"{args.dataset}: {report}")


def cmd_eval_profiles(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.profiles.quality import evaluate_profiles

    protocol = default_protocol(ws, args.dataset, args.protocol)
    config = build(ProfileEvalConfig, vars(args))
    table = evaluate_profiles(ws, get_engine(ws.settings), args.dataset, protocol, config)
    a = table.attrs
    print(
        f"{args.dataset} ({protocol}): {a['profiled']} profiles, {a['flagged']} flagged, {a['scaffolded']} ending in "
        "the scaffold sentence; "
        f"{a['evaluated']} users with held-out items, each against "
        f"{min(config.n_random, a['evaluated'] - 1)} random other users"
    )
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        "own_sim/random_sim: cosine to the user's own later items / to random users' later items; "
        "auc: share of pairs where own > random (0.5 = chance); near_identical: share with a twin >= "
        f"{config.near} cosine; terms_named: recurring attributes / keywords of the user's training items named; "
        "unsupported_claims: share of claims those items do not support"
    )
