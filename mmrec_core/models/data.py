"""What every model trains and is evaluated on: item index, training sequences, and the stored candidates.

Built from one protocol. Training sequences are `splits.train_interactions` only. The input history
for scoring part 'valid' is the training sequence; for part 'test' it is the training sequence plus
the valid item (known by then, never trained on): the usual leave-one-out convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec_core.data.splits import candidates, train_interactions
from mmrec_core.store.database import Store


@dataclass
class Candidates:
    """One part's evaluation lists: row u holds the positive (column 0) and the stored negatives."""

    users: list[str]
    items: np.ndarray  # (n_users, 1 + n_neg) item indices, positive first
    is_repeat: np.ndarray  # (n_users,) the positive occurs earlier in the user's history
    histories: list[list[int]]  # model input per user (see module docstring)
    is_cold: np.ndarray | None = None  # (n_users,) the positive occurs in no training sequence


@dataclass
class TrainData:
    dataset: str
    protocol_id: str
    item_ids: np.ndarray  # index -> item id (catalog order)
    sequences: dict[str, list[int]]  # user -> training item indices, oldest first
    parts: dict[str, Candidates] = field(default_factory=dict)
    # inputs of the item-graph model, attached by `item_graph_inputs.attach` (None for other models)
    item_features: np.ndarray | None = None  # (n_items, d) item text embeddings
    user_features: dict[str, np.ndarray] | None = None  # profile embeddings (training data only)
    edges: pd.DataFrame | None = None  # refined item graph: src, dst (item indices), weight

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_counts(self) -> np.ndarray:
        """(n_items,) how often each item occurs in the training sequences (0: a cold item)."""
        counts = np.zeros(self.n_items, dtype=np.int64)
        for seq in self.sequences.values():
            np.add.at(counts, seq, 1)
        return counts

    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}


def load_train_data(store: Store, dataset: str, protocol_id: str) -> TrainData:
    """The protocol's training sequences and its valid/test candidate lists, as item indices."""
    store.require_dataset(dataset)
    item_ids = pd.Series(store.item_ids(dataset), dtype=object)
    index = {item: i for i, item in enumerate(item_ids)}
    train = train_interactions(store, protocol_id)
    sequences = {u: [index[i] for i in g["item_id"]] for u, g in train.groupby("user_id", sort=True)}
    data = TrainData(dataset, protocol_id, item_ids.to_numpy(dtype=object), sequences)
    valid_items: dict[str, int] = {}
    trained = data.item_counts() > 0
    for part in ("valid", "test"):
        cand = candidates(store, protocol_id, part)
        if cand.empty:
            raise ValueError(f"Protocol {protocol_id} has no {part} candidates.")
        cand["idx_item"] = cand["item_id"].map(index)
        users = cand["user_id"].drop_duplicates().tolist()
        items = np.stack([g["idx_item"].to_numpy() for _, g in cand.groupby("user_id", sort=False)])
        repeat = cand.groupby("user_id", sort=False)["is_repeat"].first().to_numpy()
        if part == "valid":
            valid_items = dict(zip(users, items[:, 0].tolist(), strict=True))
            histories = [sequences.get(u, []) for u in users]
        else:
            histories = [sequences.get(u, []) + [valid_items[u]] for u in users]
        data.parts[part] = Candidates(users, items, repeat, histories, ~trained[items[:, 0]])
    return data


def interaction_frame(data: TrainData) -> pd.DataFrame:
    """Training interactions as (user, item index, position) rows, for models that want a table."""
    rows = [(u, i, p) for u, seq in data.sequences.items() for p, i in enumerate(seq)]
    return pd.DataFrame(rows, columns=["user_id", "item", "pos"])
