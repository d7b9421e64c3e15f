"""Instruction-tuning data for the LLM recommender, from TRAINING interactions only (stage 5).

The prompts are the recommender's own (`recommend_prompt.py`), so what the model learns is what it
is asked at inference. A training example for user u predicts one of u's TRAINING items from the
items before it (`ContextBuilder.context(user, cut)`): the profile summary of the blocks that end
before the target, similar customers found from that prefix. Valid and test items never appear
(the valid item selects checkpoints elsewhere). Tasks, mixed by ratios:

- yesno: the pointwise question on the target (Yes) and on sampled non-purchased items (No), balanced;
- pick: the listwise prompt with the target among sampled items; the answer names its number after a
  rationale written from evidence the data supports (keywords the target shares with the history);
- recon: keyword reconstruction, the catalog text of an item from its keywords (MMSRARec);
- summary: preference summarization of a block of purchases: the stored block summary that ends before the
  target (grounded and specific, `profiles.build`) asked as the profile builder asks, else a target built from
  the last three items' keywords by facet (grounded: every word comes from the items).

Examples are conversational prompt-completion rows (TRL's format): `prompt` = system + user
messages, `completion` = the assistant's answer, so SFT puts the loss on the answer tokens only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import numpy as np
import pandas as pd

from mmrec_core.finetune.configs import TrainDataConfig
from mmrec_core.profiles.build import block_prompt
from mmrec_core.profiles.prompts import PROFILE_FIRST
from mmrec_core.recommend import prompts
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.prompt import TokenCounter, listwise_prompt, pointwise_prompt
from mmrec_core.recommend.prompts import rec_text
from mmrec_core.textualize.keywords import facet_of
from mmrec_core.textualize.prompts import RECONSTRUCT
from mmrec_core.textualize.texts import item_lines


def _chat(user_text: str, answer: str, system: str | None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {
        "prompt": messages + [{"role": "user", "content": user_text}],
        "completion": [{"role": "assistant", "content": answer}],
    }


class TrainDataBuilder:
    """Builds the task mix for one protocol; `count` measures prompts as the model's tokenizer does."""

    def __init__(self, builder: ContextBuilder, count: TokenCounter, config: TrainDataConfig | None = None) -> None:
        self.builder, self.count = builder, count
        self.system = rec_text(prompts.REC_SYSTEM, builder.domain)  # as the recommender is asked at inference
        self.config = config or TrainDataConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self._item_lines: dict[str, str] | None = None
        data = builder.data
        # (user, cut): predict training item `cut` from the `cut` items before it
        self.targets = [
            (u, cut)
            for u, seq in data.sequences.items()
            for cut in range(max(1, len(seq) - self.config.targets_per_user), len(seq))
        ]
        if not self.targets:
            raise ValueError("No user has two or more training interactions: nothing to learn from.")

    def build(self) -> pd.DataFrame:
        """All examples with columns prompt, completion, task, user_id, item_id, cut (shuffled, seeded).

        `cut`: how many of the user's training items the prompt's context may see (-1 for recon).
        """
        counts = self.config.counts()
        rows = (
            self._yesno(counts["yesno"])
            + self._pick(counts["pick"])
            + self._recon(counts["recon"])
            + self._summary(counts["summary"])
        )
        frame = pd.DataFrame(rows, columns=["prompt", "completion", "task", "user_id", "item_id", "cut"])
        return frame.sample(frac=1.0, random_state=self.config.seed).reset_index(drop=True)

    def provenance(self) -> dict:
        return {"prompt_version": prompts.REC_VERSION, **asdict(self.config), **self.builder.provenance()}

    # -- tasks --------------------------------------------------------------------------------------
    def _draw_targets(self, n: int) -> list[tuple[str, int]]:
        picks = self.rng.choice(len(self.targets), size=n, replace=n > len(self.targets))
        chosen = [self.targets[i] for i in picks]
        self.builder.prepare_similar([u for u, _ in chosen], dict(chosen))  # one user, one cut per batch
        return chosen

    def _negatives(self, user: str, k: int) -> list[str]:
        """k items the user never bought in training (uniform; held-out items are not looked at)."""
        data = self.builder.data
        bought = set(data.sequences[user])
        out: list[int] = []
        while len(out) < k:
            i = int(self.rng.integers(data.n_items))
            if i not in bought and i not in out:
                out.append(i)
        return [str(data.item_ids[i]) for i in out]

    def _target(self, user: str, cut: int) -> str:
        return str(self.builder.data.item_ids[self.builder.data.sequences[user][cut]])

    def _yesno(self, n: int) -> list[dict]:
        rows = []
        for user, cut in self._draw_targets((n + 1) // 2):
            ctx = self.builder.context(user, cut)
            for item, answer in ((self._target(user, cut), "Yes"), (self._negatives(user, 1)[0], "No")):
                if len(rows) == n:
                    break
                # cut an over-budget candidate as the recommender does, so training prompts match scoring ones
                p = pointwise_prompt(
                    ctx, [self.builder.line(item)], self.count, self.config.max_prompt_tokens, truncate=True
                )
                chat = _chat(p.full(), answer, self.system)
                rows.append({**chat, "task": "yesno", "user_id": user, "item_id": item, "cut": cut})
        return rows

    def _pick(self, n: int) -> list[dict]:
        rows = []
        for user, cut in self._draw_targets(n):
            ctx = self.builder.context(user, cut)
            target = self._target(user, cut)
            items = [target, *self._negatives(user, self.config.pick_candidates - 1)]
            lines = [self.builder.line(i) for i in items]
            p = listwise_prompt(
                ctx, lines, self.count, self.config.max_prompt_tokens, seed=self.config.seed + cut, truncate=True
            )
            number = p.order.index(target) + 1
            rationale = self._rationale(ctx, target, number)
            answer = f"<think>{rationale}</think><answer>{number}</answer>"
            rows.append(
                {
                    **_chat(p.full(), answer, self.system),
                    "task": "pick",
                    "user_id": user,
                    "item_id": target,
                    "cut": cut,
                    "order": p.order,  # candidates as numbered in the prompt (GRPO checks answers against it)
                    "rationale": rationale,
                }
            )
        return rows

    def pick_examples(self, n: int) -> pd.DataFrame:
        """n pick-one-of-N examples with the shown `order` and the evidence `rationale` (GRPO's prompts)."""
        return pd.DataFrame(self._pick(n))

    def _rationale(self, ctx, target: str, number: int) -> str:
        """A rationale the data supports: keywords the target shares with the customer's recent purchases."""
        line = self.builder.line(target)
        recent = Counter(k for h in ctx.history for k in set(h.keywords))
        shared = [k for k in line.keywords if recent[k]][:4]
        if shared:
            words = ", ".join(shared)
            return f"Recent purchases were often {words}; candidate {number}, {line.title}, is {words} too."
        return f"Candidate {number}, {line.title}, fits the customer's profile best."

    def _recon(self, n: int) -> list[dict]:
        items = self.builder.ws.store.items(self.builder.dataset).set_index("item_id")
        usable = [i for i in items.index if self.builder.keywords.get(i) and (items.at[i, "text"] or "").strip()]
        rows = []
        for i in self.rng.choice(len(usable), size=min(n, len(usable)), replace=False) if usable else []:
            item = usable[i]
            prompt = RECONSTRUCT.format(self.builder.domain, keywords=", ".join(self.builder.keywords[item]))
            target = str(items.at[item, "text"]).strip()
            rows.append(
                {**_chat(prompt, target, system=None), "task": "recon", "user_id": "", "item_id": item, "cut": -1}
            )
        return rows

    def _summary(self, n: int) -> list[dict]:
        """The stored block summary before the target (grounded and specific: `profiles.build`), asked as the
        profile builder asks; without one, a summary of the last three items built from their keywords."""
        rows = []
        for user, cut in self._draw_targets(n):
            seq = [str(self.builder.data.item_ids[i]) for i in self.builder.data.sequences[user][:cut]]
            steps = [(end, text) for end, text in self.builder.chains.get(user, []) if end <= cut]
            if steps and steps[-1][1].strip():
                start, previous = (steps[-2][0], steps[-2][1]) if len(steps) > 1 else (0, None)
                items, target = seq[start : steps[-1][0]], steps[-1][1]
                prompt = block_prompt(previous or None, items, self._lines(), self.builder.domain)
            else:
                items = seq[-3:]
                listing = "\n".join(f"- {self.builder.line(i).text()}" for i in items)
                prompt = PROFILE_FIRST.format(self.builder.domain, items=listing)
                target = grounded_summary([self.builder.line(i).keywords for i in items], self.builder.categories)
            rows.append(
                {
                    **_chat(prompt, target, system=PROFILE_FIRST.system_for(self.builder.domain)),
                    "task": "summary",
                    "user_id": user,
                    "item_id": items[-1],
                    "cut": cut,
                }
            )
        return rows

    def _lines(self) -> dict[str, str]:
        if self._item_lines is None:  # the profile builder's item lines, read once
            self._item_lines = item_lines(self.builder.ws.store, self.builder.dataset)
        return self._item_lines


def grounded_summary(keyword_sets: list[list[str]], categories: dict[str, str]) -> str:
    """Two sentences naming the most frequent product types, colours and materials of the items."""
    cats = sorted({c.lower() for c in categories.values() if c}, key=len, reverse=True)
    count: dict[str, Counter] = {"category": Counter(), "colour": Counter(), "material": Counter(), "other": Counter()}
    for words in keyword_sets:
        for w in set(words):
            facet = facet_of(w, cats)
            count[facet if facet in count else "other"][w] += 1
    top = {f: [w for w, _ in c.most_common(3)] for f, c in count.items()}
    first = f"This customer buys {', '.join(top['category']) or 'varied items'}"
    first += f" in {', '.join(top['colour'])}." if top["colour"] else "."
    second = []
    if top["material"]:
        second.append(f"materials such as {', '.join(top['material'])}")
    if top["other"]:
        second.append(f"styles like {', '.join(top['other'])}")
    return first + (f" They prefer {' and '.join(second)}." if second else "")
