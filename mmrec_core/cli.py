"""`mmrec`: every pipeline stage from the command line (the app calls the same functions).

    mmrec ingest hm ../shared/datasets/hm        load a data set (one transaction, idempotent)
    mmrec info [DATASET]                         statistics of one or all data sets
    mmrec protocol DATASET --negatives 50        another leave-one-out protocol (negatives stored)
    mmrec engine --check                         the engine settings; load each model and time it
    mmrec textualize sample                      describe, summarise and score every item (resumable)
    mmrec eval-descriptions hm -n 200            attribute accuracy of the describer from images alone
    mmrec profiles sample                        recurrent preference summaries per user (resumable)
    mmrec eval-profiles sample                   how specific and distinct the profiles are
    mmrec graph hm --alpha 0.5 -k 10             the refined item graph (semantic + co-occurrence edges)
    mmrec train sasrec hm                        train a model on the protocol's training data
    mmrec eval sasrec hm                         HR/NDCG/AUC on stored candidates + full ranking
    mmrec similar-users hm USER                  k most similar users (SASRec) and what they bought next
    mmrec score sample USER                      the LLM's ranked candidates with rationale and evidence
    mmrec eval llm sample --mode listwise        the LLM recommender on the stored test candidates
    mmrec eval --all sample                      every available model, then the leaderboard with intervals
    mmrec compare RUN_A RUN_B                    two eval runs user by user (paired interval and test)
    mmrec report sample                          a self-contained HTML report of the data set's runs
    mmrec train sft sample --steps 200           LoRA SFT of the LLM on the task mix (resumable)
    mmrec train grpo sample --from-adapter DIR   GRPO on the listwise task with guarded rewards
    mmrec train keywords sample                  RLVR of the keyword summarizer (R_info + R_recon + R_len)

The data folder comes from MMREC_DATA_DIR (default ./mmrec_data) or --data-dir.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import ENGINE_FIELDS, load_settings
from .engines.assets import MissingModelError
from .eval_cli import add_parsers, cmd_compare, cmd_eval_all, cmd_report
from .finetune import LLM_METHODS
from .images import BadImageError
from .ingest import READERS, IngestError, ingest
from .splits import create_protocol, repeat_share
from .stats import dataset_summary
from .store import StoreError
from .train_cli import add_llm_train_options, cmd_train_llm
from .workspace import Workspace, ensure_sample_dataset, open_workspace

# Errors that are the user's to fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (IngestError, StoreError, BadImageError, KeyError, ValueError, FileNotFoundError, MissingModelError)


def _protocol_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--negatives", type=int, default=20, help="sampled negatives per user (default 20)")
    p.add_argument("--seed", type=int, default=42, help="seed for the negative draw (default 42)")
    p.add_argument(
        "--min-history", type=int, default=5, help="users with fewer interactions are training-only (default 5)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="data folder (default: $MMREC_DATA_DIR or ./mmrec_data)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="load a data set into the store")
    p.add_argument("format", choices=sorted(READERS), help="source layout")
    p.add_argument("path", help="folder (or file, for some formats) to read")
    p.add_argument("--name", help="data set name (default: the format, or the folder name)")
    p.add_argument("--replace", action="store_true", help="overwrite a data set of the same name whose content differs")
    _protocol_options(p)

    p = sub.add_parser("info", help="statistics of the stored data sets")
    p.add_argument("dataset", nargs="?", help="one data set (default: all)")

    p = sub.add_parser("protocol", help="create another evaluation protocol for a data set")
    p.add_argument("dataset")
    _protocol_options(p)

    sub.add_parser("sample", help="load the bundled sample data set (as the app does on first start)")

    p = sub.add_parser("engine", help="show the engine settings (and with --check, load and try each model)")
    p.add_argument("--check", action="store_true", help="load the LLM and the embedder, generate and score once")

    p = sub.add_parser("textualize", help="descriptions, keywords and rewards for every item (skips unchanged ones)")
    p.add_argument("dataset")
    p.add_argument("--items", nargs="+", help="only these item ids")
    p.add_argument("--force", action="store_true", help="redo items even when nothing changed")
    p.add_argument("--batch-size", type=int, default=8, help="items per model batch (default 8)")

    p = sub.add_parser("eval-descriptions", help="how often descriptions name the true colour, type and pattern")
    p.add_argument("dataset")
    p.add_argument("-n", type=int, default=100, help="images to describe (default 100, seeded sample)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("profiles", help="recurrent preference summaries from training histories (resumable)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--users", nargs="+", help="only these user ids")
    p.add_argument("--batch-size", type=int, default=8, help="users per generate() call (default 8)")

    p = sub.add_parser("eval-profiles", help="specificity and distinctness of the stored profiles")
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--random-users", type=int, default=20, help="other users each profile is compared with")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("graph", help="build the refined item graph (text-embedding neighbours + co-occurrence)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--alpha", type=float, default=0.5, help="cosine threshold for semantic neighbours (0.5)")
    p.add_argument("-k", type=int, default=10, help="most semantic neighbours per item (10)")
    p.add_argument("--window", type=int, default=3, help="K_c: co-occurrence window in training sequences (3)")
    p.add_argument("--min-count", type=int, default=2, help="m: users a pair must co-occur for (2)")

    p = sub.add_parser("similar-users", help="a user's most similar users (trained SASRec) and their next items")
    p.add_argument("dataset")
    p.add_argument("user")
    p.add_argument("-k", type=int, default=3, help="similar users (default 3)")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")

    p = sub.add_parser(
        "train", help="train a recommender (popularity, sasrec, lightgcn) or the LLM (sft, grpo, keywords)"
    )
    p.add_argument("model", help="popularity, sasrec, lightgcn; LLM (LoRA): sft, grpo (listwise), keywords (RLVR)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--epochs", type=float, help="most epochs (early stopping on valid decides)")
    p.add_argument("--seed", type=int, help="training seed")
    add_llm_train_options(p)

    p = sub.add_parser("eval", help="evaluate the newest trained model (or the LLM: `eval llm`) on the test part")
    p.add_argument("model", nargs="?", help="popularity, sasrec, lightgcn or llm (none with --all)")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    _llm_options(p)
    p.add_argument("--users", type=int, help="llm: a seeded subset of this many users (default: all)")
    p.add_argument("--all", action="store_true", help="every available model, then the leaderboard with intervals")
    p.add_argument("--llm-modes", default="pointwise", help="--all: zero-shot LLM modes (default pointwise)")
    p.add_argument("--no-llm", action="store_true", help="--all: leave the LLM (zero-shot and adapters) out")
    add_parsers(sub)

    p = sub.add_parser("score", help="rank candidates for one customer with the LLM, with rationale and evidence")
    p.add_argument("dataset")
    p.add_argument("user")
    p.add_argument("--protocol", help="protocol id (default: the data set's default protocol)")
    p.add_argument("--from-model", help="candidates: the top --top items of this trained model (default: stored)")
    p.add_argument("--items", help="candidates: comma-separated item ids (default: the stored test candidates)")
    p.add_argument("--top", type=int, default=20, help="candidates taken from --from-model (default 20)")
    p.add_argument("--explain", type=int, default=3, help="pointwise: rationales for the top k (default 3)")
    p.add_argument("--show-prompt", action="store_true", help="print the exact prompt of the first candidate")
    _llm_options(p)
    return parser


def _llm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("pointwise", "listwise"), default="pointwise", help="llm: scoring mode")
    p.add_argument("--history", type=int, default=5, help="llm: last purchases in the prompt (default 5)")
    p.add_argument("--similar-users", type=int, default=3, help="llm: similar customers in the prompt (default 3)")
    p.add_argument("--max-prompt-tokens", type=int, default=1536, help="llm: prompt budget (default 1536)")
    p.add_argument("--adapter", help="llm: a LoRA adapter folder (e.g. from `mmrec train sft`) on the engine's LLM")


def _with_adapter(ws: Workspace, args: argparse.Namespace):
    """The engine settings, with --adapter (when given) on the LLM."""
    import dataclasses

    return dataclasses.replace(ws.settings, adapter=args.adapter) if args.adapter else ws.settings


def _rec_config(args: argparse.Namespace):
    from .llm_recommender import RecommendConfig

    return RecommendConfig(
        mode=args.mode,
        n_history=args.history,
        n_similar=args.similar_users,
        max_prompt_tokens=args.max_prompt_tokens,
        explain_top=getattr(args, "explain", 0),
    )


def cmd_ingest(ws: Workspace, args: argparse.Namespace) -> None:
    report = ingest(
        ws.store,
        ws.images,
        args.format,
        args.path,
        name=args.name,
        replace=args.replace,
        n_negatives=args.negatives,
        seed=args.seed,
        min_history=args.min_history,
    )
    print(report)


def cmd_info(ws: Workspace, args: argparse.Namespace) -> None:
    names = [args.dataset] if args.dataset else list(ws.store.datasets()["dataset"])
    if not names:
        print("No data sets yet. Load one with `mmrec ingest FORMAT PATH` or `mmrec sample`.")
    for name in names:
        print(format_summary(dataset_summary(ws.store, name)))


def format_summary(s: dict) -> str:
    lines = [
        f"== {s['dataset']} ({s['format']}, from {s['source']})",
        f"   users {s['users']:,}  items {s['items']:,} ({s['items_with_images']:,} with images)  "
        f"interactions {s['interactions']:,} (source rows {s['source_rows']:,})  density {s['density']:.4%}",
        f"   sequence length min {s['seq_len_min']}  median {s['seq_len_median']:g}  "
        f"mean {s['seq_len_mean']:g}  max {s['seq_len_max']}",
    ]
    if s["first_ts"] is not None and str(s["first_ts"]) != "NaT":
        lines.append(f"   time span {s['first_ts']:%Y-%m-%d} .. {s['last_ts']:%Y-%m-%d}")
    for p in s["protocols"]:
        share = p["test_repeat_share"] or 0.0
        lines.append(
            f"   protocol {p['protocol_id']}: {p['evaluated_users']:,} evaluated users, "
            f"1 positive + {p['n_negatives']} negatives, {share:.1%} of test targets are repeats"
        )
    return "\n".join(lines)


def cmd_protocol(ws: Workspace, args: argparse.Namespace) -> None:
    pid = create_protocol(
        ws.store, args.dataset, n_negatives=args.negatives, seed=args.seed, min_history=args.min_history
    )
    print(f"{pid}: stored; {repeat_share(ws.store, pid):.1%} of test targets are repeats")


def cmd_sample(ws: Workspace, args: argparse.Namespace) -> None:
    report = ensure_sample_dataset(ws)
    print(report or "sample: already loaded")


def cmd_engine(ws: Workspace, args: argparse.Namespace) -> None:
    import time

    from .engines import get_engine

    settings = ws.settings
    for name in ENGINE_FIELDS:
        print(f"{name:>16}: {getattr(settings, name)!s}")
    engine = get_engine(settings)
    for task, model in engine.model_names().items():
        print(f"{task + ' model':>16}: {model or '-'}")
    if not args.check:
        return
    start = time.perf_counter()
    lm = engine.lm
    print(f"loaded the LLM in {time.perf_counter() - start:.1f} s ({lm.model.device})")
    start = time.perf_counter()
    engine.embed(["warm-up"])
    print(f"loaded the embedder in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    from .engines import GenerationOptions

    answer = engine.generate(["Name one colour."], GenerationOptions(max_new_tokens=8))[0]
    score = engine.score_yes_no("Is the sky blue? ", ["Answer Yes or No."])[0]
    print(f"generate + score in {time.perf_counter() - start:.1f} s: {answer!r}, p(yes)={score:.3f}")


def _tqdm_progress(unit: str):
    """A progress callback drawing a tqdm bar (rate and ETA) on stderr; returns (callback, close)."""
    from tqdm import tqdm

    bar = tqdm(unit=unit, dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return progress, bar.close


def _with_progress(unit: str, work):
    """Run `work(progress)` with a tqdm bar; returns what it returns."""
    progress, close = _tqdm_progress(unit)
    try:
        return work(progress)
    finally:
        close()


def cmd_textualize(ws: Workspace, args: argparse.Namespace) -> None:
    from .engines import get_engine
    from .textualize import TextualizeConfig, textualize

    progress, close = _tqdm_progress("item")
    try:
        config = TextualizeConfig(batch_size=args.batch_size, force=args.force)
        report = textualize(ws, get_engine(ws.settings), args.dataset, args.items, config, progress)
    finally:
        close()
    print(f"{args.dataset}: {report}")
    for item_id, reason in report.failed:
        print(f"  skipped {item_id}: {reason}")


def cmd_eval_descriptions(ws: Workspace, args: argparse.Namespace) -> None:
    from .describe_eval import evaluate_descriptions
    from .engines import get_engine

    engine = get_engine(ws.settings)
    progress, close = _tqdm_progress("image")
    try:
        table = evaluate_descriptions(ws, engine, args.dataset, n=args.n, seed=args.seed, progress=progress)
    finally:
        close()
    print(f"{args.dataset}: describer {engine.model_names()['vlm']}, catalog text withheld")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


def cmd_profiles(ws: Workspace, args: argparse.Namespace) -> None:
    from .engines import get_engine
    from .profiles import ProfileConfig, build_profiles

    config = ProfileConfig(batch_size=args.batch_size, users=args.users)
    engine = get_engine(ws.settings)
    report = _with_progress("block", lambda p: build_profiles(ws, engine, args.dataset, args.protocol, config, p))
    print(f"{args.dataset}: {report}")


def cmd_eval_profiles(ws: Workspace, args: argparse.Namespace) -> None:
    from .engines import get_engine
    from .profile_eval import ProfileEvalConfig, evaluate_profiles

    protocol = args.protocol or create_protocol(ws.store, args.dataset)
    config = ProfileEvalConfig(n_random=args.random_users, seed=args.seed)
    table = evaluate_profiles(ws, get_engine(ws.settings), args.dataset, protocol, config)
    a = table.attrs
    print(
        f"{args.dataset} ({protocol}): {a['profiled']} profiles, {a['flagged']} flagged; "
        f"{a['evaluated']} users with held-out items, each against "
        f"{min(config.n_random, a['evaluated'] - 1)} random other users"
    )
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        "own_sim/random_sim: cosine to the user's own later items / to random users' later items; "
        "auc: share of pairs where own > random (0.5 = chance); near_identical: share with a twin >= "
        f"{config.near} cosine"
    )


def cmd_graph(ws: Workspace, args: argparse.Namespace) -> None:
    from .engines import get_engine
    from .item_graph import GraphConfig, build_item_graph

    config = GraphConfig(alpha=args.alpha, k=args.k, window=args.window, min_count=args.min_count)
    engine = get_engine(ws.settings)
    report = _with_progress("item", lambda p: build_item_graph(ws, engine, args.dataset, args.protocol, config, p))
    print(f"{args.dataset}: {report}")


def cmd_similar_users(ws: Workspace, args: argparse.Namespace) -> None:
    from .evaluate import load_trained
    from .models.data import load_train_data
    from .similar_users import similar_user_context, with_keywords

    protocol = args.protocol or create_protocol(ws.store, args.dataset)
    model, run_id = load_trained(ws, args.dataset, "sasrec", protocol)
    data = load_train_data(ws.store, args.dataset, protocol)
    context = with_keywords(ws.store, args.dataset, similar_user_context(model, data, [args.user], args.k))
    print(f"{args.user}: similar users by SASRec run {run_id} (training sequences only)")
    print(context.drop(columns=["user_id"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


def cmd_train(ws: Workspace, args: argparse.Namespace) -> None:
    import dataclasses

    from .evaluate import MODELS, train_model

    if args.model in LLM_METHODS:
        return cmd_train_llm(ws, args)
    if args.model not in MODELS:
        raise ValueError(f"Unknown model '{args.model}'; choose one of {', '.join([*MODELS, *LLM_METHODS])}.")
    if args.epochs is not None:
        args.epochs = int(args.epochs)
    config = MODELS[args.model][1]()
    overrides = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k) is not None}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if hasattr(config, k)})
    progress, close = _tqdm_progress("epoch")
    try:
        run_id = train_model(ws, args.dataset, args.model, args.protocol, config, progress)
    finally:
        close()
    params = ws.store.sql_df("SELECT params FROM runs WHERE run_id = ?", [run_id])["params"].iloc[0]
    print(f"{args.dataset}: trained {args.model} as run {run_id} {params}")


def cmd_eval(ws: Workspace, args: argparse.Namespace) -> None:
    from .evaluate import evaluate_model

    if args.all:
        return cmd_eval_all(ws, args)
    if not (args.model and args.dataset):
        raise ValueError("Use `mmrec eval MODEL DATASET`, or `mmrec eval --all DATASET`.")
    if args.model == "llm":
        return cmd_eval_llm(ws, args)
    run_id, table = evaluate_model(ws, args.dataset, args.model, args.protocol)
    print(f"{args.dataset}: {args.model}, run {run_id}, test part, all evaluated users")
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))


def cmd_eval_llm(ws: Workspace, args: argparse.Namespace) -> None:
    from .engines import get_engine
    from .llm_eval import evaluate_llm

    engine, config = get_engine(_with_adapter(ws, args)), _rec_config(args)
    result = _with_progress(
        "user", lambda p: evaluate_llm(ws, engine, args.dataset, args.protocol, config, args.users, progress=p)
    )
    users = len(result.per_user)
    print(
        f"{args.dataset}: LLM {config.mode} ({engine.model_names()['llm']}), run {result.run_id}, test part, "
        f"{users} users ({result.scored} scored now, {result.reused} read back from earlier runs)"
    )
    if args.users:
        print(f"   a seeded subset of {users} users, not all evaluated users")
    print(result.table.to_string(float_format=lambda x: f"{x:.4f}"))
    print("\nSame users, same stored candidates:")
    print(result.compare.to_string(float_format=lambda x: f"{x:.4f}"))


def cmd_score(ws: Workspace, args: argparse.Namespace) -> None:
    import textwrap

    from .engines import get_engine
    from .evidence import EvidenceFinder
    from .llm_recommender import LLMRecommender
    from .rec_context import ContextBuilder
    from .recommend import model_candidates, score_customer, stored_candidates

    config = _rec_config(args)
    protocol = args.protocol or create_protocol(ws.store, args.dataset)
    builder = ContextBuilder(ws, args.dataset, protocol, "test", config.n_history, config.n_similar)
    if args.items:
        candidates, source = [i.strip() for i in args.items.split(",") if i.strip()], "chosen by hand"
    elif args.from_model:
        candidates = model_candidates(ws, builder, args.from_model, args.user, args.top)
        source = f"top {args.top} of {args.from_model}"
    else:
        candidates, source = stored_candidates(builder, args.user), "stored test candidates"
    recommender = LLMRecommender(get_engine(_with_adapter(ws, args)), builder, config)
    rec, table = _with_progress(
        "step", lambda p: score_customer(recommender, EvidenceFinder(builder), args.user, candidates, progress=p)
    )
    print(f"{args.user}: {len(candidates)} candidates ({source}), {config.mode}, {rec.seconds:.1f} s")
    for note in rec.context.notes:
        print(f"   note: {note}")
    if rec.prompt.trimmed:
        print(f"   prompt trimmed to fit {recommender.max_tokens} tokens: {rec.prompt.trimmed}")
    if rec.answer is not None and not rec.answer.valid:
        print(f"   INVALID listwise answer ({rec.answer.problem}): {rec.answer.raw[:200]!r}")
    for row in table.itertuples():
        print(f"{row.rank:>3}. {row.score:7.4f}  {row.item_id}  {row.title}")
        print(f"       evidence: {row.evidence}")
        if row.rationale:
            print(textwrap.indent(textwrap.fill(f"rationale: {row.rationale}", 100), "       "))
        if row.flags:
            print(f"       FLAG: the rationale names {', '.join(row.flags)}, which the item's texts never mention")
    if args.show_prompt:
        print("\n--- exact prompt (first candidate) ---")
        print(recommender.render(rec.prompt.full(0)))


COMMANDS = {
    "ingest": cmd_ingest,
    "info": cmd_info,
    "protocol": cmd_protocol,
    "sample": cmd_sample,
    "engine": cmd_engine,
    "textualize": cmd_textualize,
    "eval-descriptions": cmd_eval_descriptions,
    "profiles": cmd_profiles,
    "eval-profiles": cmd_eval_profiles,
    "graph": cmd_graph,
    "similar-users": cmd_similar_users,
    "train": cmd_train,
    "eval": cmd_eval,
    "score": cmd_score,
    "compare": cmd_compare,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ws = open_workspace(load_settings(args.data_dir))
        try:
            COMMANDS[args.command](ws, args)
        finally:
            ws.close()
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mmrec {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
