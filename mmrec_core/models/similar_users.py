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
def _prefix_states(model: SASRec, sequences: list[list[int]], batch_size: int = 512) -> list[np.ndarray]:
    """Per sequence, the unit hidden state after each of its prefixes (causal attention: position t sees
    items 0..t), computed in batches."""
    out = []
    for first in range(0, len(sequences), batch_size):
        chunk = [seq[-model.config.max_len :] for seq in sequences[first : first + batch_size]]
        states = _unit(model.net(model._pad(chunk)).numpy())
        out += [states[r, states.shape[1] - len(seq) :] for r, seq in enumerate(chunk)]
    return out


def similar_user_context(
    model: SASRec,
    data: TrainData,
    users: list[str],
    k: int = 3,
    queries: dict[str, list[int]] | None = None,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Per user: k similar users with cosine, their matching position and the item they bought next.

    Columns: user_id, rank (1 = most similar), similar_user, cosine, match_pos, next_item (item id).
    Users and neighbours come from `data.sequences` (training interactions); a neighbour whose
    sequence has a single item has no 'next' item and is skipped in favour of the next neighbour.
    `queries` replaces a user's own sequence as the query (a training example cut before its target).
    Users go in batches, so memory stays at batch_size x users however many customers there are.
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
    query_vectors = _unit(model.user_vectors([own.get(u, data.sequences[u]) for u in users]))
    picked: list[tuple[int, int, float]] = []  # (user row, neighbour column, cosine), best first per user
    for first in range(0, len(users), batch_size):
        sims = query_vectors[first : first + batch_size] @ vectors.T
        for r, user in enumerate(users[first : first + batch_size]):
            if user in position:
                sims[r, position[user]] = -np.inf  # never yourself
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k] if len(everyone) > k else None
        for r in range(len(sims)):
            cols = np.arange(sims.shape[1]) if top is None else top[r]
            cols = cols[np.argsort(-sims[r, cols], kind="stable")][:k]
            picked += [(first + r, int(c), float(sims[r, c])) for c in cols if np.isfinite(sims[r, c])]
    neighbours = sorted({c for _, c, _ in picked})
    prefix_states = _prefix_states(model, [data.sequences[everyone[c]] for c in neighbours])
    states = dict(zip(neighbours, prefix_states, strict=True))
    rows, rank = [], {}
    for row, col, cosine in picked:
        seq = data.sequences[everyone[col]][-model.config.max_len :]
        match = int(np.argmax(states[col][:-1] @ query_vectors[row]))  # the last prefix has no next item
        rank[row] = rank.get(row, 0) + 1
        rows.append(
            {
                "user_id": users[row],
                "rank": rank[row],
                "similar_user": everyone[col],
                "cosine": cosine,
                "match_pos": match,
                "next_item": data.item_ids[seq[match + 1]],
            }
        )
    return pd.DataFrame(rows, columns=["user_id", "rank", "similar_user", "cosine", "match_pos", "next_item"])


def retrieval_quality(model: SASRec, data: TrainData, k: int = 3) -> dict:
    """How often similar customers point at the right next item, on the VALID part (test stays unseen).

    hit_rate: share of valid users for whom one of their k similar users' next items is their own valid
    item; precision: share of all (user, similar user) pairs that do; popular_hit_rate: the same hit rate
    for the k most popular training items, the floor to beat.
    """
    part = data.parts["valid"]
    users = [u for u in part.users if u in data.sequences]
    truth = dict(zip(part.users, data.item_ids[part.items[:, 0]], strict=True))
    context = similar_user_context(model, data, users, k)
    hits = context["next_item"].to_numpy() == context["user_id"].map(truth).to_numpy()
    per_user = pd.Series(hits).groupby(context["user_id"].to_numpy()).any()
    counts = data.item_counts()
    popular = set(data.item_ids[np.argsort(-counts, kind="stable")[:k]])
    return {
        "users": len(users),
        "hit_rate": float(per_user.reindex(users, fill_value=False).mean()) if users else 0.0,
        "precision": float(hits.mean()) if len(hits) else 0.0,
        "popular_hit_rate": float(np.mean([truth[u] in popular for u in users])) if users else 0.0,
    }


def with_keywords(store: Store, dataset: str, context: pd.DataFrame) -> pd.DataFrame:
    """Add the next item's title and keywords (newest keyword set; its category before textualization)."""
    titles = store.items(dataset).set_index("item_id")["title"]
    keywords = item_keywords(store, dataset)
    out = context.copy()
    out["title"] = [titles[i] for i in out["next_item"]]
    out["keywords"] = [keywords.get(i, []) for i in out["next_item"]]
    return out
