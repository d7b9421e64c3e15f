"""`mmrec train MODEL DATASET`: the recommenders (`models.registry.MODELS`) and the LLM (sft, grpo, keywords).

Every flag comes from the trainers' config dataclasses (`core.options`); a flag applies to the
methods whose config has it, and its help names each method's default. The LLM configs are built by
`finetune.runs.train_config`, as on the Train page, so the CLI and the app train the same thing for
the same settings, land in the same run folder and resume each other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrec_core.cli.profiles import PROTOCOL_HELP
from mmrec_core.cli.progress import with_progress
from mmrec_core.core.options import add_arguments, build, defaults
from mmrec_core.finetune import LLM_METHODS
from mmrec_core.finetune.configs import TRAINERS
from mmrec_core.models.registry import MODELS
from mmrec_core.store.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    recommenders = ", ".join(MODELS)  # the registry names them: the help never lags behind a new model
    p = sub.add_parser("train", help=f"train a recommender ({recommenders}) or the LLM (sft, grpo, keywords)")
    p.add_argument("model", help=f"{recommenders}; LLM (LoRA): sft, grpo (listwise), keywords (RLVR)")
    p.add_argument("dataset")
    p.add_argument("--protocol", help=PROTOCOL_HELP)
    configs = {name: config for name, (_, config) in MODELS.items()} | TRAINERS
    add_arguments(p, {name: config for name, config in configs.items() if defaults(config)})
    p.add_argument(
        "--finish", action="store_true", help="LLM: resume these settings' run and end it now, keeping its best adapter"
    )
    p.set_defaults(run=cmd_train, configs=configs)


def given_options(args: argparse.Namespace, method: str) -> dict:
    """The flags given on the command line that belong to `method`'s config; an error names any other."""
    names = set().union(*(defaults(c) for c in args.configs.values()))
    given = {n: getattr(args, n.replace("-", "_")) for n in names}
    given = {n: v for n, v in given.items() if v is not None}
    foreign = sorted(set(given) - set(defaults(args.configs[method])))
    if foreign:
        raise ValueError(f"{method} has no setting {', '.join('--' + f for f in foreign)}.")
    return given


def cmd_train(ws: Workspace, args: argparse.Namespace) -> None:
    if args.model in LLM_METHODS:
        return cmd_train_llm(ws, args)
    if args.model not in MODELS:
        raise ValueError(f"Unknown model '{args.model}'; choose one of {', '.join([*MODELS, *LLM_METHODS])}.")
    from mmrec_core.models.registry import train_model

    config = build(MODELS[args.model][1], given_options(args, args.model))
    run_id = with_progress("epoch", lambda p: train_model(ws, args.dataset, args.model, args.protocol, config, p))
    print(f"{args.dataset}: trained {args.model} as run {run_id} {ws.store.run(run_id)['params']}")


def cmd_train_llm(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.core.jobs import JobStopped
    from mmrec_core.engines import get_engine
    from mmrec_core.finetune.runs import folder_of, stop_training, train_config, train_llm

    config = train_config(args.model, **given_options(args, args.model))
    engine = get_engine(ws.settings)
    if args.finish:  # one more step from the last checkpoint, then the run ends as if it were complete
        stop_training(folder_of(ws, engine, args.model, args.dataset, args.protocol, config), finish=True)
    try:
        run_id = with_progress(
            "step", lambda p: train_llm(ws, engine, args.model, args.dataset, args.protocol, config, p)
        )
    except JobStopped as exc:
        print(exc)
        return
    print_run(ws, args.dataset, run_id)


def print_run(ws, dataset: str, run_id: str) -> None:
    row = ws.store.run(run_id)
    meta = json.loads(row["params"])
    print(f"{dataset}: {meta['method']} run {run_id}: {meta['steps']} steps in {meta['train_seconds']} s")
    log = json.loads((Path(row["artifact_path"]) / "mmrec_adapter.json").read_text())["log"]
    rewards = [r for r in log if "reward" in r]
    if rewards:
        names = [k for k in rewards[0] if k.startswith("rewards/") and k.endswith("/mean")]
        print("   step  reward  " + "  ".join(n.split("/")[1] for n in names) + "  length  valid answers")
        for r in rewards:
            parts = "  ".join(f"{r[n]:.3f}" for n in names)
            share = f"{r['valid_answers']:.2f}" if "valid_answers" in r else "-"
            print(f"   {r['step']:>4}  {r['reward']:.3f}  {parts}  {r.get('completions/mean_length', 0):.1f}  {share}")
    for v in meta["valid"]:
        figures = "  ".join(f"{k[6:]} {x:.4f}" for k, x in v.items() if k.startswith("valid_"))
        print(f"   step {v['step']:>5}: valid {figures}")
    if meta.get("warning"):
        print(f"WARNING {meta['warning']}")
    print(f"best adapter (step {meta['best_step']}): {row['artifact_path']}")
    if row["method"] == "llm-keywords":
        print(f"textualize with it: MMREC_ADAPTER={row['artifact_path']} mmrec textualize {dataset} --force")
    elif row["method"] == "llm-describer":
        where, compare = row["artifact_path"], "--describers template tuned"
        print(f"compare it: MMREC_DESCRIBER_ADAPTER={where} mmrec eval-descriptions {dataset} {compare}")
    else:
        print(f"score with it: mmrec eval llm {dataset} --adapter {row['artifact_path']}")
