"""How specific and how distinct the stored user profiles are: a quality signal for researchers.

Specificity: a good profile is closer (sentence-embedding cosine) to the items the user bought LATER
(the protocol's held-out valid/test items, which the profile never saw) than to the held-out items
of random other users. We report both similarities, their gap, and an AUC: the share of
(user, random other user) pairs where the own items are closer (0.5 = no better than chance).

Distinctness: profiles that all read alike carry no signal. We report the share of users whose
profile has a near-identical twin (cosine >= `near`), the share of exact duplicate texts, and the
mean pairwise cosine.

Grounding: how many of the terms that recur in the user's training items (`profiles.specific.scaffold`) the
text names, and the share of its claims that the training items do not support.

The same figures for a no-LLM baseline (the user's training item texts, joined) say whether the
LLM's summary adds anything over the raw history. Nothing is stored: this is a measuring stick.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec_core.data.splits import train_interactions
from mmrec_core.engines import Engine
from mmrec_core.grounding.claims import Evidence, check
from mmrec_core.profiles.specific import (
    blocks_of,
    catalog_terms,
    named_terms,
    rarity,
    running_weights,
    scaffold,
    unit_rows,
)
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.texts import item_evidence, item_lines


@dataclass
class ProfileEvalConfig:
    n_random: int = field(
        default=20, metadata={"help": "Random other users each profile is compared with.", "flag": "random-users"}
    )
    near: float = field(default=0.95, metadata={"help": "Cosine at or above which two profiles are near-identical."})
    seed: int = field(default=0, metadata={"help": "Seed of the random users."})
    history_items: int = field(default=12, metadata={"help": "Most recent training items in the baseline's text."})


def final_profiles(ws: Workspace, dataset: str, protocol_id: str) -> pd.DataFrame:
    """user_id, summary, flag of each user's current profile (the last block summary)."""
    blocks = ws.store.profile_blocks(dataset, protocol_id)
    if blocks.empty:
        raise KeyError(f"No profiles stored for {dataset} ({protocol_id}); run `mmrec profiles {dataset}` first.")
    return blocks.loc[blocks["is_final"], ["user_id", "summary", "flag"]].reset_index(drop=True)


def specificity(profile_vecs: np.ndarray, heldout_vecs: list[np.ndarray], n_random: int, seed: int) -> dict:
    """Own vs random users' held-out similarity for aligned lists (row u of profile_vecs <-> heldout_vecs[u])."""
    rng = np.random.default_rng(seed)
    n = len(profile_vecs)
    own = np.array([float((heldout_vecs[u] @ profile_vecs[u]).mean()) for u in range(n)])
    rand_means, wins = [], []
    for u in range(n):
        others = rng.choice(np.delete(np.arange(n), u), size=min(n_random, n - 1), replace=False)
        sims = np.array([float((heldout_vecs[v] @ profile_vecs[u]).mean()) for v in others])
        rand_means.append(sims.mean())
        wins.append(((own[u] > sims) + 0.5 * (own[u] == sims)).mean())
    rand = np.array(rand_means)
    return {
        "users": n,
        "own_sim": float(own.mean()),
        "random_sim": float(rand.mean()),
        "gap": float((own - rand).mean()),
        "auc": float(np.mean(wins)),
    }


def distinctness(texts: list[str], vecs: np.ndarray, near: float) -> dict:
    """Share of near-identical twins, exact duplicate texts, and the mean pairwise cosine."""
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    n = len(texts)
    twins = (sims.max(axis=1) >= near).mean() if n > 1 else 0.0
    duplicates = 1 - len(set(texts)) / n if n else 0.0
    pairwise = sims[np.isfinite(sims)].mean() if n > 1 else float("nan")
    return {"near_identical": float(twins), "duplicate_texts": float(duplicates), "mean_pairwise": float(pairwise)}


def evaluate_profiles(
    ws: Workspace, engine: Engine, dataset: str, protocol_id: str, config: ProfileEvalConfig | None = None
) -> pd.DataFrame:
    """One row per representation (LLM profile, raw-history baseline) with specificity and distinctness."""
    config = config or ProfileEvalConfig()
    profiles = final_profiles(ws, dataset, protocol_id)
    usable = profiles[profiles["summary"].str.strip() != ""]
    heldout = ws.store.held_out(protocol_id)[["user_id", "item_id"]]
    heldout = heldout.groupby("user_id")["item_id"].apply(list)
    users = [u for u in usable["user_id"] if u in heldout.index]
    if len(users) < 2:
        raise ValueError(f"Only {len(users)} profiled user(s) have held-out items in {protocol_id}; need 2 or more.")
    texts = item_lines(ws.store, dataset)
    summary = usable.set_index("user_id")["summary"]
    train = train_interactions(ws.store, protocol_id)
    history = train.groupby("user_id")["item_id"].apply(list)
    baseline = ["; ".join(texts[i] for i in history[u][-config.history_items :]) for u in users]

    items = sorted({i for u in users for i in heldout[u]})
    item_vecs = dict(zip(items, unit_rows(engine.embed([texts[i] for i in items])), strict=True))
    heldout_vecs = [np.stack([item_vecs[i] for i in heldout[u]]) for u in users]
    evidence, b = item_evidence(ws.store, dataset), engine.settings.profile_block
    terms = catalog_terms(ws.store, dataset, evidence)
    rare = rarity(terms)
    scaffolds = [scaffold(running_weights(blocks_of(history[u], b), terms)[-1], rarity=rare) for u in users]
    known = [Evidence.union(evidence[i] for i in history[u] if i in evidence) for u in users]
    rows = []
    for name, docs in (("LLM profile", [summary[u] for u in users]), ("history text (no LLM)", baseline)):
        vecs = unit_rows(engine.embed(docs))
        rows.append(
            {
                "representation": name,
                **specificity(vecs, heldout_vecs, config.n_random, config.seed),
                **distinctness(docs, vecs, config.near),
                **grounding(docs, scaffolds, known),
            }
        )
    table = pd.DataFrame(rows)
    flags = profiles["flag"].dropna()
    table.attrs.update(
        profiled=len(profiles),
        flagged=int((~flags.str.startswith("scaffold")).sum()),
        scaffolded=int(flags.str.startswith("scaffold").sum()),
        evaluated=len(users),
    )
    return table


def grounding(docs: list[str], scaffolds: list[list[str]], evidence: list[Evidence]) -> dict:
    """Mean recurring terms named per text, and the share of claims the user's training items do not support."""
    named, claims, unsupported = [], 0, 0
    for doc, terms, known in zip(docs, scaffolds, evidence, strict=True):
        checked = check(doc, known)
        named.append(len(named_terms(doc, terms, checked)))
        claims, unsupported = claims + len(checked.claims), unsupported + len(checked.unsupported)
    return {"terms_named": float(np.mean(named)), "unsupported_claims": unsupported / claims if claims else 0.0}
