"""`mmrec explain DATASET USER ITEM` and `mmrec card DATASET USER`: what moves the LLM's score, and a card to share."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec_core.cli.profiles import PROTOCOL_HELP
from mmrec_core.cli.progress import with_progress
from mmrec_core.cli.recommend import add_llm_options, recommender_for
from mmrec_core.core.options import build
from mmrec_core.core.safe_text import display_text
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.store.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="what moves the LLM's score of one candidate: each context piece left out")
    p.add_argument("dataset")
    p.add_argument("user")
    p.add_argument("item", help="the candidate to explain (scored among the customer's stored test candidates)")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.add_argument("--items", help="the candidates instead: comma-separated item ids (ITEM is added if missing)")
    p.add_argument("--again", action="store_true", help="recompute even when stored for the same prompts and model")
    add_llm_options(p, skip=("mode", "explain"))  # attribution reads yes/no scores; no rationale is written
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("card", help="a self-contained HTML card of one customer's recommendations, for stakeholders")
    p.add_argument("dataset")
    p.add_argument("user")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.add_argument("--out", help="HTML file to write (default: <data folder>/cards/<dataset>-<user>.html)")
    add_llm_options(p, skip=("mode",))
    p.set_defaults(run=cmd_card)


def _candidates(builder, user: str, item: str, items: str | None) -> list[str]:
    from mmrec_core.recommend.customer import stored_candidates

    if item not in builder.titles:
        raise KeyError(f"Unknown item '{item}' in data set '{builder.dataset}'; pick one from the catalog.")
    chosen = [i.strip() for i in items.split(",") if i.strip()] if items else stored_candidates(builder, user)
    return chosen if item in chosen else [*chosen, item]


def cmd_explain(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.explain.attribution import Attributor, purchase_days, with_sentences

    config = build(RecommendConfig, {**vars(args), "mode": "pointwise", "explain": 0})
    recommender = recommender_for(ws, args, config)
    builder = recommender.builder
    candidates = _candidates(builder, args.user, args.item, args.items)
    attributor = Attributor(recommender)
    result = with_progress("pass", lambda p: attributor.attribute(args.user, candidates, p, reuse=not args.again))
    rows = result.for_item(args.item)
    bought = builder.input_history(args.user)
    dates = purchase_days(ws, builder.dataset, builder.protocol_id, args.user, bought)
    show = display_text  # catalog text reaches the terminal: control characters shown as escapes
    how = "read back (same prompts and model)" if result.stored else f"{result.seconds:.1f} s"
    print(
        f"{show(args.user)} · {show(args.item)} {show(builder.titles[args.item])}: score "
        f"{result.scores[args.item]:.3f} among {len(result.scores)} candidates; {len(rows)} pieces left out, {how}"
    )
    for row in with_sentences(rows, builder.titles, dates).itertuples():
        print(f"  {row.effect:+.3f}  {show(row.sentence)}")
    if rows.empty:
        print("  nothing to leave out: the prompt shows no profile, purchases or similar customers")


def cmd_card(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.explain.attribution import Attributor
    from mmrec_core.explain.card import card_data, render_card, write_card
    from mmrec_core.recommend.customer import score_customer, stored_candidates
    from mmrec_core.recommend.evidence import EvidenceFinder

    config = build(RecommendConfig, {**vars(args), "mode": "pointwise"})
    recommender = recommender_for(ws, args, config)
    builder = recommender.builder
    candidates = stored_candidates(builder, args.user)
    finder = EvidenceFinder(builder)
    rec, table = with_progress("step", lambda p: score_customer(recommender, finder, args.user, candidates, progress=p))
    attribution = with_progress("pass", lambda p: Attributor(recommender).attribute(args.user, candidates, p))
    data = card_data(ws, rec, table, attribution, dataset=builder.dataset, protocol_id=builder.protocol_id)
    html_text = render_card(data, builder.titles)
    safe_user = "".join(c if c.isalnum() or c in "-_" else "_" for c in args.user)[:64]
    out = Path(args.out) if args.out else ws.settings.data_dir / "cards" / f"{args.dataset}-{safe_user}.html"
    write_card(out, html_text)
    print(f"{display_text(args.user)}: card written to {out} ({len(html_text) // 1024} KB, opens offline)")
