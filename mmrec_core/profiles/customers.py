"""A customer as an analyst reads them: training history in profile blocks, the summaries, the drift.

Everything here reads what `profiles.build_profiles` stored; nothing calls a model. The held-out
valid/test items are returned separately and marked as such: they are never part of a profile.
"""

from __future__ import annotations

import json

import pandas as pd

from mmrec_core.grounding.claims import Evidence, Grounding, check
from mmrec_core.profiles.specific import running_weights
from mmrec_core.store.database import Store
from mmrec_core.textualize.texts import item_evidence, item_keywords


def customer_list(store: Store, dataset: str, protocol_id: str, query: str = "", limit: int = 500) -> pd.DataFrame:
    """Customers whose id contains `query`, longest training history first.

    Columns: user_id, history (training items), held_out (valid/test targets), has_profile, flagged.
    """
    store.require_dataset(dataset)
    return store.train_history_lengths(dataset, protocol_id, query, limit)


def keyword_weights(blocks: list[list[str]], item_keywords: dict[str, list[str]], decay: float = 0.5, top: int = 8):
    """Per block, a decayed running weight per keyword: w_k = decay * w_(k-1) + share of block k's items with it.

    The decay mirrors the recurrent summary, which keeps the past but weighs what is new. Returns a long
    DataFrame (block, keyword, weight) of the `top` keywords by peak weight.
    """
    rows = [
        {"block": k, "keyword": w, "weight": v}
        for k, weights in enumerate(running_weights(blocks, item_keywords, decay), start=1)
        for w, v in weights.items()
    ]
    frame = pd.DataFrame(rows, columns=["block", "keyword", "weight"])
    keep = frame.groupby("keyword")["weight"].max().nlargest(top).index
    return frame[frame["keyword"].isin(keep)].reset_index(drop=True)


def customer_view(store: Store, dataset: str, protocol_id: str, user_id: str, block_size: int = 3) -> dict:
    """Everything the Customers page shows about one user.

    history: training items oldest first with block number (the stored chain's block size, else
    `block_size`) and image; held_out: valid/test items
    (never used for profiles); blocks: the stored chain of block summaries (empty before
    `mmrec profiles`); profile: the final summary or None; stale: the chain no longer covers the
    history (profiles need a re-run); weights: keyword weights per block (`keyword_weights`). Each
    block's `grounding` marks its summary's claims (checked now for summaries stored before grounding).
    """
    if not store.has_user(dataset, user_id):
        raise KeyError(f"Unknown customer '{user_id}' in data set '{dataset}': pick one from the list.")
    history = store.user_train_history(protocol_id, user_id)
    held = store.held_out(protocol_id, user_id)[["part", "seq", "item_id"]].reset_index(drop=True)
    chain = store.profile_blocks(dataset, protocol_id, user_id)
    if len(chain):
        block_size = json.loads(chain["params"].iloc[0]).get("block", block_size)
    images = store.items_with_images(dataset, sorted(set(history["item_id"]) | set(held["item_id"])))
    info = images.set_index("item_id")[["title", "category", "image_sha256", "ext"]]
    history = history.join(info, on="item_id")
    held = held.join(info, on="item_id")
    covered = [i for ids in chain["item_ids"] for i in ids]
    chain["grounding"] = _groundings(store, dataset, chain)
    history["block"] = [k // block_size + 1 for k in range(len(history))]
    blocks = [g["item_id"].tolist() for _, g in history.groupby("block")]
    return {
        "user_id": user_id,
        "history": history,
        "held_out": held,
        "blocks": chain,
        "profile": chain["summary"].iloc[-1] if len(chain) else None,
        "stale": bool(len(chain)) and covered != history["item_id"].tolist(),
        "weights": keyword_weights(blocks, item_keywords(store, dataset)),
    }


def _groundings(store: Store, dataset: str, chain: pd.DataFrame) -> list[Grounding]:
    column = chain["grounding"] if "grounding" in chain else [None] * len(chain)
    stored = [Grounding.from_json(g) if isinstance(g, str) else None for g in column]
    if all(g is not None for g in stored):
        return stored
    evidence = item_evidence(store, dataset)  # every item's texts: only for summaries older than grounding
    out, seen = [], []
    for g, summary, ids in zip(stored, chain["summary"], chain["item_ids"], strict=True):
        seen += list(ids)
        out.append(g or check(summary, Evidence.union(evidence[i] for i in seen if i in evidence)))
    return out
