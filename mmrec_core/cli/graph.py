"""`mmrec graph | similar-users`: stage 3, the refined item graph and SASRec's similar customers."""

from __future__ import annotations

import argparse

from mmrec_core.cli.profiles import PROTOCOL_HELP
from mmrec_core.cli.progress import with_progress
from mmrec_core.core.options import add_arguments, build
from mmrec_core.graph.edges import GraphConfig
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="build the refined item graph (text-embedding neighbours + co-occurrence)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    add_arguments(p, {"graph": GraphConfig})
    p.set_defaults(run=cmd_graph)

    p = sub.add_parser(
        "similar-users", help="a user's most similar users (the best trained SASRec) and their next items"
    )
    p.add_argument("dataset")
    p.add_argument("user", nargs="?", help="a customer id (or --quality)")
    p.add_argument("--quality", action="store_true", help="the retrieval's hit rate over the valid part's users")
    n_similar = RecommendConfig.n_similar
    p.add_argument("-k", type=int, default=n_similar, help=f"similar users (default {n_similar}, as the recommender)")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.set_defaults(run=cmd_similar_users)


def cmd_graph(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.graph.build import build_item_graph

    config = build(GraphConfig, vars(args))
    engine = get_engine(ws.settings)
    report = with_progress("item", lambda p: build_item_graph(ws, engine, args.dataset, args.protocol, config, p))
    print(f"{args.dataset}: {report}")


def cmd_similar_users(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.models.data import load_train_data
    from mmrec_core.models.registry import load_strongest_sequential
    from mmrec_core.models.similar_users import retrieval_quality, similar_user_context, with_keywords

    protocol = default_protocol(ws, args.dataset, args.protocol)
    model, run_id, method = load_strongest_sequential(ws, args.dataset, protocol)
    data = load_train_data(ws.store, args.dataset, protocol)
    if args.quality:
        q = retrieval_quality(model, data, args.k)
        print(
            f"{args.dataset}: similar users by {method} run {run_id}, valid part, {q['users']:,} users, k={args.k}:\n"
            f"   {q['hit_rate']:.1%} of users have a similar user whose next item is their own valid item "
            f"(popularity's top {args.k} items: {q['popular_hit_rate']:.1%}); precision {q['precision']:.2%}"
        )
        return
    if not args.user:
        raise ValueError("Name a USER, or pass --quality for the retrieval's hit rate on the valid part.")
    context = with_keywords(ws.store, args.dataset, similar_user_context(model, data, [args.user], args.k))
    print(f"{args.user}: similar users by {method} run {run_id} (training sequences only)")
    print(context.drop(columns=["user_id"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
