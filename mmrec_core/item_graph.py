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

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields

import networkx as nx
import numpy as np
import pandas as pd

from mmrec_core.splits import create_protocol, train_interactions
from mmrec_core.store import Store
from mmrec_core.workspace import Workspace

Progress = Callable[[int, int, str], None]  # (done, total, message)
ITEM_TEXT_KIND = "item:text"  # embeddings table kind of the fused item texts
GRAPH_VERSION = "item-graph-v1"  # the edge and weight rules above; stored as prompt_version
REASONS = ("semantic", "co-occurrence", "both")
EMBED_BATCH = 256  # item texts per embed() call and per stored transaction
_ARGPARTITION_ROWS = 256  # rows per argpartition call: its int64 index array is rows x n


@dataclass
class GraphConfig:
    alpha: float = field(default=0.5, metadata={"help": "Cosine threshold: semantic neighbours below it are dropped."})
    k: int = field(default=10, metadata={"help": "Most semantic neighbours per item (top-k by cosine)."})
    window: int = field(default=3, metadata={"help": "K_c: items at most this many positions apart co-occur."})
    min_count: int = field(default=2, metadata={"help": "m: users a pair must co-occur for to become an edge."})
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


@dataclass
class GraphReport(GraphStats):
    dataset: str = ""
    protocol_id: str = ""
    graph_id: str = ""
    semantic_pruned: int = 0  # (item, neighbour) candidates among the top-k that were below alpha
    embedded: int = 0  # item texts embedded now
    embeddings_reused: int = 0  # stored item embeddings whose input hash matched
    reused: bool = False  # the stored graph had the same inputs and config: nothing was rebuilt
    seconds: float = 0.0

    def __str__(self) -> str:
        head = f"item graph {self.graph_id} ({'reused' if self.reused else 'built'}, {self.seconds:.1f} s): "
        return head + (
            f"{self.items} items, {self.edges} edges ({self.semantic_edges} semantic, {self.cooccurrence_edges} "
            f"co-occurrence, {self.both_edges} both; {self.semantic_pruned} top-k candidates below alpha), "
            f"{self.isolated} isolated, {self.components} components, degree min/median/mean/max "
            f"{self.degree_min}/{self.degree_median:g}/{self.degree_mean:.2f}/{self.degree_max}"
        )


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


# -- the stored graph ----------------------------------------------------------------------------
def item_text(title: str | None, text: str | None, description: str | None, keywords: Sequence[str] | None) -> str:
    """An item's fused text: title, catalog text, newest description and keywords (whatever exists)."""
    title, text, description = (v.strip() if isinstance(v, str) else "" for v in (title, text, description))
    parts = [] if text.startswith(title) else [title]  # catalog texts often open with the title
    parts += [text, description]
    if keywords is not None and len(keywords):
        parts.append("Keywords: " + ", ".join(keywords) + ".")
    return "\n".join(p for p in parts if p)


def fused_item_texts(store: Store, dataset: str) -> dict[str, str]:
    """item_id -> fused text for every item of a data set (catalog order)."""
    items = store.items(dataset)
    latest = store.latest_keywords(dataset).set_index("item_id")
    desc, kws = latest["description"].to_dict(), latest["keywords"].to_dict()
    return {
        row.item_id: item_text(row.title, row.text, desc.get(row.item_id), kws.get(row.item_id))
        for row in items.itertuples(index=False)
    }


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _item_vectors(
    ws: Workspace, engine, dataset: str, texts: dict[str, str], hashes: dict[str, str], progress: Progress | None
) -> tuple[np.ndarray, int, int]:
    """Item text embeddings in catalog order, reusing stored ones whose input hash matches."""
    stored = ws.store.embeddings(dataset, ITEM_TEXT_KIND)
    stored = {
        k: v
        for k, v, h in zip(stored["key"], stored["vector"], stored["input_hash"], strict=True)
        if h == hashes.get(k)
    }
    todo = [i for i in texts if i not in stored]
    prov = engine.provenance("embedder")
    for first in range(0, len(todo), EMBED_BATCH):
        batch = todo[first : first + EMBED_BATCH]
        vectors = engine.embed([texts[i] for i in batch])
        rows = pd.DataFrame(
            {
                "dataset": dataset,
                "kind": ITEM_TEXT_KIND,
                "key": batch,
                "vector": [v.tolist() for v in vectors],
                "engine": prov["engine"],
                "model": prov["model"],
                "params": json.dumps(prov["params"]),
                "input_hash": [hashes[i] for i in batch],
            }
        )
        with ws.store.transaction() as tx:  # each batch on its own: an interrupted build keeps what it embedded
            ws.store.write_embeddings(tx, rows)
        stored.update(zip(batch, vectors, strict=True))
        if progress:
            progress(first + len(batch), len(todo), "embedding item texts")
    if not texts:
        return np.zeros((0, 0), np.float32), 0, 0
    matrix = np.stack([np.asarray(stored[i], dtype=np.float32) for i in texts])
    return matrix, len(todo), len(texts) - len(todo)


def build_item_graph(
    ws: Workspace,
    engine,
    dataset: str,
    protocol_id: str | None = None,
    config: GraphConfig | None = None,
    progress: Progress | None = None,
) -> GraphReport:
    """Build (or reuse) the refined item graph of a protocol's training data and store it in graph_edges.

    `engine` is any object with embed() and provenance() (an `Engine`). The graph_id hashes the
    protocol, the edge settings and the embedder's provenance; its rows are replaced in one
    transaction. When the stored rows already have this build's input hash (same texts, training
    data, settings and embedder) nothing is recomputed and the report says reused=True.
    """
    config = config or GraphConfig()
    config.validate()
    start = time.perf_counter()
    info = ws.store.require_dataset(dataset)
    protocol_id = protocol_id or create_protocol(ws.store, dataset)
    owner = ws.store.scalar("SELECT dataset FROM protocols WHERE protocol_id = ?", [protocol_id])
    if owner != dataset:
        where = f"belongs to data set '{owner}'" if owner else "does not exist"
        raise KeyError(f"Protocol '{protocol_id}' {where}; create one for '{dataset}' with `mmrec protocol`.")
    prov = engine.provenance("embedder")
    texts = fused_item_texts(ws.store, dataset)
    hashes = {i: _hash([t, prov]) for i, t in texts.items()}
    graph_id = "graph-" + _hash([protocol_id, config.key(), GRAPH_VERSION, prov])[:16]
    input_hash = _hash([GRAPH_VERSION, info["fingerprint"], protocol_id, config.key(), prov, hashes])
    report = GraphReport(dataset=dataset, protocol_id=protocol_id, graph_id=graph_id)

    stored_hashes = ws.store.sql_df(
        "SELECT DISTINCT input_hash FROM graph_edges WHERE dataset = ? AND graph_id = ?", [dataset, graph_id]
    )["input_hash"].tolist()
    if stored_hashes == [input_hash]:  # same inputs, same settings: the stored graph is this graph
        edges = load_graph(ws.store, dataset, graph_id)
        params = json.loads(edges["params"].iloc[0])
        _fill(report, graph_stats(edges, len(texts)))
        report.semantic_pruned, report.reused = params["semantic_pruned"], True
        report.embeddings_reused = len(texts)
        report.seconds = time.perf_counter() - start
        return report

    vectors, report.embedded, report.embeddings_reused = _item_vectors(ws, engine, dataset, texts, hashes, progress)
    item_ids = np.array(list(texts), dtype=object)
    semantic = semantic_edges(vectors, config.k, config.alpha, config.block_size)
    report.semantic_pruned = len(item_ids) * max(min(config.k, len(item_ids) - 1), 0) - len(semantic[0])
    if progress:
        progress(len(item_ids), len(item_ids), "semantic edges found")
    train = train_interactions(ws.store, protocol_id)  # never the valid/test targets
    co = cooccurrence_edges(train, config.window, config.min_count)
    item_users = train.drop_duplicates(["user_id", "item_id"])["item_id"].value_counts()
    edges = merge_edges(item_ids, semantic, co, item_users)
    params = {
        **config.key(),
        "protocol_id": protocol_id,
        "embedder": prov["params"],
        "items": len(item_ids),
        "semantic_pruned": int(report.semantic_pruned),
        "weight": "semantic: cosine; co-occurrence: count/sqrt(users_i*users_j); both: 1-(1-cos)(1-co)",
    }
    rows = pd.DataFrame(
        {
            "dataset": dataset,
            "graph_id": graph_id,
            "src": edges["src"].astype(str),
            "dst": edges["dst"].astype(str),
            "weight": edges["weight"].astype(np.float64),
            "reason": edges["reason"],
            "engine": prov["engine"],
            "model": prov["model"],
            "prompt_version": GRAPH_VERSION,
            "params": json.dumps(params),
            "input_hash": input_hash,
        }
    )
    with ws.store.transaction() as tx:  # the old version of this graph goes only if the new one is written
        tx.execute("DELETE FROM graph_edges WHERE dataset = ? AND graph_id = ?", [dataset, graph_id])
        tx.register("_edges", rows)
        tx.execute(f"INSERT INTO graph_edges ({', '.join(rows.columns)}) SELECT {', '.join(rows.columns)} FROM _edges")
        tx.unregister("_edges")
    _fill(report, graph_stats(edges, len(item_ids)))
    report.seconds = time.perf_counter() - start
    if progress:
        progress(len(item_ids), len(item_ids), f"{report.edges} edges stored")
    return report


def _fill(report: GraphReport, stats: GraphStats) -> None:
    for f in fields(GraphStats):
        setattr(report, f.name, getattr(stats, f.name))


def stored_graphs(store: Store, dataset: str) -> pd.DataFrame:
    """One row per stored graph of a data set: graph_id, edges, params (JSON), engine, model, created_at."""
    return store.sql_df(
        "SELECT graph_id, count(*) AS edges, any_value(params) AS params, any_value(engine) AS engine, "
        "any_value(model) AS model, max(created_at) AS created_at FROM graph_edges WHERE dataset = ? "
        "GROUP BY graph_id ORDER BY created_at DESC",
        [dataset],
    )


def latest_graph_id(store: Store, dataset: str, protocol_id: str) -> str | None:
    """The newest stored graph built from this protocol's training data, or None."""
    graphs = stored_graphs(store, dataset)
    for graph_id, params in zip(graphs["graph_id"], graphs["params"], strict=True):
        if json.loads(params).get("protocol_id") == protocol_id:
            return graph_id
    return None


def load_graph(store: Store, dataset: str, graph_id: str) -> pd.DataFrame:
    """The stored edges of one graph (src, dst, weight, reason and provenance), by src, dst."""
    edges = store.sql_df(
        "SELECT src, dst, weight, reason, engine, model, prompt_version, params, input_hash, created_at "
        "FROM graph_edges WHERE dataset = ? AND graph_id = ? ORDER BY src, dst",
        [dataset, graph_id],
    )
    if edges.empty:
        known = ", ".join(stored_graphs(store, dataset)["graph_id"]) or "none yet"
        raise KeyError(f"No item graph '{graph_id}' in data set '{dataset}' (stored: {known}).")
    return edges


def ego_network(edges: pd.DataFrame, item_id: str, radius: int = 1) -> nx.Graph:
    """Items within `radius` (1 or 2) hops of `item_id` and every edge among them (attrs weight, reason).

    Nodes carry `hop` (0 for the item itself). An item with no edge gives a graph of that one node.
    """
    if radius not in (1, 2):
        raise ValueError("radius must be 1 or 2.")
    hops, frontier = {item_id: 0}, {item_id}
    for hop in range(1, radius + 1):
        touching = edges[edges["src"].isin(frontier) | edges["dst"].isin(frontier)]
        frontier = (set(touching["src"]) | set(touching["dst"])) - hops.keys()
        hops.update(dict.fromkeys(frontier, hop))
    nodes = list(hops)
    inside = edges[edges["src"].isin(nodes) & edges["dst"].isin(nodes)]
    graph = nx.Graph()
    for node, hop in hops.items():
        graph.add_node(node, hop=hop)
    for src, dst, weight, reason in inside[["src", "dst", "weight", "reason"]].itertuples(index=False):
        graph.add_edge(src, dst, weight=float(weight), reason=reason)
    return graph
