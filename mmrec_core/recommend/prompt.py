"""Assemble the recommender's prompt from a user's context, and keep it within the model's context.

Layout (templates in `recommend.prompts`, version `REC_VERSION`): profile, last purchases, similar
customers' next items, then the candidate(s) LAST. The context part is identical for every
candidate, so yes/no scoring computes it once (engines/scoring.py). When a prompt is too long, the
oldest parts go first: the oldest purchases, then the least similar customers, then the profile's
first sentences. The candidate text is cut only with `truncate=True` (what the recommender asks for) and
only when it alone does not fit: such texts are cut to half the budget, so the context keeps the other
half, and the prompt notes which items were cut (`RecPrompt.trimmed`, `RecPrompt.notes`); without it, that
is an error naming the user and the item.

Every piece of item or user text passes `clean` (`core.safe_text.prompt_text`, or the engine tokenizer's
`PromptSanitizer`) on its way in: control tokens broken, line breaks folded. It is the identity on ordinary
text, so clean catalogs keep exactly the prompts (and version) they had.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmrec_core.core.prompts import Domain
from mmrec_core.core.safe_text import prompt_text
from mmrec_core.recommend import prompts
from mmrec_core.recommend.context import ItemLine, UserContext
from mmrec_core.recommend.prompts import rec_text

TokenCounter = Callable[[str], int]  # tokens of the rendered prompt (chat template and system included)
Cleaner = Callable[[str], str]  # item or user text -> text safe inside a prompt (`core.safe_text`)
TRUNCATED = "\u2026"  # ends a text cut to fit the budget, so the model (and a reader) sees it was cut


@dataclass
class RecPrompt:
    """A prompt split at the candidate: `prefix + suffixes[i]` is the user message for candidate i."""

    prefix: str
    suffixes: list[str]
    order: list[str]  # item ids in the order their suffixes (pointwise) or numbers (listwise) appear
    trimmed: dict = field(default_factory=dict)  # how much context was dropped (and which items cut) to fit
    version: str = prompts.REC_VERSION
    notes: list[str] = field(default_factory=list)  # what was cut, in words (items over the budget)

    def full(self, i: int = 0) -> str:
        return self.prefix + self.suffixes[i]


def profile_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def context_text(
    ctx: UserContext, keep_history: int, keep_similar: int, drop_sentences: int = 0, clean: Cleaner = prompt_text
) -> str:
    """The shared context: profile, the newest `keep_history` purchases, the `keep_similar` most similar users."""
    parts = []
    profile = " ".join(profile_sentences(clean(ctx.profile))[drop_sentences:])
    if profile:
        parts.append(rec_text(prompts.REC_PROFILE, ctx.domain, profile=profile))
    history = ctx.history[len(ctx.history) - keep_history :] if keep_history else []
    if history:
        listing = "\n".join(f"- {h.text(clean=clean)}" for h in history)
        parts.append(rec_text(prompts.REC_HISTORY, ctx.domain, items=listing))
    similar = ctx.similar[:keep_similar]
    if similar:
        listing = "\n".join(f"- {s.text(clean=clean)}" for s in similar)
        parts.append(rec_text(prompts.REC_SIMILAR, ctx.domain, items=listing))
    return "".join(parts)


def fit_prefix(
    ctx: UserContext,
    longest_suffix: str,
    count: TokenCounter,
    max_tokens: int,
    clean: Cleaner = prompt_text,
    items: Sequence[str] = (),
) -> tuple[str, dict]:
    """The longest context that, followed by `longest_suffix`, stays within `max_tokens`; and what was cut.

    `items`: the candidates the suffix shows, named in the error when even the bare suffix is too long.
    """
    keep_h, keep_s, drop = len(ctx.history), len(ctx.similar), 0
    n_sentences = len(profile_sentences(clean(ctx.profile)))
    while True:
        prefix = context_text(ctx, keep_h, keep_s, drop, clean)
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
            named = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            raise ValueError(
                f"The candidate text alone needs more than {max_tokens} prompt tokens (user {ctx.user_id}, "
                f"item(s) {named or 'unknown'}); raise max_prompt_tokens (it must stay within the model's context) "
                "or shorten the item's title or keywords."
            )


def _cut(text: str, limit: int) -> str:
    """`text` cut to its first `limit` characters, marked as cut."""
    return text[:limit].rstrip() + TRUNCATED


def fit_candidates(
    lines: Sequence[ItemLine],
    suffix_for: Callable[[Sequence[ItemLine]], str],
    count: TokenCounter,
    max_tokens: int,
    clean: Cleaner = prompt_text,
) -> tuple[list[ItemLine], dict[str, int]]:
    """`lines` as shown, with the texts cut to fit when the candidate part alone (`suffix_for(lines)`) is over
    `max_tokens`; and {item id: its full text's length in characters} for every line cut.

    The longest texts are cut to one common length, the longest that keeps the candidate part within half the
    budget (the customer's context keeps the rest), or within the whole budget when half cannot hold even the
    template. Lines that fit are returned untouched, so prompts that always fitted never change.
    """
    lines = list(lines)
    if count(suffix_for(lines)) <= max_tokens:
        return lines, {}
    texts = [line.text(clean=clean) for line in lines]

    def cut_to(limit: int) -> list[ItemLine]:
        return [
            ItemLine(line.item_id, _cut(text, limit), []) if len(text) > limit else line
            for line, text in zip(lines, texts, strict=True)
        ]

    for target in (max_tokens // 2, max_tokens):
        if count(suffix_for(cut_to(0))) > target:
            continue
        low, high = 0, max(len(t) for t in texts)  # binary search: the longest common length that fits
        while low < high:
            mid = (low + high + 1) // 2
            if count(suffix_for(cut_to(mid))) <= target:
                low = mid
            else:
                high = mid - 1
        cut = {line.item_id: len(text) for line, text in zip(lines, texts, strict=True) if len(text) > low}
        return cut_to(low), cut
    raise ValueError(
        f"Even cut to nothing, the candidate part of the prompt needs more than {max_tokens} tokens; "
        "raise max_prompt_tokens."
    )


def _noted(prompt: RecPrompt, cut: dict[str, int], max_tokens: int) -> RecPrompt:
    """`prompt` with the items whose text was cut recorded in `trimmed` and spelled out in `notes`."""
    if cut:
        prompt.trimmed["truncated"] = list(cut)
        prompt.notes += [
            f"item {item}: its text ({chars} characters) was cut to fit the {max_tokens}-token prompt budget"
            for item, chars in cut.items()
        ]
    return prompt


def pointwise_suffix(line: ItemLine, domain: Domain, clean: Cleaner = prompt_text) -> str:
    """The yes/no question about one candidate, as it follows the shared context."""
    return rec_text(prompts.REC_POINTWISE, domain, candidate=line.text(clean=clean))


def pointwise_prompt(
    ctx: UserContext,
    candidates: Sequence[ItemLine],
    count: TokenCounter,
    max_tokens: int,
    clean: Cleaner = prompt_text,
    truncate: bool = False,
) -> RecPrompt:
    """One yes/no question per candidate behind the shared context (`truncate`: cut texts over the budget)."""
    if not candidates:
        raise ValueError(f"No candidates to score for user {ctx.user_id}.")

    def suffixes_of(lines: Sequence[ItemLine]) -> list[str]:
        return [pointwise_suffix(c, ctx.domain, clean) for c in lines]

    cut: dict[str, int] = {}
    if truncate:
        longest = lambda lines: max(suffixes_of(lines), key=len)  # noqa: E731 (the one that must fit)
        candidates, cut = fit_candidates(candidates, longest, count, max_tokens, clean)
    suffixes = suffixes_of(candidates)
    ids = [c.item_id for c in candidates]
    prefix, trimmed = fit_prefix(ctx, max(suffixes, key=len), count, max_tokens, clean, ids)
    return _noted(RecPrompt(prefix, suffixes, ids, trimmed), cut, max_tokens)


def shuffled(items: Sequence[ItemLine], user_id: str, seed: int) -> list[ItemLine]:
    """Candidates in a seeded order per user: stored lists put the positive first, the model must not learn that."""
    salt = int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16)
    order = np.random.default_rng([seed, salt]).permutation(len(items))
    return [items[i] for i in order]


def listwise_prompt(
    ctx: UserContext,
    candidates: Sequence[ItemLine],
    count: TokenCounter,
    max_tokens: int,
    seed: int = 0,
    clean: Cleaner = prompt_text,
    truncate: bool = False,
) -> RecPrompt:
    """All candidates numbered 1..N in a seeded shuffled order; the model answers with a number.

    Each candidate is one line: `clean` folds a title's line breaks, so no title can add a numbered line.
    """
    if not candidates:
        raise ValueError(f"No candidates to rank for user {ctx.user_id}.")

    def suffix_of(lines: Sequence[ItemLine]) -> str:
        listing = "\n".join(f"[{n}] {c.text(clean=clean)}" for n, c in enumerate(lines, start=1))
        return rec_text(prompts.REC_LISTWISE, ctx.domain, candidates=listing)

    shown = shuffled(candidates, ctx.user_id, seed)
    cut: dict[str, int] = {}
    if truncate:
        shown, cut = fit_candidates(shown, suffix_of, count, max_tokens, clean)
    suffix = suffix_of(shown)
    ids = [c.item_id for c in shown]
    prefix, trimmed = fit_prefix(ctx, suffix, count, max_tokens, clean, ids)
    return _noted(RecPrompt(prefix, [suffix], ids, trimmed), cut, max_tokens)


_EVIDENCE = "\0evidence"  # the evidence's place in `fit_candidates` (no item id holds a NUL)


def explain_prompt(
    ctx: UserContext,
    candidate: ItemLine,
    count: TokenCounter,
    max_tokens: int,
    evidence: str = "",
    clean: Cleaner = prompt_text,
    truncate: bool = False,
) -> RecPrompt:
    """Ask for a short rationale about one candidate (pointwise mode has no reasoning of its own); with
    `evidence` (verifiable facts found without the LLM), ask it to cite one of them."""

    def suffix_of(lines: Sequence[ItemLine]) -> str:
        if len(lines) > 1:  # the evidence names other items' titles: it may be cut like the candidate
            text = lines[0].text(clean=clean)
            return rec_text(
                prompts.REC_EXPLAIN_EVIDENCE, ctx.domain, candidate=text, evidence=lines[1].text(clean=clean)
            )
        return rec_text(prompts.REC_EXPLAIN, ctx.domain, candidate=lines[0].text(clean=clean))

    lines = [candidate, ItemLine(_EVIDENCE, evidence, [])] if evidence else [candidate]
    cut: dict[str, int] = {}
    if truncate:
        lines, cut = fit_candidates(lines, suffix_of, count, max_tokens, clean)
    suffix = suffix_of(lines)
    prefix, trimmed = fit_prefix(ctx, suffix, count, max_tokens, clean, [candidate.item_id])
    cut = {("evidence" if item == _EVIDENCE else item): chars for item, chars in cut.items()}
    return _noted(RecPrompt(prefix, [suffix], [candidate.item_id], trimmed), cut, max_tokens)
