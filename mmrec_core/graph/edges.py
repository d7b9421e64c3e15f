"""Stage 3, the refined item graph: denoised semantic neighbours plus sequence co-occurrence.

Semantic edges follow MLLMRec's threshold-denoised item graph: every item keeps its top-k most
similar items by cosine of the item text embeddings, and only those with cosine >= alpha (the
threshold removes the weak neighbours that top-k alone would force on an item with no close
match). Co-occurrence edges follow MMSRARec and MLLMRec: two items are linked when they occur
within K_c positions of each other in a user's TRAINING sequence (`splits.train_interactions`, never
a valid/test target) for at least m users. The two edge sets are merged into one undirected graph
whose edges carry a weight and a reason ("semantic", "co-occurrence" or "both").

Edge weights (all in [0, 1] when alpha >= 0):
- semantic: the cosine of the two items' text embeddings;
- co-occurrence: count / sqrt(users(i) * users(j)), where count = users whose training sequence has
  i and j within K_c positions and users(i) = users whose training sequence contains i (a cosine of
  the two items' user sets, so a popular item does not dominate its neighbours);
- both: 1 - (1 - cosine) * (1 - co-occurrence weight), a "noisy or": at least either weight alone.

The similarity search runs blockwise (block_size rows against all rows, argpartition per row), so
memory is O(n*k + block_size*n), never O(n^2): 100,000 items x 384 dims fit on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

REASONS = ("semantic", "co-occurrence", "both")
_ARGPARTITION_ROWS = 256  # rows per argpartition call: its int64 index array is rows x n


@dataclass
class GraphConfig:
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "alpha: cosine threshold, weaker semantic neighbours are dropped.",
            "range": (0.0, 1.0, 0.05),
        },
    )
    k: int = field(
        default=10, metadata={"help": "k: most semantic neighbours per item (top-k by cosine).", "range": (1, 30, 1)}
    )
    window: int = field(
        default=3,
        metadata={"help": "K_c: co-occurrence window (positions apart).", "range": (1, 10, 1)},
    )
    min_count: int = field(
        default=2, metadata={"help": "m: users a pair must co-occur for to become an edge.", "range": (1, 5, 1)}
    )
    block_size: int = field(default=2048, metadata={"help": "Rows per similarity block (memory ~ block_size x n)."})

    def validate(self) -> None:
        _check_semantic(self.k, self.alpha, self.block_size)
        _check_cooccurrence(self.window, self.min_count)

    def key(self) -> dict:
        """The settings that change the edges (block_size only changes memory and speed)."""
        return {"alpha": float(self.alpha), "k": self.k, "window": self.window, "min_count": self.min_count}


@dataclass
class GraphStats:
    items: int = 0
    semantic_edges: int = 0  # undirected edges with semantic evidence ("semantic" or "both")
    cooccurrence_edges: int = 0  # undirected edges with co-occurrence evidence ("co-occurrence" or "both")
    both_edges: int = 0
    edges: int = 0
    isolated: int = 0  # items without any edge
    components: int = 0  # connected components, each isolated item counting as one
    largest_component: int = 0
    degree_min: int = 0
    degree_median: float = 0.0
    degree_mean: float = 0.0
    degree_max: int = 0


def _check_semantic(k: int, alpha: float, block_size: int) -> None:
    if not -1.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is a cosine threshold and must lie in [-1, 1], not {alpha}.")
    if k < 1:
        raise ValueError(f"k (semantic neighbours per item) must be at least 1, not {k}.")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, not {block_size}.")


def _check_cooccurrence(window: int, min_count: int) -> None:
    if window < 1:
        raise ValueError(f"window (K_c) must be at least 1, not {window}.")
    if min_count < 1:
        raise ValueError(f"min_count (m) must be at least 1, not {min_count}.")


# -- the two edge sets ---------------------------------------------------------------------------
def semantic_edges(
    vectors: np.ndarray, k: int = 10, alpha: float = 0.5, block_size: int = 2048
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed top-k neighbours with cosine >= alpha: (src_idx, dst_idx, cos), by src then cos descending.

    Rows are L2-normalised first where they are not already. Self pairs are excluded. Each item has
    min(k, n-1) candidates, so the candidates pruned by alpha number n * min(k, n-1) - len(src_idx).
    """
    _check_semantic(k, alpha, block_size)
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array (items x dims), not shape {x.shape}.")
    n, kk = len(x), min(k, len(x) - 1)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if kk < 1:
        return empty
    norms = np.linalg.norm(x, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        x = x / np.maximum(norms, 1e-12)[:, None]
    srcs, dsts, coss = [], [], []
    for start in range(0, n, block_size):
        sims = x[start : start + block_size] @ x.T  # (block, n): the only O(n) x block buffer
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf  # never your own neighbour
        for r0 in range(0, len(sims), _ARGPARTITION_ROWS):
            part = sims[r0 : r0 + _ARGPARTITION_ROWS]
            top = np.argpartition(part, n - kk, axis=1)[:, n - kk :]
            cos = np.take_along_axis(part, top, axis=1)
            order = np.argsort(-cos, axis=1, kind="stable")
            top, cos = np.take_along_axis(top, order, axis=1), np.take_along_axis(cos, order, axis=1)
            keep = cos >= alpha
            srcs.append(np.repeat(np.arange(start + r0, start + r0 + len(part)), keep.sum(axis=1)))
            dsts.append(top[keep])
            coss.append(cos[keep])
        del sims, part  # before the next block is computed: one block buffer alive at a time, not two
    return (
        np.concatenate(srcs).astype(np.int64),
        np.concatenate(dsts).astype(np.int64),
        np.clip(np.concatenate(coss), -1.0, 1.0).astype(np.float32),  # float32 rounding can give 1.0000001
    )


def cooccurrence_edges(
    sequences: Mapping[str, Sequence[str]] | pd.DataFrame, window: int = 3, min_count: int = 2
) -> pd.DataFrame:
    """Unordered item pairs within `window` positions of each other, with the number of users: src, dst, count.

    `sequences` is {user: [item, ...] oldest first} or a frame of user_id, seq, item_id (pass training
    interactions only). A user counts once per pair, however often the pair recurs in their sequence,
    so one user's loop cannot make an edge alone. Pairs with count >= min_count are kept; an item
    never pairs with itself; src < dst; sorted by src, dst.
    """
    _check_cooccurrence(window, min_count)
    if isinstance(sequences, pd.DataFrame):
        missing = {"user_id", "item_id"} - set(sequences.columns)
        if missing:
            raise ValueError(f"The sequence frame needs columns user_id, seq, item_id; missing {sorted(missing)}.")
        keys = ["user_id", "seq"] if "seq" in sequences.columns else ["user_id"]
        frame = sequences.sort_values(keys, kind="stable")
        users, items = frame["user_id"].to_numpy(), frame["item_id"].to_numpy()
    else:
        users = np.array([u for u, seq in sequences.items() for _ in seq], dtype=object)
        items = np.array([i for seq in sequences.values() for i in seq], dtype=object)
    out = pd.DataFrame({"src": np.array([], object), "dst": np.array([], object), "count": np.array([], np.int64)})
    if len(items) < 2:
        return out
    # sort=True: code order is id order, so lo < hi as codes means src < dst as ids
    item_codes, item_ids = pd.factorize(items, sort=True)
    item_ids = np.asarray(item_ids, dtype=object)
    user_codes, _ = pd.factorize(users)
    lo_parts, hi_parts, user_parts = [], [], []
    for d in range(1, window + 1):  # positions p and p+d of the same user's sequence
        if d >= len(items):
            break
        a, b = item_codes[:-d], item_codes[d:]
        same = (user_codes[:-d] == user_codes[d:]) & (a != b)
        lo_parts.append(np.minimum(a, b)[same])
        hi_parts.append(np.maximum(a, b)[same])
        user_parts.append(user_codes[:-d][same])
    pairs = pd.DataFrame(
        {"user": np.concatenate(user_parts), "lo": np.concatenate(lo_parts), "hi": np.concatenate(hi_parts)}
    ).drop_duplicates()  # one vote per user and pair
    counts = pairs.groupby(["lo", "hi"], sort=True).size()
    counts = counts[counts >= min_count]
    if counts.empty:
        return out
    lo, hi = counts.index.get_level_values(0), counts.index.get_level_values(1)
    return pd.DataFrame(
        {"src": item_ids[lo.to_numpy()], "dst": item_ids[hi.to_numpy()], "count": counts.to_numpy(np.int64)}
    )


def merge_edges(
    item_ids: np.ndarray,
    semantic: tuple[np.ndarray, np.ndarray, np.ndarray],
    cooccurrence: pd.DataFrame,
    item_users: Mapping[str, int] | pd.Series,
) -> pd.DataFrame:
    """One undirected edge per pair (src < dst as item ids) with weight and reason (see the module docstring).

    `item_users` is the number of users whose training sequence contains each item (normalises counts).
    """
    src, dst, cos = semantic
    ids = np.asarray(item_ids, dtype=object)
    sem = pd.DataFrame({"a": ids[src], "b": ids[dst], "cosine": cos.astype(np.float64)})
    swap = (sem["a"] > sem["b"]).to_numpy()
    sem["src"], sem["dst"] = np.where(swap, sem["b"], sem["a"]), np.where(swap, sem["a"], sem["b"])
    # i->j and j->i are one edge; their cosines agree up to float rounding
    sem = sem.groupby(["src", "dst"], as_index=False, sort=False)["cosine"].max()
    co = cooccurrence[["src", "dst", "count"]].copy()
    users = pd.Series(item_users, dtype=np.float64)
    co["co_weight"] = co["count"] / np.sqrt(co["src"].map(users).to_numpy() * co["dst"].map(users).to_numpy())
    edges = sem.merge(co, on=["src", "dst"], how="outer")
    has_sem, has_co = edges["cosine"].notna(), edges["co_weight"].notna()
    edges["reason"] = np.select([has_sem & has_co, has_sem], ["both", "semantic"], "co-occurrence")
    noisy_or = 1.0 - (1.0 - edges["cosine"].clip(lower=0.0)) * (1.0 - edges["co_weight"])
    edges["weight"] = np.select([has_sem & has_co, has_sem], [noisy_or, edges["cosine"]], edges["co_weight"])
    edges["count"] = edges["count"].astype("Int64")
    edges = edges.sort_values(["src", "dst"], kind="stable", ignore_index=True)
    return edges[["src", "dst", "weight", "reason", "cosine", "count"]]


# -- statistics (any edge frame: the stored graph or one rebuilt for other alpha/k/K_c) ------------
def graph_stats(edges: pd.DataFrame, n_items: int) -> GraphStats:
    """Counts by reason, isolated items, connected components and the degree summary of an edge frame.

    `edges` has columns src, dst, reason (one row per undirected edge); `n_items` is the catalog size,
    so items without an edge count as isolated (degree 0, a component of their own).
    """
    reason = edges["reason"] if len(edges) else pd.Series(dtype=object)
    nodes, codes = np.unique(np.concatenate([edges["src"].to_numpy(), edges["dst"].to_numpy()]), return_inverse=True)
    n = max(int(n_items), len(nodes))
    degree = np.zeros(n, dtype=np.int64)
    degree[: len(nodes)] = np.bincount(codes, minlength=len(nodes))
    graph = nx.Graph()
    graph.add_edges_from(zip(edges["src"].to_numpy(), edges["dst"].to_numpy(), strict=True))
    sizes = [len(c) for c in nx.connected_components(graph)]
    isolated = n - len(nodes)
    return GraphStats(
        items=n,
        semantic_edges=int(reason.isin(["semantic", "both"]).sum()),
        cooccurrence_edges=int(reason.isin(["co-occurrence", "both"]).sum()),
        both_edges=int((reason == "both").sum()),
        edges=len(edges),
        isolated=isolated,
        components=len(sizes) + isolated,
        largest_component=max(sizes, default=1 if n else 0),
        degree_min=int(degree.min()) if n else 0,
        degree_median=float(np.median(degree)) if n else 0.0,
        degree_mean=float(degree.mean()) if n else 0.0,
        degree_max=int(degree.max()) if n else 0,
    )
