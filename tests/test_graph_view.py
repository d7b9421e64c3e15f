"""The Item graph page's ego networks: hand-made vectors and counts where the right edges are obvious."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_core.graph_view import GraphInputs, ego_network, graph_figure

# a, b, c point almost the same way; d is between c and e; e, f point elsewhere
VECTORS = {
    "a": [1, 0, 0],
    "b": [0.95, 0.31, 0],
    "c": [0.9, 0, 0.44],
    "d": [0.5, 0, 0.87],
    "e": [0, 0, 1],
    "f": [0, 1, 0],
}


def inputs(co: list[tuple[str, str, int]]) -> GraphInputs:
    ids = np.array(list(VECTORS), dtype=object)
    vecs = np.array(list(VECTORS.values()), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return GraphInputs(ids, vecs, pd.DataFrame(co, columns=["src", "dst", "count"]))


@pytest.mark.parametrize(
    "alpha, k, min_count, radius, co, edges",
    [
        (0.8, 5, 1, 1, [], {("a", "b"): "semantic", ("a", "c"): "semantic"}),
        (0.8, 1, 1, 1, [], {("a", "b"): "semantic"}),  # k keeps only the closest
        (0.99, 5, 1, 1, [], {}),  # nothing passes a strict alpha
        (0.8, 5, 1, 1, [("a", "f", 3)], {("a", "b"): "semantic", ("a", "c"): "semantic", ("a", "f"): "co-occurrence"}),
        (0.8, 5, 4, 1, [("a", "f", 3)], {("a", "b"): "semantic", ("a", "c"): "semantic"}),  # below min_count
        (0.8, 5, 1, 1, [("a", "b", 2)], {("a", "b"): "both", ("a", "c"): "semantic"}),
        # radius 2 reaches d through c (and the b-c edge found from both sides is one edge)
        (
            0.8,
            5,
            1,
            2,
            [],
            {("a", "b"): "semantic", ("a", "c"): "semantic", ("b", "c"): "semantic", ("c", "d"): "semantic"},
        ),
    ],
)
def test_ego_network_edges(alpha, k, min_count, radius, co, edges):
    graph = ego_network(inputs(co), "a", alpha=alpha, k=k, min_count=min_count, radius=radius)
    got = {tuple(sorted(e)): data["reason"] for *e, data in graph.edges(data=True)}
    assert got == edges
    assert graph.nodes["a"]["hop"] == 0


def test_ego_network_refuses_unknown_items_and_radius():
    with pytest.raises(KeyError, match="Unknown item 'zz'"):
        ego_network(inputs([]), "zz", 0.5, 3, 1)
    with pytest.raises(ValueError, match="radius"):
        ego_network(inputs([]), "a", 0.5, 3, 1, radius=3)


def test_figure_has_one_trace_per_reason_and_every_node():
    graph = ego_network(inputs([("a", "b", 2), ("a", "f", 1)]), "a", 0.8, 5, 1)
    items = pd.DataFrame({"title": list("ABCDEF"), "category": "x"}, index=list(VECTORS))
    fig = graph_figure(graph, items, {}, "a")
    names = [t.name for t in fig.data]
    assert names == ["semantic", "co-occurrence", "both", "items"]
    assert list(fig.data[-1].customdata) == list(graph)  # a click maps back to an item id
