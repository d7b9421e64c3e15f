"""Assemble the recommender's prompt from a user's context, and keep it within the model's context.

Layout (templates in `recommend.prompts`, version `REC_VERSION`): profile, last purchases, similar
customers' next items, then the candidate(s) LAST. The context part is identical for every
candidate, so yes/no scoring computes it once (engines/scoring.py). When a prompt is too long, the
oldest parts go first: the oldest purchases, then the least similar customers, then the profile's
first sentences. The candidate text is never cut; if it alone does not fit, that is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmrec_core.recommend import prompts
from mmrec_core.recommend.context import ItemLine, UserContext
from mmrec_core.recommend.prompts import rec_text

TokenCounter = Callable[[str], int]  # tokens of the rendered prompt (chat template and system included)


@dataclass
class RecPrompt:
    """A prompt split at the candidate: `prefix + suffixes[i]` is the user message for candidate i."""

    prefix: str
    suffixes: list[str]
    order: list[str]  # item ids in the order their suffixes (pointwise) or numbers (listwise) appear
    trimmed: dict = field(default_factory=dict)  # how much context was dropped to fit
    version: str = prompts.REC_VERSION

    def full(self, i: int = 0) -> str:
        return self.prefix + self.suffixes[i]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def context_text(ctx: UserContext, keep_history: int, keep_similar: int, drop_sentences: int = 0) -> str:
    """The shared context: profile, the newest `keep_history` purchases, the `keep_similar` most similar users."""
    parts = []
    profile = " ".join(_sentences(ctx.profile)[drop_sentences:])
    if profile:
        parts.append(rec_text(prompts.REC_PROFILE, ctx.domain, profile=profile))
    history = ctx.history[len(ctx.history) - keep_history :] if keep_history else []
    if history:
        parts.append(rec_text(prompts.REC_HISTORY, ctx.domain, items="\n".join(f"- {h.text()}" for h in history)))
    similar = ctx.similar[:keep_similar]
    if similar:
        parts.append(rec_text(prompts.REC_SIMILAR, ctx.domain, items="\n".join(f"- {s.text()}" for s in similar)))
    return "".join(parts)


def fit_prefix(ctx: UserContext, longest_suffix: str, count: TokenCounter, max_tokens: int) -> tuple[str, dict]:
    """The longest context that, followed by `longest_suffix`, stays within `max_tokens`; and what was cut."""
    keep_h, keep_s, drop = len(ctx.history), len(ctx.similar), 0
    n_sentences = len(_sentences(ctx.profile))
    while True:
        prefix = context_text(ctx, keep_h, keep_s, drop)
        if count(prefix + longest_suffix) <= max_tokens:
            cut = {"history": len(ctx.history) - keep_h, "similar": len(ctx.similar) - keep_s}
            cut["profile_sentences"] = drop
            return prefix, {k: v for k, v in cut.items() if v}
        if keep_h > 0:
            keep_h -= 1
        elif keep_s > 0:
            keep_s -= 1
        elif drop < n_sentences:
            drop += 1
        else:
            raise ValueError(
                f"The candidate text alone needs more than {max_tokens} prompt tokens; raise max_prompt_tokens "
                "(it must stay within the model's context) or shorten the item's keywords."
            )


def pointwise_prompt(
    ctx: UserContext, candidates: Sequence[ItemLine], count: TokenCounter, max_tokens: int
) -> RecPrompt:
    """One yes/no question per candidate behind the shared context."""
    if not candidates:
        raise ValueError("No candidates to score.")
    suffixes = [rec_text(prompts.REC_POINTWISE, ctx.domain, candidate=c.text()) for c in candidates]
    prefix, cut = fit_prefix(ctx, max(suffixes, key=len), count, max_tokens)
    return RecPrompt(prefix, suffixes, [c.item_id for c in candidates], cut)


def shuffled(items: Sequence[ItemLine], user_id: str, seed: int) -> list[ItemLine]:
    """Candidates in a seeded order per user: stored lists put the positive first, the model must not learn that."""
    salt = int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16)
    order = np.random.default_rng([seed, salt]).permutation(len(items))
    return [items[i] for i in order]


def listwise_prompt(
    ctx: UserContext, candidates: Sequence[ItemLine], count: TokenCounter, max_tokens: int, seed: int = 0
) -> RecPrompt:
    """All candidates numbered 1..N in a seeded shuffled order; the model answers with a number."""
    if not candidates:
        raise ValueError("No candidates to rank.")
    shown = shuffled(candidates, ctx.user_id, seed)
    listing = "\n".join(f"[{n}] {c.text()}" for n, c in enumerate(shown, start=1))
    suffix = rec_text(prompts.REC_LISTWISE, ctx.domain, candidates=listing)
    prefix, cut = fit_prefix(ctx, suffix, count, max_tokens)
    return RecPrompt(prefix, [suffix], [c.item_id for c in shown], cut)


def explain_prompt(
    ctx: UserContext, candidate: ItemLine, count: TokenCounter, max_tokens: int, evidence: str = ""
) -> RecPrompt:
    """Ask for a short rationale about one candidate (pointwise mode has no reasoning of its own); with
    `evidence` (verifiable facts found without the LLM), ask it to cite one of them."""
    if evidence:
        suffix = rec_text(prompts.REC_EXPLAIN_EVIDENCE, ctx.domain, candidate=candidate.text(), evidence=evidence)
    else:
        suffix = rec_text(prompts.REC_EXPLAIN, ctx.domain, candidate=candidate.text())
    prefix, cut = fit_prefix(ctx, suffix, count, max_tokens)
    return RecPrompt(prefix, [suffix], [candidate.item_id], cut)
