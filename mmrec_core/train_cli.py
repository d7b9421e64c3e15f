"""`mmrec train sft|grpo|keywords`: the options of the LLM trainers and what they print when done.

The configs are built by `finetune.runs.train_config` (also what the Train page starts), so the CLI and
the app train the same thing for the same settings, and land in the same run folder (and resume each other).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_llm_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=int, help="LLM: sft examples (2000) / grpo prompts (64) / keyword items (64)")
    p.add_argument("--steps", type=int, help="LLM: optimizer steps (sft: one epoch; grpo, keywords: 20)")
    p.add_argument("--ratios", help="sft: task mix, e.g. yesno=0.5,pick=0.2,recon=0.15,summary=0.15 (the default)")
    p.add_argument("--lr", type=float, help="LLM: learning rate (sft 2e-4, grpo/keywords 5e-5)")
    p.add_argument("--lora-r", type=int, default=8, help="LLM: LoRA rank (default 8)")
    p.add_argument("--qlora", action="store_true", help="LLM: 4-bit NF4 base (CUDA only)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="sft: recompute activations (memory)")
    p.add_argument("--valid-users", type=int, help="sft/grpo: valid users scored per check (64 / 16)")
    p.add_argument("--eval-steps", type=int, help="LLM: steps between valid checks (sft 50, grpo/keywords 10)")
    p.add_argument("--from-adapter", default="", help="grpo: continue from this adapter (e.g. an SFT run's)")
    p.add_argument("--reward", default="hit", help="grpo: hit (first answer) or rank (rank-aware top-k)")
    p.add_argument("--candidates", type=int, default=5, help="grpo: candidates per prompt (default 5)")
    p.add_argument("--generations", type=int, default=4, help="grpo/keywords: completions per prompt (default 4)")
    p.add_argument("--max-completion", type=int, help="grpo/keywords: completion tokens (96 / 48)")
    p.add_argument("--format-weight", type=float, default=0.2, help="grpo: format reward weight (paid if correct)")
    p.add_argument("--rationale-ratio", type=float, default=0.1, help="grpo: share of prompts with a rationale")
    p.add_argument("--rationale-confidence", type=float, default=0.5, help="grpo: confidence a rationale needs")
    p.add_argument("--rationale-source", default="evidence", help="grpo: evidence, model or both")
    p.add_argument(
        "--finish", action="store_true", help="LLM: resume these settings' run and end it now, keeping its best adapter"
    )


def parse_ratios(text: str | None) -> dict[str, float] | None:
    """`yesno=0.7,pick=0.1` -> {"yesno": 0.7, "pick": 0.1}; None when not given (the default mix)."""
    if not text:
        return None
    ratios = {}
    for part in text.split(","):
        task, _, value = part.partition("=")
        try:
            ratios[task.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--ratios: '{part}' is not task=number (e.g. yesno=0.7,pick=0.3).") from None
    return ratios


def cmd_train_llm(ws, args: argparse.Namespace) -> None:
    from mmrec_core.cli import _with_progress
    from mmrec_core.engines import get_engine
    from mmrec_core.finetune.runs import folder_of, stop_training, train_config, train_llm
    from mmrec_core.jobs import JobStopped

    keys = ("examples", "steps", "lr", "lora_r", "qlora", "gradient_checkpointing", "valid_users", "eval_steps")
    keys += ("from_adapter", "reward", "candidates", "generations", "max_completion", "format_weight")
    keys += ("rationale_ratio", "rationale_confidence", "rationale_source", "epochs", "seed")
    options = {k: getattr(args, k) for k in keys}
    config = train_config(args.model, ratios=parse_ratios(args.ratios), **options)
    engine = get_engine(ws.settings)
    if args.finish:  # one more step from the last checkpoint, then the run ends as if it were complete
        stop_training(folder_of(ws, engine, args.model, args.dataset, args.protocol, config), finish=True)
    try:
        run_id = _with_progress(
            "step", lambda p: train_llm(ws, engine, args.model, args.dataset, args.protocol, config, p)
        )
    except JobStopped as exc:
        print(exc)
        return
    print_run(ws, args.dataset, run_id)


def print_run(ws, dataset: str, run_id: str) -> None:
    row = ws.store.sql_df("SELECT method, artifact_path, params FROM runs WHERE run_id = ?", [run_id]).iloc[0]
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
    else:
        print(f"score with it: mmrec eval llm {dataset} --adapter {row['artifact_path']}")
