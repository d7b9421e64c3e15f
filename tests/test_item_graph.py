"""The refined item graph: hand-made vectors and sequences where the right edges are obvious, then the sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmrec_core.data.splits import create_protocol, train_interactions
from mmrec_core.graph.build import GRAPH_VERSION, ITEM_TEXT_KIND, build_item_graph, load_graph
from mmrec_core.graph.edges import REASONS, GraphConfig, cooccurrence_edges, graph_stats, merge_edges, semantic_edges
from mmrec_core.graph.view import ego_network
from mmrec_core.textualize.texts import item_text
from tests.fakes import ScriptedEngine

# a, b, c point almost the same way; d lies between c and e; f points elsewhere. Cosines:
# ab .951  ac .898  bc .854  de .867  cd .828 | ad .498  bd .474  ce .439  bf .310  (every other pair 0)
IDS = list("abcdef")
VECTORS = np.array([[1, 0, 0], [0.95, 0.31, 0], [0.9, 0, 0.44], [0.5, 0, 0.87], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
ALL_PAIRS = {(s, d) for s in IDS for d in IDS if s != d}


def directed(src, dst) -> set[tuple[str, str]]:
    return {(IDS[s], IDS[d]) for s, d in zip(src, dst, strict=True)}


def pairs(text: str) -> set[tuple[str, str]]:
    """'ab ca' -> {("a", "b"), ("c", "a")}: directed pairs written compactly."""
    return {(p[0], p[1]) for p in text.split()}


@pytest.mark.parametrize(
    "k, alpha, expected, pruned",
    [
        (5, 0.8, pairs("ab ac ba bc ca cb cd dc de ed"), 30 - 10),  # the a-b-c triangle, c-d and d-e
        (1, 0.8, pairs("ab ba ca de ed"), 1),  # f's best (b, .31) is pruned
        (2, 0.45, pairs("ab ac ba bc ca cb de dc ed"), 3),  # e's second (c, .439) and both of f's are below alpha
        (5, 0.99, set(), 30),  # nothing passes a strict alpha
        (10, -1.0, ALL_PAIRS, 0),  # k larger than n-1 and no threshold: every other item
    ],
)
def test_semantic_edges_keep_top_k_above_alpha(k, alpha, expected, pruned):
    src, dst, cos = semantic_edges(VECTORS, k=k, alpha=alpha, block_size=4)
    assert directed(src, dst) == expected
    assert len(VECTORS) * min(k, len(VECTORS) - 1) - len(src) == pruned
    assert np.all(cos >= alpha) and not np.any(src == dst)
    np.testing.assert_allclose(cos, np.sum(VECTORS[src] * VECTORS[dst], axis=1), atol=1e-6)
    for row in np.unique(src):  # each item's neighbours come best first
        assert np.all(np.diff(cos[src == row]) <= 0)


@pytest.mark.parametrize("block_size", [1, 2, 5, 6, 1000])
def test_blocks_give_the_same_edges_as_one_block(block_size):
    one = semantic_edges(VECTORS, k=3, alpha=0.4, block_size=len(VECTORS))
    got = semantic_edges(VECTORS, k=3, alpha=0.4, block_size=block_size)
    assert directed(got[0], got[1]) == directed(one[0], one[1])
    np.testing.assert_allclose(got[2], one[2], atol=1e-6)


@pytest.mark.parametrize("n, k, alpha, block_size", [(300, 7, 0.3, 64), (301, 12, 0.0, 7), (50, 60, 0.2, 16)])
def test_semantic_edges_match_a_brute_force_reference(n, k, alpha, block_size):
    rng = np.random.default_rng(n)
    centres = rng.normal(size=(8, 16))
    x = centres[rng.integers(0, 8, n)] + 0.7 * rng.normal(size=(n, 16))  # clusters: some pairs pass alpha
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = set()
    for i, row in enumerate(sims):
        expected |= {(i, int(j)) for j in np.argsort(-row)[: min(k, n - 1)] if row[j] >= alpha}
    src, dst, _ = semantic_edges(x, k=k, alpha=alpha, block_size=block_size)
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == expected


def test_semantic_edges_normalise_rows_and_handle_tiny_inputs():
    scaled = semantic_edges(VECTORS * 3.0, k=2, alpha=0.8)
    plain = semantic_edges(VECTORS, k=2, alpha=0.8)
    assert directed(scaled[0], scaled[1]) == directed(plain[0], plain[1])
    for x in (np.zeros((0, 3), np.float32), VECTORS[:1]):  # no item, or one item: no pair at all
        assert all(len(a) == 0 for a in semantic_edges(x, k=3, alpha=0.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -1.01}, "alpha"),
        ({"k": 0}, "k"),
        ({"block_size": 0}, "block_size"),
    ],
)
def test_semantic_edges_refuse_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        semantic_edges(VECTORS, **{"k": 3, "alpha": 0.5, "block_size": 8, **kwargs})


def test_semantic_edges_refuse_a_flat_array():
    with pytest.raises(ValueError, match="2-d"):
        semantic_edges(VECTORS[0], k=2, alpha=0.5)


@pytest.mark.parametrize(
    "sequences, window, min_count, expected",
    [
        ({"u": "abcd"}, 1, 1, {"ab": 1, "bc": 1, "cd": 1}),
        ({"u": "abcd"}, 2, 1, {"ab": 1, "bc": 1, "cd": 1, "ac": 1, "bd": 1}),
        ({"u": "abcd"}, 3, 1, {"ab": 1, "bc": 1, "cd": 1, "ac": 1, "bd": 1, "ad": 1}),
        ({"u": "abcd"}, 50, 1, {"ab": 1, "bc": 1, "cd": 1, "ac": 1, "bd": 1, "ad": 1}),  # window > sequence
        ({"u": "axyb"}, 2, 1, {"ax": 1, "xy": 1, "yb": 1, "ay": 1, "xb": 1}),  # a and b are 3 apart: no pair
        ({"u1": "ba", "u2": "ab"}, 1, 2, {"ab": 2}),  # order does not matter, users add up
        ({"u1": "abab"}, 1, 1, {"ab": 1}),  # one user counts once per pair
        ({"u1": "abab"}, 1, 2, {}),  # ... so one user's loop cannot make an edge alone
        ({"u": "aab"}, 1, 1, {"ab": 1}),  # never a self pair
        ({"u1": "a", "u2": "b"}, 1, 1, {}),  # sequences of different users never touch
        ({"u1": "abc", "u2": "ab", "u3": "bc"}, 1, 2, {"ab": 2, "bc": 2}),
        ({"u1": "abc", "u2": "ab", "u3": "bc"}, 1, 3, {}),  # below min_count
        ({}, 3, 1, {}),
    ],
)
def test_cooccurrence_counts(sequences, window, min_count, expected):
    co = cooccurrence_edges({u: list(seq) for u, seq in sequences.items()}, window=window, min_count=min_count)
    got = {(s, d): c for s, d, c in co[["src", "dst", "count"]].itertuples(index=False)}
    expected = {tuple(sorted(pair)): c for pair, c in expected.items()}  # src < dst
    assert got == expected
    assert list(co.columns) == ["src", "dst", "count"]
    assert all(s < d for s, d in zip(co["src"], co["dst"], strict=True))


def test_cooccurrence_frame_follows_seq_not_row_order():
    rows = pd.DataFrame(
        {"user_id": ["u", "u", "u", "v", "v"], "seq": [2, 0, 1, 1, 0], "item_id": ["c", "a", "b", "a", "c"]}
    )
    co = cooccurrence_edges(rows.sample(frac=1, random_state=0), window=1, min_count=1)
    as_dict = cooccurrence_edges({"u": list("abc"), "v": list("ca")}, window=1, min_count=1)
    pd.testing.assert_frame_equal(co, as_dict)
    assert set(zip(co["src"], co["dst"], strict=True)) == {("a", "b"), ("b", "c"), ("a", "c")}


@pytest.mark.parametrize("kwargs, message", [({"window": 0}, "window"), ({"min_count": 0}, "min_count")])
def test_cooccurrence_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cooccurrence_edges({"u": list("ab")}, **{"window": 2, "min_count": 1, **kwargs})


def test_merge_gives_one_undirected_edge_per_pair_with_documented_weights():
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    semantic = (np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([0.9, 0.9, 0.8], np.float32))  # a-b both ways
    co = pd.DataFrame({"src": ["a", "c"], "dst": ["b", "d"], "count": [2, 1]})
    users = {"a": 4, "b": 4, "c": 1, "d": 4}
    edges = merge_edges(ids, semantic, co, users).set_index(["src", "dst"])
    assert edges["reason"].to_dict() == {("a", "b"): "both", ("a", "c"): "semantic", ("c", "d"): "co-occurrence"}
    weights = edges["weight"].to_dict()
    assert weights[("a", "c")] == pytest.approx(0.8)  # the cosine
    assert weights[("c", "d")] == pytest.approx(1 / np.sqrt(1 * 4))  # count / sqrt(users_c * users_d)
    assert weights[("a", "b")] == pytest.approx(1 - (1 - 0.9) * (1 - 2 / np.sqrt(4 * 4)))  # noisy or of .9 and .5


EDGES = pd.DataFrame(
    [
        ("a", "b", 0.9, "semantic"),
        ("b", "c", 0.5, "co-occurrence"),
        ("a", "c", 0.7, "both"),
        ("c", "d", 0.6, "semantic"),
        ("e", "f", 0.8, "co-occurrence"),
    ],
    columns=["src", "dst", "weight", "reason"],
)


def test_graph_stats_of_a_hand_made_graph():
    stats = graph_stats(EDGES, n_items=8)  # g and h have no edge
    assert (stats.items, stats.edges, stats.semantic_edges, stats.cooccurrence_edges, stats.both_edges) == (
        8,
        5,
        3,
        3,
        1,
    )
    assert (stats.isolated, stats.components, stats.largest_component) == (2, 4, 4)
    # degrees a2 b2 c3 d1 e1 f1 g0 h0: sorted 0 0 1 1 | 1 2 2 3
    assert (stats.degree_min, stats.degree_median, stats.degree_max) == (0, 1.0, 3)
    assert stats.degree_mean == pytest.approx(10 / 8)
    empty = graph_stats(EDGES.iloc[:0], n_items=3)
    assert (empty.edges, empty.isolated, empty.components, empty.degree_max) == (0, 3, 3, 0)


@pytest.mark.parametrize(
    "item, radius, nodes, edges",
    [
        ("a", 1, {"a": 0, "b": 1, "c": 1}, {("a", "b"), ("a", "c"), ("b", "c")}),  # b-c: an edge among neighbours
        ("a", 2, {"a": 0, "b": 1, "c": 1, "d": 2}, {("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")}),
        ("e", 2, {"e": 0, "f": 1}, {("e", "f")}),
        ("g", 1, {"g": 0}, set()),  # an isolated item is its own ego network
    ],
)
def test_ego_network(item, radius, nodes, edges):
    graph = ego_network(EDGES, item, radius=radius)
    assert dict(graph.nodes(data="hop")) == nodes
    assert {tuple(sorted(e)) for e in graph.edges} == edges
    weights = EDGES.set_index(["src", "dst"])["weight"]
    for a, b, data in graph.edges(data=True):
        assert data["reason"] in REASONS
        assert data["weight"] == weights.get((a, b), weights.get((b, a)))


def test_ego_network_refuses_a_radius_of_three():
    with pytest.raises(ValueError, match="radius"):
        ego_network(EDGES, "a", radius=3)


@pytest.mark.parametrize(
    "title, text, description, keywords, expected",
    [
        ("Tee", "Tee. A cotton top.", None, None, "Tee. A cotton top."),  # the text already opens with the title
        (
            "Tee",
            "A cotton top.",
            "A white tee.",
            ["white", "cotton"],
            "Tee\nA cotton top.\nA white tee.\nKeywords: white, cotton.",
        ),
        (None, "Only text", float("nan"), [], "Only text"),
    ],
)
def test_item_text_fuses_what_exists(title, text, description, keywords, expected):
    assert item_text(title, text, description, keywords) == expected


# -- on the real sample data set ------------------------------------------------------------------
def test_build_store_reuse_and_no_leakage(sample_workspace):
    ws, engine = sample_workspace, ScriptedEngine(sample_workspace.settings)
    pid = create_protocol(ws.store, "sample")
    config = GraphConfig(alpha=0.5, k=5, window=3, min_count=1)
    calls = []
    report = build_item_graph(ws, engine, "sample", pid, config, progress=lambda *a: calls.append(a))
    n_items = ws.store.count("items", "sample")
    assert not report.reused and calls
    assert (report.items, report.embedded, report.embeddings_reused) == (n_items, n_items, 0)
    assert report.edges > 0 and report.semantic_edges > 0 and report.cooccurrence_edges > 0
    assert len(ws.store.embeddings("sample", ITEM_TEXT_KIND)) == n_items

    edges = load_graph(ws.store, "sample", report.graph_id)
    assert len(edges) == report.edges
    assert set(edges["reason"]) == set(REASONS)
    assert (edges["src"] < edges["dst"]).all() and edges["weight"].between(0, 1).all()
    assert set(edges["engine"]) == {"scripted"} and set(edges["model"]) == {"scripted-bow"}
    assert set(edges["prompt_version"]) == {GRAPH_VERSION} and edges["input_hash"].nunique() == 1
    params = json.loads(edges["params"].iloc[0])
    assert (params["alpha"], params["k"], params["window"], params["min_count"]) == (0.5, 5, 3, 1)
    assert params["semantic_pruned"] == report.semantic_pruned and params["protocol_id"] == pid
    stats = graph_stats(edges, n_items)  # what the app shows for a stored graph: the report's figures
    assert (stats.edges, stats.components, stats.degree_mean) == (report.edges, report.components, report.degree_mean)

    # co-occurrence evidence = training sequences only; pairs formed only with a valid/test target are absent
    train = train_interactions(ws.store, pid)
    co_stored = {(s, d) for s, d, r in edges[["src", "dst", "reason"]].itertuples(index=False) if r != "semantic"}
    co_train = set(zip(*cooccurrence_edges(train, 3, 1)[["src", "dst"]].to_numpy().T, strict=True))
    co_all = set(
        zip(*cooccurrence_edges(ws.store.interactions("sample"), 3, 1)[["src", "dst"]].to_numpy().T, strict=True)
    )
    assert co_stored == co_train
    leaked = co_all - co_train
    assert leaked and not (leaked & co_stored)

    # the same inputs again: nothing rebuilt, rows untouched
    again = build_item_graph(ws, engine, "sample", pid, config)
    assert again.reused and again.graph_id == report.graph_id and again.edges == report.edges
    assert again.semantic_pruned == report.semantic_pruned
    pd.testing.assert_frame_equal(load_graph(ws.store, "sample", report.graph_id), edges)

    # another alpha is another graph, built from the stored embeddings
    strict = build_item_graph(ws, engine, "sample", pid, GraphConfig(alpha=0.9, k=5, window=3, min_count=1))
    assert strict.graph_id != report.graph_id and (strict.embedded, strict.embeddings_reused) == (0, n_items)
    assert strict.semantic_edges < report.semantic_edges and strict.semantic_pruned > report.semantic_pruned

    # one item's text changes: same graph_id, its rows replaced (not added to), one item re-embedded
    item = edges["src"].iloc[0]
    ws.store.cursor().execute("UPDATE items SET title = 'Renamed', text = 'Renamed thing' WHERE item_id = ?", [item])
    redo = build_item_graph(ws, engine, "sample", pid, config)
    assert not redo.reused and redo.graph_id == report.graph_id and redo.embedded == 1
    assert len(load_graph(ws.store, "sample", report.graph_id)) == redo.edges


@pytest.mark.parametrize(
    "dataset, protocol, config, error, message",
    [
        ("nope", None, GraphConfig(), KeyError, "Unknown data set 'nope'"),
        ("sample", None, GraphConfig(alpha=1.5), ValueError, "alpha"),
        ("sample", None, GraphConfig(alpha=-2), ValueError, "alpha"),
        ("sample", None, GraphConfig(k=0), ValueError, "k "),
        ("sample", None, GraphConfig(window=0), ValueError, "window"),
        ("sample", "sample:no-such-protocol", GraphConfig(), KeyError, "does not exist"),
    ],
)
def test_build_refuses_bad_input(sample_workspace, dataset, protocol, config, error, message):
    engine = ScriptedEngine(sample_workspace.settings)
    with pytest.raises(error, match=message):
        build_item_graph(sample_workspace, engine, dataset, protocol, config)
    assert sample_workspace.store.count("graph_edges", "sample") == 0


def test_load_graph_names_the_stored_graphs(sample_workspace):
    with pytest.raises(KeyError, match="none yet"):
        load_graph(sample_workspace.store, "sample", "graph-missing")
