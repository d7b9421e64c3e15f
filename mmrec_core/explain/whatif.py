"""What-if scenarios: a customer's context edited by hand, the yes/no scores and ranks before and after.

A merchandiser replaces the profile text, leaves out shown purchases, adds purchases or changes a candidate's
keywords, and sees how the model's scores move. The edit only ever reaches a prompt: the customer's stored
profile is never written. A scenario is stored (table `scenarios`) only when saved by name, with the scores it
produced and the recommender's provenance, so a saved experiment says which model and prompts it came from.
Scores are always pointwise yes/no (as in `explain.attribution`), whatever mode the page recommends in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from mmrec_core.core.provenance import Provenance
from mmrec_core.explain.attribution import rank_of
from mmrec_core.recommend.context import ContextBuilder, ItemLine, UserContext
from mmrec_core.recommend.llm import LLMRecommender
from mmrec_core.recommend.prompt import RecPrompt
from mmrec_core.store.workspace import Workspace

COLUMNS = ["item_id", "title", "score", "rank", "new_score", "new_rank", "change"]


def _ids(values: Any) -> list[str]:
    """Item ids or keywords as typed in a form: stripped, blanks dropped; one string is split at commas."""
    values = values.split(",") if isinstance(values, str) else values or []
    return [str(v).strip() for v in values if str(v).strip()]


@dataclass
class Scenario:
    """The edits of one experiment; an empty one changes nothing."""

    profile: str | None = None  # replacement profile text (None: unchanged, '': no profile)
    remove: list[str] = field(default_factory=list)  # shown purchases (item ids) to leave out
    add: list[str] = field(default_factory=list)  # item ids added as the newest purchases, in this order
    keywords: dict[str, list[str]] = field(default_factory=dict)  # candidate id -> keywords shown instead

    def __post_init__(self) -> None:  # ids typed in a form arrive with spaces; blank keywords show nothing
        self.remove, self.add = _ids(self.remove), _ids(self.add)
        self.keywords = {str(k).strip(): _ids(v) for k, v in self.keywords.items()}

    def is_empty(self) -> bool:
        return self.profile is None and not (self.remove or self.add or self.keywords)

    def to_json(self) -> dict:
        return {"profile": self.profile, "remove": self.remove, "add": self.add, "keywords": self.keywords}

    @classmethod
    def from_json(cls, data: dict) -> Scenario:
        unknown = set(data) - {"profile", "remove", "add", "keywords"}
        if unknown:
            raise ValueError(f"Unknown scenario field(s) {sorted(unknown)}; use profile, remove, add, keywords.")
        return cls(data.get("profile"), data.get("remove") or [], data.get("add") or [], data.get("keywords") or {})


@dataclass
class WhatIf:
    """Every candidate's score and rank with the customer's real context and with the edited one."""

    user_id: str
    table: pd.DataFrame  # COLUMNS, best new rank first
    scenario: Scenario
    prompt_before: RecPrompt
    prompt_after: RecPrompt  # what the model read with the edits (the page shows it)


def apply(ctx: UserContext, scenario: Scenario, builder: ContextBuilder, n_history: int | None = None) -> UserContext:
    """`ctx` with the scenario's profile and purchase edits (a copy; `ctx` untouched).

    A removed purchase's line goes without an older one sliding in, so the change is that purchase alone;
    added purchases are the newest, and the shown history keeps the `n_history` newest lines
    (default: the builder's). Candidate keywords are not part of the context (`what_if` edits them).
    """
    shown = {line.item_id for line in ctx.history}
    missing = [i for i in scenario.remove if i not in shown]
    if missing:
        raise ValueError(
            f"Purchase(s) {missing} are not among the purchases shown for {ctx.user_id}; "
            f"remove one of: {', '.join(line.item_id for line in ctx.history) or '(none shown)'}."
        )
    unknown = [i for i in scenario.add if i not in builder.titles]
    if unknown:
        raise KeyError(f"Unknown item(s) {unknown} in data set '{builder.dataset}'; add items of its catalog.")
    gone = set(scenario.remove)
    history = [line for line in ctx.history if line.item_id not in gone] + [builder.line(i) for i in scenario.add]
    keep = builder.n_history if n_history is None else n_history
    history = history[max(len(history) - keep, 0) :] if keep > 0 else []
    bought = [i for i in ctx.bought if i not in gone] + list(scenario.add)
    profile = ctx.profile if scenario.profile is None else scenario.profile
    similar, notes = list(ctx.similar), list(ctx.notes)  # copies: the caller's context stays as it was
    return replace(ctx, profile=profile, history=history, bought=bought, similar=similar, notes=notes)


def what_if(
    recommender: LLMRecommender,
    user: str,
    candidates: list[str],
    scenario: Scenario,
    before: dict[str, float] | None = None,
) -> WhatIf:
    """Score `candidates` for `user` with the real context and with `scenario` applied.

    `before`: the yes/no scores already shown for these candidates (the original prompt is then not scored
    again). The edited prompt is built like the recommender's own (same order, budget, cleaner), so an empty
    scenario gives the same prompt and the same scores.
    """
    rec, builder = recommender.pointwise(), recommender.builder
    candidates = list(dict.fromkeys(candidates))
    ctx, prompt_before = rec.prepare(user, candidates)
    stray = [i for i in scenario.keywords if i not in candidates]
    if stray:
        raise ValueError(f"Keyword edits for {stray}, which are not among the candidates; edit a candidate's keywords.")
    edited = apply(ctx, scenario, builder, rec.config.n_history)
    lines = [
        ItemLine(i, line.title, scenario.keywords[i]) if i in scenario.keywords else line
        for i, line in ((i, builder.line(i)) for i in candidates)
    ]
    prompt_after = rec.prompt_for_lines(edited, lines)  # as the recommender builds its own (order, budget, cleaner)
    if before is None:
        old = rec.yes_no(prompt_before.prefix, prompt_before.suffixes, prompt_before.order)
    else:
        lacking = [i for i in candidates if i not in before]
        if lacking:
            raise ValueError(f"`before` has no score for candidate(s) {lacking[:5]}; pass every candidate's score.")
        old = {i: float(before[i]) for i in candidates}
    same = (prompt_after.prefix, prompt_after.suffixes) == (prompt_before.prefix, prompt_before.suffixes)
    # the same prompt scores the same: no second pass
    new = dict(old) if same else rec.yes_no(prompt_after.prefix, prompt_after.suffixes, prompt_after.order)
    rows = []
    for item in candidates:
        others_old = [s for i, s in old.items() if i != item]
        others_new = [s for i, s in new.items() if i != item]
        rows.append({
            "item_id": item, "title": builder.titles.get(item, item),
            "score": old[item], "rank": rank_of(old[item], others_old),
            "new_score": new[item], "new_rank": rank_of(new[item], others_new), "change": new[item] - old[item],
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values(["new_rank", "rank"], kind="stable")
    return WhatIf(user, table.reset_index(drop=True), scenario, prompt_before, prompt_after)


def save(ws: Workspace, recommender: LLMRecommender, user: str, name: str, result: WhatIf) -> None:
    """Store `result` as the customer's scenario `name` (replacing one of that name); never their profile."""
    name = (name or "").strip()
    if not name:
        raise ValueError("A scenario needs a name to be saved; type one (saving the same name replaces it).")
    if result.user_id != user:
        raise ValueError(f"This what-if was computed for customer {result.user_id}, not {user}; run it again.")
    builder = recommender.builder
    results = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in result.table.to_dict("records")
    ]
    provenance = Provenance.of(recommender.pointwise().provenance())
    ws.store.save_scenario(
        builder.dataset, builder.protocol_id, user, name, result.scenario.to_json(), results, provenance
    )
