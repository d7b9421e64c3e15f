"""The Item graph page's view: the refined item graph rebuilt for any alpha, k and K_c, and its drawing.

The stored graph (`item_graph.build_item_graph`) fixes one setting; an analyst wants to see what a
stricter alpha or a wider window changes. `GraphInputs` holds what a build needs (the stored item
text embeddings and the TRAINING sequences); `edges_for` reruns the same rules for other settings
(fast enough for a page: the similarity search is the blockwise one of the full build). Drawing:
networkx layout, plotly figure with item thumbnails at the nodes and edges coloured by reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mmrec_core.data.splits import train_interactions
from mmrec_core.graph.build import ITEM_TEXT_KIND
from mmrec_core.graph.edges import cooccurrence_edges, merge_edges, semantic_edges
from mmrec_core.store.database import Store

REASON_COLOURS = {"semantic": "#1f77b4", "co-occurrence": "#ff7f0e", "both": "#2ca02c"}


@dataclass
class GraphInputs:
    """What a graph is built from: item ids, their unit text vectors (row = item), training sequences."""

    item_ids: np.ndarray
    vectors: np.ndarray
    train: pd.DataFrame  # user_id, seq, item_id of the protocol's training interactions


def load_inputs(store: Store, dataset: str, protocol_id: str) -> GraphInputs:
    """The stored item text embeddings (from `mmrec graph`) and the protocol's training interactions."""
    stored = store.embeddings(dataset, ITEM_TEXT_KIND)
    if stored.empty:
        raise KeyError(f"No item embeddings for '{dataset}' yet: build the item graph first (`mmrec graph {dataset}`).")
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in stored["vector"]])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return GraphInputs(stored["key"].to_numpy(dtype=object), vectors, train_interactions(store, protocol_id))


def edges_for(inputs: GraphInputs, alpha: float, k: int, window: int, min_count: int) -> pd.DataFrame:
    """The refined graph's edges (src, dst, weight, reason, cosine, count) for these settings."""
    semantic = semantic_edges(inputs.vectors, k, alpha)
    co = cooccurrence_edges(inputs.train, window, min_count)
    item_users = inputs.train.drop_duplicates(["user_id", "item_id"])["item_id"].value_counts()
    return merge_edges(inputs.item_ids, semantic, co, item_users)


def thumbnails(paths: dict[str, str], size: int = 96) -> dict[str, bytes]:
    """Small JPEG thumbnails (item_id -> bytes) to draw at the nodes; unreadable files are left out."""
    from mmrec_core.store.images import BadImageError, thumbnail_jpeg

    out = {}
    for item_id, path in paths.items():
        try:
            out[item_id] = thumbnail_jpeg(path, size, quality=80)
        except (OSError, BadImageError):
            continue
    return out


def graph_figure(graph: nx.Graph, items: pd.DataFrame, image_bytes: dict[str, bytes], centre: str) -> go.Figure:
    """Plotly drawing: edges coloured by reason, thumbnails at the nodes, title/category on hover.

    `items` is indexed by item_id with title and category; `image_bytes` maps item_id to JPEG bytes
    (`thumbnails`).
    Point i of the node trace is node i of `list(graph)` (the page maps a click back to an item).
    """
    pos = nx.spring_layout(graph, seed=0, k=1.2 / max(len(graph), 1) ** 0.5)
    fig = go.Figure()
    for reason, colour in REASON_COLOURS.items():
        xs, ys = [], []
        for a, b, data in graph.edges(data=True):
            if data["reason"] == reason:
                xs += [pos[a][0], pos[b][0], None]
                ys += [pos[a][1], pos[b][1], None]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line={"color": colour, "width": 2}, name=reason, hoverinfo="skip")
        )
    nodes = list(graph)
    hover = [f"{items.at[n, 'title']}<br>{items.at[n, 'category']}<br>{n}" for n in nodes]
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in nodes],
            y=[pos[n][1] for n in nodes],
            mode="markers",
            name="items",
            marker={
                "size": [26 if n == centre else 16 for n in nodes],
                "color": "white",
                "line": {"color": ["#d62728" if n == centre else "#555" for n in nodes], "width": 2},
            },
            hovertext=hover,
            hoverinfo="text",
            customdata=nodes,
        )
    )
    size = 0.9 / max(len(graph), 1) ** 0.5
    for n in nodes:
        if n in image_bytes:
            uri = "data:image/jpeg;base64," + base64.b64encode(image_bytes[n]).decode()
            fig.add_layout_image(
                source=uri,
                x=pos[n][0],
                y=pos[n][1],
                xref="x",
                yref="y",
                sizex=size,
                sizey=size,
                xanchor="center",
                yanchor="middle",
                layer="above",
            )
    fig.update_layout(
        height=620,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        legend={"orientation": "h"},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
    )
    return fig


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
