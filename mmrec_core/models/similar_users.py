"""Similar-user retrieval and next-item context (MMSRARec, section 3.3), from training data only.

A trained SASRec encodes every user's TRAINING sequence; a user's k most similar users are the
highest-cosine other users. For each similar user v, the matching point is the position in v's own
training sequence whose prefix state is closest to the user's state; the item v bought right after
it is what "people like you bought next". Its keywords become context for the LLM prompt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmrec_core.models.data import TrainData
from mmrec_core.models.sasrec import SASRec
from mmrec_core.store.database import Store
from mmrec_core.textualize.texts import item_keywords


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@torch.no_grad()
def _prefix_states(model: SASRec, sequence: list[int]) -> np.ndarray:
    """Hidden state after each prefix of `sequence` (causal attention: position t sees items 0..t)."""
    seq = sequence[-model.config.max_len :]
    states = model.net(model._pad([seq]))[0, -len(seq) :]
    return states.numpy()


def similar_user_context(
    model: SASRec, data: TrainData, users: list[str], k: int = 3, queries: dict[str, list[int]] | None = None
) -> pd.DataFrame:
    """Per user: k similar users with cosine, their matching position and the item they bought next.

    Columns: user_id, rank (1 = most similar), similar_user, cosine, match_pos, next_item (item id).
    Users and neighbours come from `data.sequences` (training interactions); a neighbour whose
    sequence has a single item has no 'next' item and is skipped in favour of the next neighbour.
    `queries` replaces a user's own sequence as the query (a training example cut before its target).
    """
    if k < 1:
        raise ValueError("k (similar users) must be at least 1.")
    unknown = [u for u in users if u not in data.sequences]
    if unknown:
        raise KeyError(f"Unknown user(s) {unknown[:3]} (no training history in {data.protocol_id}).")
    everyone = [u for u, s in data.sequences.items() if len(s) >= 2]  # neighbours need a 'next' item
    position = {u: i for i, u in enumerate(everyone)}
    vectors = _unit(model.user_vectors([data.sequences[u] for u in everyone]))
    own = queries or {}
    queries = _unit(model.user_vectors([own.get(u, data.sequences[u]) for u in users]))
    sims = queries @ vectors.T
    rows = []
    for row, user in enumerate(users):
        if user in position:
            sims[row, position[user]] = -np.inf  # never yourself
        for rank, col in enumerate(np.argsort(-sims[row])[:k], start=1):
            other = everyone[col]
            seq = data.sequences[other][-model.config.max_len :]
            states = _unit(_prefix_states(model, seq))[:-1]  # the last prefix has no next item
            match = int(np.argmax(states @ queries[row]))
            rows.append(
                {
                    "user_id": user,
                    "rank": rank,
                    "similar_user": other,
                    "cosine": float(sims[row, col]),
                    "match_pos": match,
                    "next_item": data.item_ids[seq[match + 1]],
                }
            )
    return pd.DataFrame(rows, columns=["user_id", "rank", "similar_user", "cosine", "match_pos", "next_item"])


def with_keywords(store: Store, dataset: str, context: pd.DataFrame) -> pd.DataFrame:
    """Add the next item's title and keywords (newest keyword set; its category before textualization)."""
    titles = store.items(dataset).set_index("item_id")["title"]
    keywords = item_keywords(store, dataset)
    out = context.copy()
    out["title"] = [titles[i] for i in out["next_item"]]
    out["keywords"] = [keywords.get(i, []) for i in out["next_item"]]
    return out
