"""RLVR of the keyword summarizer with GRPO (MMSRARec, stage 5): verifiable rewards, no labels.

MMSRARec trains the model that condenses an item's text into keywords with rewards it can compute:
R_info (the keywords mean what the source means), R_recon (the LLM can rebuild the source from them)
and R_len (fewer is better), the very rewards `rewards.keyword_rewards` stores beside every
textualized item. The policy reads the textualization prompt (`textualize.prompts.keyword_chat`) of an item's
source text (its stored description + catalog text); the FROZEN engine scores each sampled keyword
list, so the judge does not move with the policy. Every `eval_steps` the policy's greedy keywords
for held-out items are scored the same way (`valid_reward`), which picks the adapter that is kept.
Items only (no interactions are read), so no split is involved. Use the adapter for textualization
by setting it as the engine's `adapter`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mmrec_core.core.prompts import PRODUCT, Domain, domain_for
from mmrec_core.engines.llm import GenerationOptions
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
from mmrec_core.finetune.configs import KeywordRLConfig
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.keywords import parse_keywords
from mmrec_core.textualize.prompts import KEYWORDS, keyword_chat
from mmrec_core.textualize.rewards import Rewards, keyword_rewards, reward_params
from mmrec_core.textualize.texts import source_texts


def keywords_folder(ws: Workspace, dataset: str, base: str, config: KeywordRLConfig) -> Path:
    """The run folder: keyed by items, not a protocol (no interactions are read)."""
    return run_folder(ws, "keywords", dataset, "items", base, config.key())


class KeywordJudge:
    """The three rewards of a batch of completions, computed once and served to TRL's three reward functions."""

    def __init__(self, engine: Engine, budget: int, domain: Domain = PRODUCT) -> None:
        self.engine, self.budget, self.domain = engine, budget, domain
        self._cache: tuple[tuple, list[Rewards]] | None = None

    def rewards(self, completions, source) -> list[Rewards]:
        texts = [completion_text(c) for c in completions]
        key = (tuple(texts), tuple(source))
        if self._cache is None or self._cache[0] != key:
            keyword_sets = [parse_keywords(t, self.budget) for t in texts]
            rewards = keyword_rewards(self.engine, keyword_sets, list(source), self.engine.settings, self.domain)
            self._cache = (key, rewards)
        return self._cache[1]

    def functions(self) -> list:
        def r_info(completions, source, **_) -> list[float]:
            return [r.r_info for r in self.rewards(completions, source)]

        def r_recon(completions, source, **_) -> list[float]:
            return [r.r_recon for r in self.rewards(completions, source)]

        def r_len(completions, source, **_) -> list[float]:
            return [r.r_len for r in self.rewards(completions, source)]

        return [r_info, r_recon, r_len]


class HeldOutKeywords:
    """Mean weighted reward of the policy's greedy keywords for held-out items (higher is better)."""

    def __init__(self, judge: KeywordJudge, sources: list[str], max_new_tokens: int) -> None:
        self.judge, self.sources, self.max_new_tokens = judge, sources, max_new_tokens

    def score(self, model, tokenizer) -> dict[str, float]:
        with inference(model, tokenizer) as lm:
            options = GenerationOptions(max_new_tokens=self.max_new_tokens)
            domain = self.judge.domain
            answers = lm.generate([keyword_chat(s, domain) for s in self.sources], options, KEYWORDS.system_for(domain))
        rewards = self.judge.rewards(answers, self.sources)
        return {
            "valid_reward": float(np.mean([r.reward for r in rewards])),
            "valid_r_info": float(np.mean([r.r_info for r in rewards])),
            "valid_r_recon": float(np.mean([r.r_recon for r in rewards])),
            "valid_keywords": float(np.mean([-r.r_len * self.judge.budget for r in rewards])),
        }


def train_keywords(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    config: KeywordRLConfig | None = None,
    progress: Progress | None = None,
) -> str:
    """GRPO on the keyword task; keeps the best adapter by held-out reward, records a run; returns its id."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from mmrec_core.finetune.valid import ValidCallback

    config = config or KeywordRLConfig()
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    sources = source_texts(ws.store, dataset)
    if len(sources) < config.valid_items + 2:
        raise ValueError(f"Data set '{dataset}' has {len(sources)} items: too few for keyword RL.")
    rng = np.random.default_rng(config.seed)
    ids = sorted(sources)
    order = rng.permutation(len(ids))
    held_out = [sources[ids[i]] for i in order[: config.valid_items]]
    train_ids = [ids[i] for i in order[config.valid_items : config.valid_items + config.n_items]]
    base = engine.llm_source()
    folder = keywords_folder(ws, dataset, base, config)
    start = time.perf_counter()
    model, tokenizer = load_policy(base, config.qlora)
    judge = KeywordJudge(engine, engine.settings.keyword_budget, domain)
    system = [{"role": "system", "content": KEYWORDS.system_for(domain)}]
    train = Dataset.from_dict(
        {
            "prompt": [system + keyword_chat(sources[i], domain) for i in train_ids],
            "source": [sources[i] for i in train_ids],
        }
    )
    # w_info, w_recon, w_len as in textualization
    args = config.grpo_args(folder, list(engine.settings.reward_weight_values))
    best, log = folder / "adapter", RunLogCallback(folder)
    valid = ValidCallback(
        HeldOutKeywords(judge, held_out, config.max_completion_length),
        config.eval_steps,
        best,
        tokenizer,
        "valid_reward",
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=judge.functions(),
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=config.lora(),
        callbacks=[ProgressCallback(progress), valid, log],
    )
    train_or_resume(trainer, folder, log, "Keyword RL")
    valid.finish(trainer.model, trainer.state.global_step)
    log.write(trainer.state)
    meta = {
        "base_model": base,
        "engine": engine.provenance("llm", KEYWORDS.version)["model"],
        "dataset": dataset,
        "method": "keywords-grpo-lora" + ("-qlora" if config.qlora else ""),
        "prompt_version": KEYWORDS.version,
        "rewards": reward_params(engine.settings),
        "config": asdict(config),
        "data": {"items": len(train_ids), "held_out": len(held_out)},
        "valid": valid.history,
        "best_step": valid.best_step,
        "best_valid_reward": valid.best,
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": trainer.state.global_step,
        "log": trainer.state.log_history,
    }
    return save_adapter(ws, dataset, None, "llm-keywords", best, meta)
