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

import duckdb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .store import Store

PARTS = ("valid", "test")


def protocol_id_for(dataset: str, min_history: int, n_negatives: int, seed: int) -> str:
    return f"{dataset}:loo-min{min_history}-neg{n_negatives}-seed{seed}"


def create_protocol(store: Store, dataset: str, *, n_negatives: int = 20, seed: int = 42, min_history: int = 5,
                    tx: duckdb.DuckDBPyConnection | None = None) -> str:
    """Create (or return the already stored) leave-one-out protocol with sampled negatives."""
    if min_history < 3:
        raise ValueError("min_history must be at least 3 (one training, one valid, one test interaction).")
    if n_negatives < 1:
        raise ValueError("n_negatives must be at least 1.")
    cur = tx or store.cursor()
    pid = protocol_id_for(dataset, min_history, n_negatives, seed)
    fp_row = cur.execute("SELECT fingerprint FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    if fp_row is None:
        raise KeyError(f"Unknown data set '{dataset}'. Load it with `mmrec ingest` first.")
    stored = cur.execute("SELECT data_fingerprint FROM protocols WHERE protocol_id = ?", [pid]).fetchone()
    if stored is not None:
        return pid  # never re-drawn (a data change deletes protocols, see Store.write_dataset)

    inter = cur.execute(
        "SELECT user_id, seq, item_id FROM interactions WHERE dataset = ? ORDER BY user_id, seq", [dataset]
    ).df()
    all_items = np.sort(cur.execute("SELECT item_id FROM items WHERE dataset = ?", [dataset]).df()["item_id"]
                        .to_numpy(dtype=object))
    targets, negatives = _split_and_sample(inter, all_items, n_negatives, seed, min_history)
    if targets.empty:
        raise ValueError(f"No user in '{dataset}' has {min_history}+ interactions; lower min_history.")

    def write(c: duckdb.DuckDBPyConnection) -> None:
        c.execute("INSERT INTO protocols (protocol_id, dataset, split, min_history, n_negatives, seed, "
                  "data_fingerprint, n_users) VALUES (?, ?, 'leave-one-out', ?, ?, ?, ?, ?)",
                  [pid, dataset, min_history, n_negatives, seed, fp_row[0], targets["user_id"].nunique()])
        for table, frame in (("splits", targets), ("negatives", negatives)):
            c.register("_frame", frame.assign(protocol_id=pid))
            cols = ", ".join(frame.columns) + ", protocol_id"
            c.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
            c.unregister("_frame")

    if tx is not None:
        write(tx)
    else:
        with store.transaction() as own:
            write(own)
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
def protocols(store: Store, dataset: str) -> pd.DataFrame:
    return store.sql_df("SELECT * FROM protocols WHERE dataset = ? ORDER BY created_at", [dataset])


def train_interactions(store: Store, protocol_id: str) -> pd.DataFrame:
    """All interactions that are not a valid/test target of this protocol (the only data models see)."""
    return store.sql_df(
        """SELECT i.user_id, i.seq, i.item_id, i.ts FROM interactions i
           JOIN protocols p ON p.dataset = i.dataset AND p.protocol_id = ?
           ANTI JOIN splits s ON s.protocol_id = p.protocol_id AND s.user_id = i.user_id AND s.seq <= i.seq
           ORDER BY i.user_id, i.seq""",
        [protocol_id],
    )


def candidates(store: Store, protocol_id: str, part: str = "test") -> pd.DataFrame:
    """Per evaluated user: the positive (is_positive) and its stored negatives."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    return store.sql_df(
        """SELECT user_id, item_id, TRUE AS is_positive, -1 AS idx, is_repeat FROM splits
             WHERE protocol_id = $p AND part = $part
           UNION ALL
           SELECT n.user_id, n.item_id, FALSE, n.idx, s.is_repeat FROM negatives n
             JOIN splits s USING (protocol_id, user_id, part)
             WHERE n.protocol_id = $p AND n.part = $part
           ORDER BY user_id, idx""",
        {"p": protocol_id, "part": part},
    )


def repeat_share(store: Store, protocol_id: str, part: str = "test") -> float:
    """Share of targets the user had already interacted with (a 'bought before' model gets these)."""
    return float(store.scalar("SELECT coalesce(avg(is_repeat::INT), 0) FROM splits "
                              "WHERE protocol_id = ? AND part = ?", [protocol_id, part]))
