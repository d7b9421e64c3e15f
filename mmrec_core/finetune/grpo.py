"""GRPO of the listwise recommender with guarded rewards, through TRL's GRPOTrainer (stage 5).

MLLMRec-R1 (Wang et al., 2025) and MMSRARec's RLVR: the policy reads the recommender's own listwise
prompt of a TRAINING cut (`finetune.data` pick examples) and answers `<think>..</think><answer>n</answer>`.
For each prompt G completions are sampled; the advantage of completion i is r_i - mean(r) over its
group (Dr. GRPO: no division by the group's std, and `loss_type="dr_grpo"` normalises the token sum by a
constant, not by each completion's length, so long answers are not favoured).

Rewards (one TRL reward function each, so every component is logged):
    correct  1 if the answer's first item is the target (hit), or with `reward="rank"` the rank-aware
             1 / log2(1 + position of the target among the first `top_k` answered items); 0 otherwise
    format   1 for a complete <think>..</think><answer>..</answer> whose answer is CORRECT; 0 otherwise, so
             a well-formed wrong answer earns exactly what any wrong answer earns (weight `format_weight`)
An invalid answer (no tag, a number not shown, words) earns 0 on both. The share of valid answers is
logged per step, and every `eval_steps` the listwise recommender is scored on valid users
(`finetune.valid`); `monitor.reward_inflation` warns when the reward rises while that HR@5 does not.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict

import numpy as np

from mmrec_core.engines.protocol import Engine
from mmrec_core.finetune.common import (
    Progress,
    ProgressCallback,
    RunLogCallback,
    completion_text,
    inference,
    load_policy,
    run_folder,
    save_adapter,
    train_or_resume,
)
from mmrec_core.finetune.configs import GRPORunConfig
from mmrec_core.finetune.data import TrainDataBuilder
from mmrec_core.finetune.monitor import InflationCallback, reward_inflation
from mmrec_core.recommend.llm import parse_answer
from mmrec_core.recommend.prompts import REC_VERSION
from mmrec_core.store.workspace import Workspace, default_protocol

_WELL_FORMED = re.compile(r"\s*<think>.+?</think>\s*<answer>.+?</answer>\s*", re.DOTALL)


def correctness(text: str, order: list[str], target: str, reward: str = "hit", top_k: int = 5) -> tuple[float, bool]:
    """(correctness reward, answer valid) of one completion."""
    answer = parse_answer(text, order)
    if not answer.valid:
        return 0.0, False
    if reward == "hit":
        return float(answer.ranking[0] == target), True
    ranked = answer.ranking[:top_k]
    return (1.0 / float(np.log2(ranked.index(target) + 2)) if target in ranked else 0.0), True


def make_rewards(config: GRPORunConfig) -> list:
    """The reward functions TRL calls (named `correct` and `format` in its logs)."""

    def correct(completions, order, target, log_metric=None, **_) -> list[float]:
        scored = [
            correctness(completion_text(c), o, t, config.reward, config.top_k)
            for c, o, t in zip(completions, order, target, strict=True)
        ]
        if log_metric is not None:
            log_metric("valid_answers", float(np.mean([valid for _, valid in scored])))
        return [r for r, _ in scored]

    def format(completions, order, target, **_) -> list[float]:  # noqa: A001 (the name TRL logs)
        out = []
        for c, o, t in zip(completions, order, target, strict=True):
            text = completion_text(c)
            good = _WELL_FORMED.fullmatch(text) is not None
            out.append(float(good and correctness(text, o, t, config.reward, config.top_k)[0] > 0))
        return out

    return [correct, format]


def train_grpo(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: GRPORunConfig | None = None,
    progress: Progress | None = None,
) -> str:
    """Train, keep the best adapter by valid HR@5 (listwise), write its metadata, record a run; returns its id."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from mmrec_core.finetune.rationales import curate, with_hints
    from mmrec_core.finetune.valid import ValidCallback, ValidScorer
    from mmrec_core.recommend.context import ContextBuilder

    config = config or GRPORunConfig()
    protocol_id = default_protocol(ws, dataset, protocol_id)
    base = engine.llm_source()
    folder = run_folder(ws, "grpo", dataset, protocol_id, base, config.key())
    start = time.perf_counter()
    train_ctx = ContextBuilder(ws, dataset, protocol_id, "test")  # cut contexts: training items only
    picks = TrainDataBuilder(train_ctx, lambda t: engine.count_tokens(t), config.data).pick_examples(
        config.data.n_examples
    )
    model, tokenizer = load_policy(base, config.qlora, config.start_adapter)

    # Confidence-aware curation, then the kept rationales shown in a `rationale_ratio` share of prompts.
    with inference(model, tokenizer) as lm:
        candidates = curate(lm, picks, config.rationale_source)
    kept = {}
    for c in candidates:
        if c.kept(config.rationale_confidence) and c.row not in kept:
            kept[c.row] = c.rationale
    rng = np.random.default_rng(config.seed)
    n_hints = min(len(kept), int(round(config.rationale_ratio * len(picks))))
    hinted = set(rng.choice(sorted(kept), size=n_hints, replace=False).tolist()) if n_hints else set()
    prompts = [with_hints(p, kept[i]) if i in hinted else p for i, p in enumerate(picks["prompt"])]
    train = Dataset.from_dict(
        {"prompt": prompts, "order": [list(o) for o in picks["order"]], "target": list(picks["item_id"])}
    )

    args = config.grpo_args(folder, [1.0, config.format_weight])
    valid = ValidScorer(ws, dataset, protocol_id, config.valid_users, config.seed, mode="listwise")
    best, log = folder / "adapter", RunLogCallback(folder)
    callback = ValidCallback(valid, config.eval_steps, best, tokenizer)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_rewards(config),
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=None if config.start_adapter else config.lora(),  # an adapter to go on from is trained as is
        callbacks=[
            ProgressCallback(progress),
            callback,
            InflationCallback(),
            log,
        ],
    )
    train_or_resume(trainer, folder, log, "GRPO")
    callback.finish(trainer.model, trainer.state.global_step)
    log.write(trainer.state)
    history = trainer.state.log_history
    meta = {
        "base_model": base,
        "engine": engine.provenance("llm", REC_VERSION)["model"],
        "prompt_version": REC_VERSION,
        "dataset": dataset,
        "protocol_id": protocol_id,
        "method": "grpo-lora" + ("-qlora" if config.qlora else ""),
        "config": asdict(config),
        "data": {"prompts": len(picks), "candidates": config.data.pick_candidates},
        "loss": {"type": args.loss_type, "scale_rewards": args.scale_rewards},
        "rationales": {
            "offered": len(candidates),
            "correct": sum(c.correct for c in candidates),
            "kept": len(kept),
            "confidence_of_correct": [  # what the threshold was up against: quartiles of p(answer | rationale)
                float(f"{q:.3g}")
                for q in np.quantile([c.confidence for c in candidates if c.correct] or [0.0], [0.25, 0.5, 0.75])
            ],
            "shown_in_prompts": len(hinted),
        },
        "valid": callback.history,
        "best_step": callback.best_step,
        "best_valid_HR@5": callback.best,
        "warning": reward_inflation(history),
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": trainer.state.global_step,
        "log": history,
    }
    return save_adapter(ws, dataset, protocol_id, "llm-grpo", best, meta)
