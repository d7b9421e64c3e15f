"""The Evaluate page, driven with AppTest on the sample after `eval --all` (scripted LLM): the leaderboard
with intervals, the protocol guard's notice, two runs compared, a customer opened on another page."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmrec_core.engines
from mmrec_core.config import SAMPLE_DATASET
from tests.app_helpers import run_app
from tests.conftest import app_data_dir
from tests.fakes import ScriptedEngine

PAGE = "pages/evaluate.py"


@pytest.fixture
def eval_dir(eval_db: Path, tmp_path: Path, app_env: pytest.MonkeyPatch) -> Path:
    app_env.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)  # the Recommend page opens without a model
    return app_data_dir(eval_db, tmp_path, app_env)


def test_leaderboard_with_intervals_charts_and_the_subset_stated(eval_dir: Path) -> None:
    at = run_app(PAGE)
    assert at.title[0].value == f"Evaluate · {SAMPLE_DATASET}"
    table = at.dataframe[0].value
    assert len(table) == 5 and {"sasrec", "popularity", "repeat", "llm-pointwise zero-shot"} <= set(table["label"])
    assert table["NDCG@5"].str.match(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]").all()
    full = at.dataframe[1].value  # the whole-catalog protocol: model rankings and the two-stage run
    assert {"sasrec", "sasrec top-10 + llm-pointwise"} <= set(full["label"])
    assert full.loc[full["label"] == "sasrec top-10 + llm-pointwise", "Recall@K (retriever)"].between(0, 1).all()
    assert any("30 of 293 users (a subset)" in w.value for w in at.warning)  # never silently dropped
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert '"error_y"' in charts[0] and "NDCG@5" in charts[0]
    assert len(charts) == 2  # the leaderboard and the breakdown
    assert any("Wilcoxon p" in m.value for m in at.markdown)
    at.radio(key="ev_metric").set_value("AUC").run()
    assert "AUC" in at.get("plotly_chart")[0].proto.spec
    at.radio(key="ev_by").set_value("category").run()
    assert "test item category" in at.get("plotly_chart")[1].proto.spec
    at.radio(key="ev_by").set_value("cold").run()  # items never bought in training: where content must help
    spec = at.get("plotly_chart")[1].proto.spec
    assert '"cold"' in spec and '"warm"' in spec


@pytest.mark.parametrize("page", ["Recommend", "Customers"])
def test_a_customer_the_runs_disagree_on_opens_on_another_page(eval_dir: Path, page: str) -> None:
    at = run_app(PAGE)
    assert len(at.selectbox(key="ev_a").options) == 5
    only_a, only_b = at.dataframe[2].value, at.dataframe[3].value
    assert len(only_a) + len(only_b) > 0 and (only_a["rank_a"] <= 5).all() and (only_b["rank_b"] <= 5).all()
    user = at.selectbox(key="ev_user").value
    at.radio(key="ev_page").set_value(page)
    at.button(key="ev_go").click().run()  # the click's rerun switches pages
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.startswith(page)
    chosen = at.selectbox(key="rec_user") if page == "Recommend" else at.radio(key="customer_selected")
    assert chosen.value == user


def test_the_same_run_twice_is_not_compared(eval_dir: Path) -> None:
    at = run_app(PAGE)
    at.selectbox(key="ev_b").set_value(at.selectbox(key="ev_a").value).run()
    assert any("two different runs" in i.value for i in at.info)


def test_an_empty_data_folder_names_the_command(data_dir: Path) -> None:
    at = run_app(PAGE)
    assert any(f"mmrec eval --all {SAMPLE_DATASET}" in i.value for i in at.info)
