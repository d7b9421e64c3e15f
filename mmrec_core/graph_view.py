"""One item's neighbourhood in the refined item graph, rebuilt for any alpha, k and K_c (the Item graph page).

The stored graph (`item_graph.build_item_graph`) fixes one setting; an analyst wants to see what a
stricter alpha or a wider window would change. This module rebuilds only the ego network: semantic
neighbours of the frontier items from the item text embeddings, co-occurrence neighbours from the
TRAINING sequences, the same rules as the full build. Drawing: networkx layout, plotly figure with
item thumbnails at the nodes and edges coloured by reason.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

REASON_COLOURS = {"semantic": "#1f77b4", "co-occurrence": "#ff7f0e", "both": "#2ca02c"}


@dataclass
class GraphInputs:
    """What an ego network is built from: item ids, unit text vectors (row = item) and co-occurrence counts."""

    item_ids: np.ndarray
    vectors: np.ndarray
    cooccurrence: pd.DataFrame  # src, dst (item ids, src < dst), count

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}


def ego_network(inputs: GraphInputs, item_id: str, alpha: float, k: int, min_count: int, radius: int = 1) -> nx.Graph:
    """Nodes within `radius` hops of `item_id`; edges carry weight (cosine or count) and reason."""
    if item_id not in inputs.index:
        raise KeyError(f"Unknown item '{item_id}': pick one from the catalog.")
    if radius not in (1, 2):
        raise ValueError("radius must be 1 or 2.")
    co = inputs.cooccurrence[inputs.cooccurrence["count"] >= min_count]
    graph = nx.Graph()
    graph.add_node(item_id, hop=0)
    frontier = [item_id]
    for hop in range(1, radius + 1):
        found = []
        rows = np.array([inputs.index[i] for i in frontier])
        sims = inputs.vectors[rows] @ inputs.vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf  # not yourself
        for src, row in zip(frontier, sims, strict=True):
            top = np.argpartition(-row, min(k, len(row) - 1))[:k]
            for j in top[row[top] >= alpha]:
                found.append(_add(graph, src, inputs.item_ids[j], "semantic", float(row[j]), hop))
        pairs = co[co["src"].isin(frontier) | co["dst"].isin(frontier)]
        for src, dst, count in pairs[["src", "dst", "count"]].itertuples(index=False):
            here, other = (src, dst) if src in frontier else (dst, src)
            found.append(_add(graph, here, other, "co-occurrence", float(count), hop))
        frontier = sorted({f for f in found if f is not None})
    return graph


def _add(graph: nx.Graph, src: str, dst: str, reason: str, weight: float, hop: int) -> str | None:
    """Add (or merge into 'both') an edge; returns the neighbour if it is new to the graph."""
    new = dst not in graph
    if new:
        graph.add_node(dst, hop=hop)
    if graph.has_edge(src, dst):
        if graph.edges[src, dst]["reason"] != reason:
            graph.edges[src, dst]["reason"] = "both"
        graph.edges[src, dst][reason] = weight
    else:
        graph.add_edge(src, dst, reason=reason, **{reason: weight})
    return dst if new else None


def thumbnails(paths: dict[str, str], size: int = 96) -> dict[str, bytes]:
    """Small JPEG thumbnails (item_id -> bytes) to draw at the nodes; unreadable files are left out."""
    from PIL import Image

    out = {}
    for item_id, path in paths.items():
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((size, size))
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=80)
                out[item_id] = buf.getvalue()
        except OSError:
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
