"""The Item graph page's rebuilt graphs and drawing: hand-made vectors and sequences with obvious edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_core.graph.view import GraphInputs, edges_for, ego_network, graph_figure

# cosines: a-b .95, a-c .90, b-c .85, c-d .83, d-e .87; f is close to nothing
VECTORS = {
    "a": [1, 0, 0],
    "b": [0.95, 0.31, 0],
    "c": [0.9, 0, 0.44],
    "d": [0.5, 0, 0.87],
    "e": [0, 0, 1],
    "f": [0, 1, 0],
}


def inputs(sequences: dict[str, list[str]]) -> GraphInputs:
    ids = np.array(list(VECTORS), dtype=object)
    vecs = np.array(list(VECTORS.values()), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [(u, p, i) for u, seq in sequences.items() for p, i in enumerate(seq)]
    return GraphInputs(ids, vecs, pd.DataFrame(rows, columns=["user_id", "seq", "item_id"]))


TWO_USERS_A_THEN_F = {"u1": ["a", "f"], "u2": ["a", "e", "f"]}


@pytest.mark.parametrize(
    "alpha, k, window, min_count, sequences, edges",
    [
        (0.8, 5, 1, 1, {}, {("a", "b"): "semantic", ("a", "c"): "semantic", ("b", "c"): "semantic",
                            ("c", "d"): "semantic", ("d", "e"): "semantic"}),
        (0.8, 1, 1, 1, {}, {("a", "b"): "semantic", ("a", "c"): "semantic", ("d", "e"): "semantic"}),  # top-1 each
        (0.99, 5, 1, 1, {}, {}),  # a strict alpha keeps nothing
        # a-f co-occur for 2 users only when the window spans the e in between
        (0.99, 5, 1, 2, TWO_USERS_A_THEN_F, {}),
        (0.99, 5, 2, 2, TWO_USERS_A_THEN_F, {("a", "f"): "co-occurrence"}),
        (0.99, 5, 2, 3, TWO_USERS_A_THEN_F, {}),  # below min_count
        (0.8, 1, 1, 1, {"u1": ["a", "b"]}, {("a", "b"): "both", ("a", "c"): "semantic", ("d", "e"): "semantic"}),
    ],
)
def test_rebuilt_edges_follow_alpha_k_and_window(alpha, k, window, min_count, sequences, edges):
    got = edges_for(inputs(sequences), alpha, k, window, min_count)
    assert dict(zip(zip(got["src"], got["dst"], strict=True), got["reason"], strict=True)) == edges


def test_figure_draws_every_reason_and_node_of_an_ego_network():
    edges = edges_for(inputs({"u1": ["a", "b"], "u2": ["a", "f"]}), 0.8, 5, 1, 1)
    graph = ego_network(edges, "a", radius=1)
    assert set(graph) == {"a", "b", "c", "f"}
    items = pd.DataFrame({"title": list("ABCDEF"), "category": "x"}, index=list(VECTORS))
    fig = graph_figure(graph, items, {}, "a")
    assert [t.name for t in fig.data] == ["semantic", "co-occurrence", "both", "items"]
    assert list(fig.data[-1].customdata) == list(graph)  # a click maps back to an item id
