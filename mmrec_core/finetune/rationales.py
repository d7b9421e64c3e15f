"""Curated rationales for GRPO: MLLMRec-R1's confidence-aware refinement and mixed-grained augmentation.

MLLMRec-R1 (Wang et al., 2025) supervises reasoning only with rationales it can trust: a rationale is
kept when the answer it leads to is CORRECT and the model's confidence in that answer, given the
rationale, passes a threshold (Sec. 3.3); the kept rationales are then shown in a set share of the
RL prompts as a reference line of reasoning (mixed-grained augmentation, their `cot_prob`).

Here a rationale comes from the data (the evidence rationale of `finetune.data`: keywords the target
shares with recent purchases) or from the policy itself (its own greedy listwise answer). Confidence
is p(answer number | prompt, <think>rationale</think><answer>) under the starting policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmrec_core.engines.llm import GenerationOptions, TextLM
from mmrec_core.recommend.llm import parse_answer

SOURCES = ("evidence", "model", "both")
HINT = "\nA possible line of reasoning, for reference only:\n<think>{rationale}</think>"


@dataclass
class Candidate:
    """A rationale offered for one pick example, and what the curation found."""

    row: int  # index of the example
    source: str  # evidence | model
    rationale: str
    answer: str | None  # the item the rationale's answer names (None: no valid answer)
    correct: bool
    confidence: float = 0.0

    def kept(self, threshold: float) -> bool:
        return self.correct and self.confidence >= threshold


def answer_confidence(lm: TextLM, prompts: Sequence, rationales: Sequence[str], numbers: Sequence[int]) -> np.ndarray:
    """p(`number`</answer> | prompt, <think>rationale</think><answer>) for each example (batch of one: CPU-sized)."""
    tok, out = lm.tokenizer, []
    for prompt, rationale, number in zip(prompts, rationales, numbers, strict=True):
        context = lm.render(prompt) + f"<think>{rationale}</think><answer>"
        ids = tok(context, add_special_tokens=not lm.has_chat_template)["input_ids"]
        answer = tok(f"{number}</answer>", add_special_tokens=False)["input_ids"]
        full = torch.tensor([ids + answer], device=lm.model.device)
        with torch.no_grad():
            logprobs = torch.log_softmax(lm.model(input_ids=full).logits[0].float(), dim=-1)
        positions = torch.arange(len(ids) - 1, len(ids) + len(answer) - 1)
        out.append(float(logprobs[positions, torch.tensor(answer)].sum().exp()))
    return np.asarray(out)


def curate(lm: TextLM, examples, source: str = "evidence", max_new_tokens: int = 96) -> list[Candidate]:
    """Every candidate rationale of the pick `examples` (columns prompt, order, item_id, rationale), scored.

    `lm` is in eval mode (a TextLM puts its model there; `common.inference` for a model in training).

    Keep the ones with `Candidate.kept(threshold)`; the others are returned too, so a run can report
    how many were offered and why they were dropped.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown rationale source '{source}'; use one of {', '.join(SOURCES)}.")
    rows = examples.reset_index(drop=True)
    cands: list[Candidate] = []
    if source in ("evidence", "both"):
        cands += [Candidate(i, "evidence", r.rationale, r.item_id, True) for i, r in enumerate(rows.itertuples())]
    if source in ("model", "both"):
        outputs = lm.generate(list(rows["prompt"]), GenerationOptions(max_new_tokens=max_new_tokens))
        for i, (text, r) in enumerate(zip(outputs, rows.itertuples(), strict=True)):
            parsed = parse_answer(text, r.order)
            named = parsed.ranking[0] if parsed.valid else None
            cands.append(Candidate(i, "model", parsed.rationale, named, named == r.item_id))
    scored = [c for c in cands if c.correct]  # a wrong or invalid answer is dropped before costing a pass
    if scored:
        confidence = answer_confidence(
            lm,
            [rows.at[c.row, "prompt"] for c in scored],
            [c.rationale for c in scored],
            [list(rows.at[c.row, "order"]).index(c.answer) + 1 for c in scored],
        )
        for c, p in zip(scored, confidence, strict=True):
            c.confidence = float(p)
    return cands


def with_hints(prompt: list[dict], rationale: str) -> list[dict]:
    """The chat prompt with the rationale appended to its last user message as a reference."""
    last = dict(prompt[-1], content=prompt[-1]["content"] + HINT.format(rationale=rationale))
    return [*prompt[:-1], last]
