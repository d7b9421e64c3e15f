"""`mmrec eval-rationales`: are the LLM's rationales verifiable and grounded?

For a seeded subset of test users, the pointwise recommender scores the stored candidates and explains its
top few, each rationale prompted with the evidence found without the LLM and settled as the page shows it
(`recommend.rationale.settle`). Every rationale is then checked: does it cite a piece of that evidence
(`Evidence.cited_by`), and how many of its claims does the grounding checker find unsupported
(`EvidenceFinder.rationale_grounding`)? The same figures for the LLM's text as written ("LLM alone") show
how much settling did. Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mmrec_core.engines import Engine
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.customer import score_customer, stored_candidates
from mmrec_core.recommend.evidence import EvidenceFinder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol


def sample_users(test_users: Sequence[str], users: int, seed: int = 0) -> list[str]:
    """The seeded user sample of the rationale evaluations (the same users for the same size and seed)."""
    everyone = list(test_users)
    chosen = np.random.default_rng(seed).choice(everyone, size=min(users, len(everyone)), replace=False)
    return [str(u) for u in sorted(chosen)]


def evaluate_rationales(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    users: int = 20,
    config: RecommendConfig | None = None,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """(summary figures, one row per rationale: user, item, rationale, cites, unsupported claims)."""
    config = config or RecommendConfig()
    protocol = default_protocol(ws, dataset)
    builder = ContextBuilder.for_config(ws, dataset, protocol, config)
    finder, recommender = EvidenceFinder(builder), LLMRecommender(engine, builder, config)
    titles = builder.titles
    chosen = sample_users(builder.data.parts["test"].users, users, seed)
    rows = []
    for k, user in enumerate(chosen):
        rec, table = score_customer(recommender, finder, str(user), stored_candidates(builder, str(user)))
        for row in table[table["rationale"] != ""].itertuples():
            missing, written = row.grounding.unsupported, row.written
            raw = finder.rationale_grounding(written.raw, row.item_id, rec.context)
            rows.append({
                "user_id": user, "item_id": row.item_id, "rationale": row.rationale, "cites": "; ".join(row.cites),
                "claims": len(row.grounding.claims), "unsupported": ", ".join(c.text for c in missing),
                "n_unsupported": len(missing),
                "had evidence": bool(row.evidence_detail.for_prompt(builder.titles)),
                "raw": written.raw, "raw cites": bool(row.evidence_detail.cited_by(written.raw, titles)),
                "raw claims": len(raw.claims), "raw unsupported": len(raw.unsupported),
                "changed": "; ".join(written.notes()), "dropped": len(written.dropped), "added": bool(written.added),
            })  # fmt: skip
        if progress:
            progress(k + 1, len(chosen), f"{len(rows)} rationales")
    table = pd.DataFrame(rows)
    if table.empty:
        return {"users": len(chosen), "rationales": 0}, table
    claims = int(table["claims"].sum())
    summary = {
        "users": len(chosen),
        "rationales": len(table),
        "cite verified evidence": float((table["cites"] != "").mean()),
        "cite, where evidence exists": float((table.loc[table["had evidence"], "cites"] != "").mean())
        if table["had evidence"].any()
        else float("nan"),
        "claims per rationale": claims / len(table),
        "unsupported-claim rate": float(table["n_unsupported"].sum() / claims) if claims else 0.0,
        "rationales with one": float((table["n_unsupported"] > 0).mean()),
        "LLM alone: cite evidence": float(table["raw cites"].mean()),
        "LLM alone: unsupported rate": float(table["raw unsupported"].sum() / max(int(table["raw claims"].sum()), 1)),
        "sentences removed": int(table["dropped"].sum()),
        "evidence sentence added": float(table["added"].mean()),
    }
    return summary, table
