"""Scoring the VALID part with the model being trained: what picks the best checkpoint (never test).

`LiveEngine` lets the recommender (`llm_recommender`) run on a model in training: the same prompts,
the same shared-prefix yes/no scoring, no reload. The callbacks plug it and a progress report into
any transformers/TRL trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from mmrec_core.data.metrics import sampled_metrics
from mmrec_core.engines.llm import TextLM
from mmrec_core.finetune.common import inference
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import Workspace


class LiveEngine:
    """The engine calls the recommender makes, served by a model that is being trained."""

    name = "training"

    def __init__(self, lm: TextLM) -> None:
        self.lm = lm  # from `common.inference`: the model in eval mode while it scores

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        return self.lm.score_yes_no(prefix, suffixes, system)

    def count_tokens(self, prompt, system: str | None = None) -> int:
        return self.lm.count_tokens(prompt, system)

    def render_prompt(self, prompt, system: str | None = None) -> str:
        return self.lm.render(prompt, system)

    def context_length(self) -> int:
        return self.lm.context_length()

    def generate(self, prompts, options=None, system=None) -> list[str]:
        return self.lm.generate(prompts, options, system)

    def provenance(self, task: str, prompt_version: str = "", **params) -> dict:
        return {"engine": self.name, "model": "in training", "prompt_version": prompt_version, "params": params}


class ValidScorer:
    """HR@5 / NDCG@5 / AUC of the recommender on the valid candidates of a seeded user sample."""

    def __init__(
        self, ws: Workspace, dataset: str, protocol_id: str, n_users: int, seed: int = 0, mode: str = "pointwise"
    ) -> None:
        self.mode = mode  # listwise for GRPO: its answers are what it learns to give
        self.builder = ContextBuilder(ws, dataset, protocol_id, "valid")
        cand = self.builder.data.parts["valid"]
        rng = np.random.default_rng(seed)
        rows = sorted(rng.choice(len(cand.users), size=min(n_users, len(cand.users)), replace=False).tolist())
        self.users = [cand.users[r] for r in rows]
        self.items = {u: self.builder.candidates(u) for u in self.users}
        self.builder.prepare_similar(self.users)

    def score(self, model, tokenizer) -> dict[str, float]:
        config = RecommendConfig(mode=self.mode, explain_top=0)
        with inference(model, tokenizer) as lm:
            recommender = LLMRecommender(LiveEngine(lm), self.builder, config)
            scores = np.stack([recommender.recommend(u, self.items[u], explain=0).scores for u in self.users])
        m = sampled_metrics(scores, ks=(5,)).mean()
        return {"valid_HR@5": float(m["HR@5"]), "valid_NDCG@5": float(m["NDCG@5"]), "valid_AUC": float(m["AUC"])}


class ValidCallback(TrainerCallback):
    """Every `every` steps: score the valid users, log it, and save the adapter when `metric` is the best yet.

    `scorer.score(model, tokenizer)` returns a dict of `valid_*` figures that includes `metric`.
    """

    def __init__(self, scorer, every: int, best_dir: Path, tokenizer, metric: str = "valid_HR@5") -> None:
        self.scorer, self.every, self.best_dir, self.tokenizer = scorer, every, best_dir, tokenizer
        self.metric = metric
        self.history: list[dict] = []
        self.best, self.best_step = -float("inf"), -1

    def evaluate(self, model, step: int, state=None) -> dict:
        row = {"step": step, **self.scorer.score(model, self.tokenizer)}
        self.history.append(row)
        if state is not None:
            state.log_history.append(row)
        if row[self.metric] > self.best:
            self.best, self.best_step = row[self.metric], step
            model.save_pretrained(str(self.best_dir))
            self.tokenizer.save_pretrained(str(self.best_dir))
        return row

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # A resumed run: the valid checks before the kill are in the checkpoint's log history.
        self.history = [dict(r) for r in state.log_history if self.metric in r]
        for row in self.history:
            if row[self.metric] > self.best:
                self.best, self.best_step = row[self.metric], row["step"]
        if not self.history and self.every > 0 and model is not None:
            self.evaluate(model, 0, state)  # the untrained model: the baseline the curve starts from

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every > 0 and state.global_step % self.every == 0:
            self.evaluate(model, state.global_step, state)

    def finish(self, model, step: int) -> None:
        if not self.history or self.history[-1]["step"] != step:
            self.evaluate(model, step)
