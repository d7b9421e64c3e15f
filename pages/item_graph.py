"""Item graph: one item's neighbourhood in the refined item graph, rebuilt live for any alpha, k and K_c.

The graph is built by a background job (`item_graph.build_item_graph`, also `mmrec graph`); the sliders
rerun the same rules on the stored item embeddings and TRAINING sequences (`graph_view.edges_for`).
"""

import json

import pandas as pd
import streamlit as st

from mmrec_core.core import jobs
from mmrec_core.engines import get_engine
from mmrec_core.graph import view as graph_view
from mmrec_core.graph.build import ITEM_TEXT_KIND, build_item_graph
from mmrec_core.graph.edges import GraphConfig, graph_stats
from mmrec_core.store.workspace import default_protocol
from mmrec_core.textualize import catalog
from widgets import current_dataset, data_version, get_workspace, live_job, option_widgets

SELECTED, PENDING, JOB = "graph_item", "graph_clicked", "item-graph"

ws = get_workspace()
dataset = current_dataset()
protocol = default_protocol(ws, dataset)
st.title(f"Item graph · {dataset}")


@st.cache_data(show_spinner="Loading item embeddings and training sequences…", max_entries=4)
def inputs(version: str, protocol_id: str, n_embeddings: int) -> graph_view.GraphInputs:
    return graph_view.load_inputs(ws.store, dataset, protocol_id)


@st.cache_data(show_spinner="Rebuilding the graph for these settings…", max_entries=16)
def edges(version: str, protocol_id: str, n_embeddings: int, alpha: float, k: int, window: int, m: int):
    return graph_view.edges_for(inputs(version, protocol_id, n_embeddings), alpha, k, window, m)


def build() -> None:
    engine = get_engine(ws.settings)
    work = lambda progress: build_item_graph(ws, engine, dataset, protocol, GraphConfig(), progress)  # noqa: E731
    jobs.start_job(ws.store, JOB, {"dataset": dataset, "protocol_id": protocol}, work)




running = live_job(ws.store, JOB, dataset=dataset, protocol_id=protocol)
n_vectors = ws.store.embedding_count(dataset, ITEM_TEXT_KIND)
built = [json.loads(p).get("protocol_id") for p in ws.store.stored_graphs(dataset)["params"]]
if protocol not in built or running:  # the embeddings alone may be a build still under way
    st.info("No item graph yet: build it here or with `mmrec graph` (embeds every item's text once).")
    st.button("Build item graph", on_click=build, disabled=running, type="primary")
    st.stop()

with st.expander("Graph settings", expanded=True):
    c = st.columns(5)
    names = ("alpha", "k", "window", "min-count")  # the build's own defaults (GraphConfig), as `mmrec graph`
    chosen = {n: option_widgets(GraphConfig, [n], "graph", container=col)[n] for n, col in zip(names, c, strict=False)}
    alpha, k, window, m = (chosen[n] for n in names)
    radius = c[4].radio("Radius", [1, 2], horizontal=True, key="graph_radius")
version = data_version(ws, dataset)
graph_edges = edges(version, protocol, n_vectors, alpha, k, window, m)
stats = graph_stats(graph_edges, n_vectors)
tiles = {
    "Edges": stats.edges,
    "Semantic": stats.semantic_edges,
    "Co-occurrence": stats.cooccurrence_edges,
    "Both": stats.both_edges,
    "Isolated items": stats.isolated,
    "Components": stats.components,
    "Mean degree": f"{stats.degree_mean:.2f}",
}
for col, (label, value) in zip(st.columns(len(tiles)), tiles.items(), strict=True):
    col.metric(label, f"{value:,}" if isinstance(value, int) else value)

query = st.text_input("Find an item", key="graph_query", placeholder="title words, category or id")
found = catalog.search_items(ws.store, dataset, query, limit=200)
titles = ws.store.items_with_images(dataset).set_index("item_id")
options = found["item_id"].tolist()
if PENDING in st.session_state:
    st.session_state[SELECTED] = st.session_state.pop(PENDING)
if SELECTED not in st.session_state and len(graph_edges):  # start on a well-connected item, not a hub
    degree = pd.concat([graph_edges["src"], graph_edges["dst"]]).value_counts()
    st.session_state[SELECTED] = degree.index[len(degree) // 4]
if st.session_state.get(SELECTED) in titles.index and st.session_state[SELECTED] not in options:
    options.insert(0, st.session_state[SELECTED])  # opened by a click or from another page: keep it
if not options:
    st.info("No item matches.")
    st.stop()
item = st.selectbox("Item", options, key=SELECTED, format_func=lambda i: f"{titles.at[i, 'title']} · {i}")

ego = graph_view.ego_network(graph_edges, item, radius)
paths = {
    i: str(ws.images.path(titles.at[i, "image_sha256"], titles.at[i, "ext"]))
    for i in ego
    if isinstance(titles.at[i, "ext"], str)
}
figure = graph_view.graph_figure(ego, titles, graph_view.thumbnails(paths), item)
event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="graph_plot", width="stretch")
clicked = [p.get("customdata") for p in (event.selection.points if event else [])]
if clicked and clicked[0] and clicked[0] != item:  # a click on a node opens that item (on the next run:
    st.session_state[PENDING] = clicked[0]  # the item selectbox above is already drawn in this one)
    st.rerun()

rows = [
    {"neighbour": b if a == item else a, "reason": d["reason"], "weight": d["weight"]}
    for a, b, d in ego.edges(item, data=True)
]
table = pd.DataFrame(rows, columns=["neighbour", "reason", "weight"])
table["title"] = [titles.at[i, "title"] for i in table["neighbour"]]
st.markdown(f"**{len(table)} direct neighbours** of {titles.at[item, 'title']} ({ego.number_of_nodes()} items shown)")
st.dataframe(table.sort_values("weight", ascending=False), hide_index=True, width="stretch")


def open_neighbour() -> None:
    st.session_state[SELECTED], st.session_state["graph_open"] = st.session_state["graph_open"], None


if len(table):
    st.selectbox(
        "Open a neighbour",
        [None, *table["neighbour"]],
        key="graph_open",
        on_change=open_neighbour,
        format_func=lambda i: "—" if i is None else f"{titles.at[i, 'title']} · {i}",
    )
