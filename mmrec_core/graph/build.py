"""Stage 3: build (or reuse) the refined item graph of a protocol and store it (rules: `graph.edges`).

Each item's fused text (`textualize.texts`) is embedded once (stored, reused while its text and the
embedder are unchanged); the edges are recomputed only when the texts, the training data, the
settings or the embedder changed, and replace the stored graph in one transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance
from mmrec_core.data.splits import train_interactions
from mmrec_core.engines import Engine
from mmrec_core.graph.edges import GraphConfig, GraphStats, cooccurrence_edges, graph_stats, merge_edges, semantic_edges
from mmrec_core.store.database import Store
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.texts import fused_item_texts

ITEM_TEXT_KIND = "item:text"  # embeddings table kind of the fused item texts
GRAPH_VERSION = "item-graph-v1"  # the edge and weight rules of graph.edges; stored as prompt_version
EMBED_BATCH = 256  # item texts per embed() call and per stored transaction


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


def embedding_rows(
    dataset: str, kind: str, keys: list[str], vectors: np.ndarray, prov: Provenance, hashes: dict[str, str]
) -> pd.DataFrame:
    """Rows of the embeddings table: one vector per key, with its provenance and input hash."""
    return pd.DataFrame(
        {
            "dataset": dataset,
            "kind": kind,
            "key": keys,
            "vector": [v.tolist() for v in vectors],
            **prov.columns(),
            "input_hash": [hashes[k] for k in keys],
        }
    )


def _item_vectors(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    texts: dict[str, str],
    hashes: dict[str, str],
    progress: Progress | None,
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
        rows = embedding_rows(dataset, ITEM_TEXT_KIND, batch, vectors, Provenance.of(prov), hashes)
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
    engine: Engine,
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
    protocol_id = default_protocol(ws, dataset, protocol_id)
    prov = engine.provenance("embedder")
    texts = fused_item_texts(ws.store, dataset)
    hashes = {i: input_hash([t, prov]) for i, t in texts.items()}
    graph_id = "graph-" + input_hash([protocol_id, config.key(), GRAPH_VERSION, prov], length=16)
    build_hash = input_hash([GRAPH_VERSION, info["fingerprint"], protocol_id, config.key(), prov, hashes])
    report = GraphReport(dataset=dataset, protocol_id=protocol_id, graph_id=graph_id)

    stored_hashes = ws.store.graph_input_hashes(dataset, graph_id)
    if stored_hashes == [build_hash]:  # same inputs, same settings: the stored graph is this graph
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
            **Provenance(prov["engine"], prov["model"], GRAPH_VERSION, params).columns(),
            "input_hash": build_hash,
        }
    )
    ws.store.write_graph(dataset, graph_id, rows)  # the old version goes only if the new one is written
    _fill(report, graph_stats(edges, len(item_ids)))
    report.seconds = time.perf_counter() - start
    if progress:
        progress(len(item_ids), len(item_ids), f"{report.edges} edges stored")
    return report


def _fill(report: GraphReport, stats: GraphStats) -> None:
    for f in fields(GraphStats):
        setattr(report, f.name, getattr(stats, f.name))


def latest_graph_id(store: Store, dataset: str, protocol_id: str) -> str | None:
    """The newest stored graph built from this protocol's training data, or None."""
    graphs = store.stored_graphs(dataset)
    for graph_id, params in zip(graphs["graph_id"], graphs["params"], strict=True):
        if json.loads(params).get("protocol_id") == protocol_id:
            return graph_id
    return None


def load_graph(store: Store, dataset: str, graph_id: str) -> pd.DataFrame:
    """The stored edges of one graph (src, dst, weight, reason and provenance), by src, dst."""
    edges = store.graph_edges(dataset, graph_id)
    if edges.empty:
        known = ", ".join(store.stored_graphs(dataset)["graph_id"]) or "none yet"
        raise KeyError(f"No item graph '{graph_id}' in data set '{dataset}' (stored: {known}).")
    return edges
