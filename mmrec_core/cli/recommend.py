"""`mmrec score DATASET USER`: stage 4, one customer's candidates ranked by the LLM, with rationale and evidence."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap

from mmrec_core.cli.profiles import PROTOCOL_HELP
from mmrec_core.cli.progress import with_progress
from mmrec_core.config import Settings
from mmrec_core.core.options import add_arguments, build
from mmrec_core.core.safe_text import display_text
from mmrec_core.recommend.customer import MODEL_TOP
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol


def add_llm_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The recommender's settings (`RecommendConfig`) and the adapter to score with."""
    add_arguments(p, {"llm": RecommendConfig}, skip=skip)
    p.add_argument("--adapter", help="llm: a LoRA adapter folder (e.g. from `mmrec train sft`) on the engine's LLM")


def with_adapter(ws: Workspace, args: argparse.Namespace) -> Settings:
    """The engine settings, with --adapter (when given) on the LLM."""
    return dataclasses.replace(ws.settings, adapter=args.adapter) if args.adapter else ws.settings


def recommender_for(ws: Workspace, args: argparse.Namespace, config: RecommendConfig):
    """The LLM recommender of `args.dataset` (its --protocol, test part) on the engine with --adapter."""
    from mmrec_core.engines import get_engine
    from mmrec_core.recommend.context import ContextBuilder
    from mmrec_core.recommend.llm import LLMRecommender

    protocol = default_protocol(ws, args.dataset, args.protocol)
    builder = ContextBuilder.for_config(ws, args.dataset, protocol, config)
    return LLMRecommender(get_engine(with_adapter(ws, args)), builder, config)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="rank candidates for one customer with the LLM, with rationale and evidence")
    p.add_argument("dataset")
    p.add_argument("user")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    p.add_argument("--from-model", help="candidates: the top --top items of this trained model (default: stored)")
    p.add_argument("--items", help="candidates: comma-separated item ids (default: the stored test candidates)")
    p.add_argument("--top", type=int, default=MODEL_TOP, help=f"candidates from --from-model (default {MODEL_TOP})")
    p.add_argument("--show-prompt", action="store_true", help="print the exact prompt of the first candidate")
    add_llm_options(p)
    p.set_defaults(run=cmd_score)


def cmd_score(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.recommend.customer import SOURCES, choose_candidates, score_customer
    from mmrec_core.recommend.evidence import EvidenceFinder

    config = build(RecommendConfig, vars(args))
    recommender = recommender_for(ws, args, config)
    builder = recommender.builder
    source = SOURCES[2] if args.items else SOURCES[1] if args.from_model else SOURCES[0]
    items = (args.items or "").split(",")
    candidates, source = choose_candidates(ws, builder, args.user, source, args.from_model, args.top, items)
    rec, table = with_progress(
        "step", lambda p: score_customer(recommender, EvidenceFinder(builder), args.user, candidates, progress=p)
    )
    show = display_text  # catalog text and model output reach the terminal: control characters shown as escapes
    print(f"{show(args.user)}: {len(candidates)} candidates ({source}), {config.mode}, {rec.seconds:.1f} s")
    for note in [*rec.context.notes, *rec.prompt.notes]:
        print(f"   note: {show(note)}")
    if rec.prompt.trimmed:
        print(f"   prompt trimmed to fit {recommender.max_tokens} tokens: {show(rec.prompt.trimmed)}")
    if rec.answer is not None and not rec.answer.valid:
        print(f"   INVALID listwise answer ({show(rec.answer.problem)}): {rec.answer.raw[:200]!r}")
    for row in table.itertuples():
        print(f"{row.rank:>3}. {row.score:7.4f}  {show(row.item_id)}  {show(row.title)}")
        print(f"       evidence: {show(row.evidence)}")
        if row.rationale:
            print(textwrap.indent(textwrap.fill(f"rationale: {show(row.rationale)}", 100), "       "))
            for note in row.written.notes():
                print(textwrap.indent(textwrap.fill(show(note), 100), "       "))
        if row.flags:
            print(
                f"       FLAG: the rationale names {show(', '.join(row.flags))}, which the item's texts never mention"
            )
    if args.show_prompt:
        print("\n--- exact prompt (first candidate) ---")
        print(show(recommender.render(rec.prompt.full(0)), keep_newlines=True))
