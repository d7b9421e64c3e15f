"""Chronological leave-one-out splits and stored negative samples (the MLLM-MSR protocol, fixed).

For each user with at least `min_history` interactions: test = last, valid = second last, the rest
is training. Users with shorter histories are training-only (their purchases still inform the item
graph and popularity) and are not evaluated. Sequence order comes from the importer: time, then
item id for same-time ties (source order where there is no time), so the split is deterministic.

Negatives: for every evaluated user and part, `n_negatives` items the user NEVER interacted with
(in any part), drawn once from a generator seeded by (seed, user), and stored. A protocol is never
re-drawn: asking for it again returns the stored one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmrec_core.store.database import Store

PARTS = ("valid", "test")


@dataclass
class ProtocolConfig:
    """How a leave-one-out protocol is drawn (`mmrec ingest`, `mmrec protocol`)."""

    n_negatives: int = field(default=20, metadata={"help": "Sampled negatives per user and part.", "flag": "negatives"})
    seed: int = field(default=42, metadata={"help": "Seed for the negative draw."})
    min_history: int = field(default=5, metadata={"help": "Users with fewer interactions are training-only."})

    def __post_init__(self) -> None:
        if self.min_history < 3:
            raise ValueError("min_history must be at least 3 (one training, one valid, one test interaction).")
        if self.n_negatives < 1:
            raise ValueError("n_negatives must be at least 1.")


def protocol_id_for(dataset: str, min_history: int, n_negatives: int, seed: int) -> str:
    return f"{dataset}:loo-min{min_history}-neg{n_negatives}-seed{seed}"


def create_protocol(
    store: Store,
    dataset: str,
    *,
    n_negatives: int = ProtocolConfig.n_negatives,
    seed: int = ProtocolConfig.seed,
    min_history: int = ProtocolConfig.min_history,
    tx: duckdb.DuckDBPyConnection | None = None,
) -> str:
    """Create (or return the already stored) leave-one-out protocol with sampled negatives.

    With `tx` it writes inside the caller's transaction (ingest: the data set rows are not committed yet).
    """
    ProtocolConfig(n_negatives, seed, min_history)  # validates
    pid = protocol_id_for(dataset, min_history, n_negatives, seed)
    fingerprint = store.dataset_fingerprint(dataset)
    if fingerprint is None:
        raise KeyError(f"Unknown data set '{dataset}'. Load it with `mmrec ingest` first.")
    if store.protocol_dataset(pid) is not None:
        return pid  # never re-drawn (a data change deletes protocols, see Store.write_dataset)

    inter = store.interactions(dataset)[["user_id", "seq", "item_id"]]
    all_items = np.array(store.item_ids(dataset), dtype=object)
    targets, negatives = _split_and_sample(inter, all_items, n_negatives, seed, min_history)
    if targets.empty:
        raise ValueError(f"No user in '{dataset}' has {min_history}+ interactions; lower min_history.")
    meta = {
        "protocol_id": pid,
        "dataset": dataset,
        "min_history": min_history,
        "n_negatives": n_negatives,
        "seed": seed,
        "data_fingerprint": fingerprint,
        "n_users": targets["user_id"].nunique(),
    }
    if tx is not None:
        store.write_protocol(tx, meta, targets, negatives)
    else:
        with store.transaction() as own:
            store.write_protocol(own, meta, targets, negatives)
    return pid


def _split_and_sample(inter: pd.DataFrame, all_items: np.ndarray, n_neg: int, seed: int,
                      min_history: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    item_index = {item: i for i, item in enumerate(all_items)}
    targets, negatives = [], []
    groups = inter.groupby("user_id", sort=True)
    for user, hist in tqdm(groups, total=groups.ngroups, desc="splitting", unit="user", leave=False):
        if len(hist) < min_history:
            continue
        items = hist["item_id"].to_numpy()
        seqs = hist["seq"].to_numpy()
        seen = np.fromiter((item_index[i] for i in set(items)), dtype=np.int64)
        n_free = len(all_items) - len(seen)
        if n_free < n_neg:
            raise ValueError(f"User {user} interacted with all but {n_free} items; cannot draw {n_neg} negatives. "
                             "Use fewer negatives (--negatives) or a larger catalog.")
        for part, pos in (("valid", len(items) - 2), ("test", len(items) - 1)):
            targets.append((user, part, int(seqs[pos]), items[pos], bool(items[pos] in set(items[:pos]))))
            rng = np.random.default_rng([seed, zlib.crc32(str(user).encode()), PARTS.index(part)])
            drawn = _sample_excluding(rng, len(all_items), seen, n_neg)
            negatives.extend((user, part, k, all_items[j]) for k, j in enumerate(drawn))
    return (pd.DataFrame(targets, columns=["user_id", "part", "seq", "item_id", "is_repeat"]),
            pd.DataFrame(negatives, columns=["user_id", "part", "idx", "item_id"]))


def _sample_excluding(rng: np.random.Generator, n_items: int, exclude: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices in [0, n_items) not in `exclude`, uniformly (rejection sampling)."""
    chosen: list[int] = []
    taken = set(exclude.tolist())
    while len(chosen) < k:
        for j in rng.integers(0, n_items, size=2 * k).tolist():
            if j not in taken:
                taken.add(j)
                chosen.append(j)
                if len(chosen) == k:
                    break
    return np.array(chosen, dtype=np.int64)


# -- reads used by every model and by evaluation -----------------------------------------------------
def train_interactions(store: Store, protocol_id: str) -> pd.DataFrame:
    """All interactions that are not a valid/test target of this protocol (the only data models see)."""
    return store.train_interactions(protocol_id)


def candidates(store: Store, protocol_id: str, part: str = "test") -> pd.DataFrame:
    """Per evaluated user: the positive (is_positive) and its stored negatives."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    return store.candidates(protocol_id, part)


def repeat_share(store: Store, protocol_id: str, part: str = "test") -> float:
    """Share of targets the user had already interacted with (a 'bought before' model gets these)."""
    return store.repeat_share(protocol_id, part)


def item_split(store: Store, dataset: str, held_out: float = 0.2, seed: int = 0) -> tuple[str, dict[str, str]]:
    """A seeded train/test split of the data set's items (for describer and classifier training), drawn once.

    Returns (split_id, item_id -> 'train' | 'test'). Asking again returns the stored split; items added since
    it was drawn are not in it (they are neither trained on nor scored).
    """
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be between 0 and 1 (a share of the items), not {held_out}.")
    split_id = f"items-test{round(held_out * 100)}-seed{seed}"
    stored = store.item_split(dataset, split_id)
    if stored:
        return split_id, stored
    items = np.sort(store.items(dataset)["item_id"].to_numpy().astype(str))
    order = np.random.default_rng(seed).permutation(len(items))
    n_test = round(len(items) * held_out)
    parts = {str(items[i]): "test" if rank < n_test else "train" for rank, i in enumerate(order)}
    with store.transaction() as tx:
        store.write_item_split(tx, dataset, split_id, parts)
    return split_id, parts
