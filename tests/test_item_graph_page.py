"""The Item graph page, driven with AppTest: building the graph as a job, settings that rebuild it, navigation."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmrec_core.engines
from mmrec_core.config import SAMPLE_DATASET, load_settings
from mmrec_core.data.splits import create_protocol
from mmrec_core.graph.build import build_item_graph
from mmrec_core.graph.edges import graph_stats
from mmrec_core.graph.view import edges_for, ego_network, load_inputs
from mmrec_core.store.workspace import open_workspace
from tests.app_helpers import rerun_until, run_app
from tests.fakes import ScriptedEngine

PAGE = "pages/item_graph.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def expected(data_dir: Path, alpha: float, k: int, window: int, m: int):
    """What mmrec_core says the page must show (read before the app opens the file)."""
    ws = open_workspace(load_settings(data_dir))
    try:
        inputs = load_inputs(ws.store, SAMPLE_DATASET, create_protocol(ws.store, SAMPLE_DATASET))
        edges = edges_for(inputs, alpha, k, window, m)
        return edges, graph_stats(edges, len(inputs.item_ids))
    finally:
        ws.close()


@pytest.fixture
def graph_dir(data_dir: Path) -> Path:
    ws = open_workspace(load_settings(data_dir))
    try:
        build_item_graph(ws, ScriptedEngine(ws.settings), SAMPLE_DATASET)
    finally:
        ws.close()
    return data_dir


def test_settings_rebuild_the_graph_and_neighbours_open(graph_dir: Path) -> None:
    loose_edges, loose = expected(graph_dir, 0.5, 10, 3, 2)
    _, strict = expected(graph_dir, 0.8, 10, 3, 2)
    assert strict.edges < loose.edges
    at = run_app(PAGE)
    assert at.title[0].value == f"Item graph · {SAMPLE_DATASET}"
    assert metrics(at)["Edges"] == f"{loose.edges:,}" and metrics(at)["Isolated items"] == f"{loose.isolated:,}"

    item = at.selectbox(key="graph_item").value
    ego = ego_network(loose_edges, item, 1)
    table = [df.value for df in at.dataframe if "neighbour" in df.value.columns][0]
    assert sorted(table["neighbour"]) == sorted(n for n in ego if n != item)
    assert len(at.get("plotly_chart")) == 1

    neighbour = table.sort_values("weight")["neighbour"].iloc[0]
    at.selectbox(key="graph_open").set_value(neighbour).run()
    assert not at.exception and at.selectbox(key="graph_item").value == neighbour

    at.slider(key="graph_alpha").set_value(0.8).run()
    assert metrics(at)["Edges"] == f"{strict.edges:,}" and metrics(at)["Semantic"] == f"{strict.semantic_edges:,}"


def test_build_item_graph_runs_as_a_job(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)  # instant embeddings
    at = run_app(PAGE)
    assert "No item graph yet" in at.info[0].value
    [b for b in at.button if b.label == "Build item graph"][0].click().run()
    rerun_until(at, lambda at: any("item graph graph-" in s.value for s in at.success), timeout=120)
    assert "Edges" in metrics(at) and int(metrics(at)["Edges"].replace(",", "")) > 0


def test_the_catalog_opens_an_item_in_the_graph(graph_dir: Path) -> None:
    at = run_app("pages/catalog.py")
    [b for b in at.button if b.key == "open_0111586001"][0].click().run()
    [b for b in at.button if b.label == "Item graph"][0].click().run()
    assert not at.exception
    assert at.title[0].value == f"Item graph · {SAMPLE_DATASET}"
    assert at.selectbox(key="graph_item").value == "0111586001"


def test_the_sliders_start_from_the_builds_defaults(graph_dir: Path) -> None:
    from mmrec_core.cli.main import build_parser
    from mmrec_core.core.options import build
    from mmrec_core.graph.edges import GraphConfig

    at = run_app(PAGE)
    shown = {key: at.slider(key=f"graph_{key}").value for key in ("alpha", "k", "window", "min_count")}
    cli = build(GraphConfig, vars(build_parser().parse_args(["graph", SAMPLE_DATASET])))
    assert shown == {key: getattr(GraphConfig(), key) for key in shown} == {key: getattr(cli, key) for key in shown}
