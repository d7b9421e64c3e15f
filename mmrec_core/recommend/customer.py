"""What the Recommend page and `mmrec score` share: candidate sets, scoring one customer, the result table.

Candidates come from the protocol's stored test list (1 positive + the stored negatives), from the
top of a trained model over the whole catalog (the customer's history left out), or by hand. The
result joins the LLM's scores and rationales with the evidence computed without the LLM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.evidence import EvidenceFinder, unsupported_texts
from mmrec_core.recommend.llm import LLMRecommender, Recommendation
from mmrec_core.recommend.rationale import settle
from mmrec_core.store.workspace import Workspace

SOURCES = ("stored test candidates", "top of another model", "chosen by hand")
MODEL_TOP = 20  # candidates taken from the top of a trained model, unless asked for more or fewer


def stored_candidates(builder: ContextBuilder, user: str) -> list[str]:
    """The protocol's stored candidates of `user` for the builder's part (positive first)."""
    builder.input_history(user)  # an unknown customer is named as such
    if user not in builder.inputs:
        raise KeyError(
            f"Customer '{user}' has no stored {builder.part} candidates (fewer purchases than the protocol's "
            "minimum); pick candidates from a model or by hand."
        )
    return builder.candidates(user)


def choose_candidates(
    ws: Workspace,
    builder: ContextBuilder,
    user: str,
    source: str = SOURCES[0],
    method: str | None = None,
    top: int = MODEL_TOP,
    items: Sequence[str] = (),
) -> tuple[list[str], str]:
    """One customer's candidates from one of `SOURCES`, and how they were chosen (as the page and CLI say it).

    `method` and `top` are for the top of a trained model, `items` for candidates chosen by hand.
    """
    if source == SOURCES[0]:
        return stored_candidates(builder, user), f"stored {builder.part} candidates"
    if source == SOURCES[1]:
        if not method:
            raise KeyError("No trained model yet: run `mmrec train sasrec` (or popularity, lightgcn) first.")
        return model_candidates(ws, builder, method, user, top), f"top {top} of {method}"
    if source == SOURCES[2]:
        return [i.strip() for i in items if i.strip()], "chosen by hand"
    raise ValueError(f"Unknown candidate source '{source}'; use one of: {', '.join(SOURCES)}.")


def held_out_item(builder: ContextBuilder, user: str) -> str | None:
    """The customer's held-out target of the builder's part (to mark it after scoring), if any."""
    return builder.candidates(user)[0] if user in builder.inputs else None


def model_candidates(ws: Workspace, builder: ContextBuilder, method: str, user: str, n: int = MODEL_TOP) -> list[str]:
    """The top `n` items of the newest trained `method` for `user`, items in the input history left out."""
    from mmrec_core.models.registry import load_trained

    model, _ = load_trained(ws, builder.dataset, method, builder.protocol_id)
    index = builder.data.index()
    history = [index[i] for i in builder.input_history(user)]
    scores = model.score([user], [history])[0].astype(np.float64)
    scores[history] = -np.inf
    top = np.argsort(-scores, kind="stable")[:n]
    return [str(builder.data.item_ids[i]) for i in top]


def trained_models(ws: Workspace, dataset: str, protocol_id: str) -> list[str]:
    """Methods with a trained model on this protocol (candidate sources for the page)."""
    return ws.store.trained_methods(dataset, protocol_id)


def score_customer(
    recommender: LLMRecommender,
    finder: EvidenceFinder,
    user: str,
    candidates: list[str],
    explain: int | None = None,
    progress: Progress | None = None,
) -> tuple[Recommendation, pd.DataFrame]:
    """Score, explain and gather evidence; the table is ranked best first.

    Columns: rank, item_id, title, score, rationale ('' when not explained; as `recommend.rationale.settle`
    leaves it), written (that `Rationale`: the LLM's text and what settling changed; None), flags (attributes the
    rationale names that the item lacks), grounding (the rationale's claims marked, None when not explained),
    cites (the evidence the rationale names: shared keywords, bought items; empty when it cites none),
    evidence (one line), evidence_detail (an `Evidence`).
    """
    titles = recommender.builder.titles
    cite = lambda ctx, item: finder.for_item(ctx, item).for_prompt(titles)  # noqa: E731 (what to cite)
    rec = recommender.recommend(user, candidates, explain=explain, progress=progress, evidence=cite)
    score = dict(zip(rec.candidates, rec.scores.tolist(), strict=True))
    rows = []
    for rank, item in enumerate(rec.ranking(), start=1):
        ev = finder.for_item(rec.context, item)
        written = settle(finder, rec.rationales[item], ev, rec.context) if rec.rationales.get(item) else None
        rationale = written.text if written else ""
        grounding = finder.rationale_grounding(rationale, item, rec.context) if rationale else None
        rows.append(
            {
                "rank": rank,
                "item_id": item,
                "title": recommender.builder.titles.get(item, item),
                "score": score[item],
                "rationale": rationale,
                "written": written,
                "flags": unsupported_texts(grounding) if grounding else [],
                "grounding": grounding,
                "cites": ev.cited_by(rationale, titles) if rationale else [],
                "evidence": ev.summary(),
                "evidence_detail": ev,
            }
        )
    return rec, pd.DataFrame(rows)
