"""The Streamlit app, driven headless with streamlit.testing (AppTest): no browser, no server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mmrec_core.config import SAMPLE_DATASET, load_settings
from mmrec_core.data import stats
from mmrec_core.data.ingest import ingest
from mmrec_core.pipeline.stages import STAGES
from mmrec_core.store.workspace import open_workspace
from tests.app_helpers import run_app

pytestmark = pytest.mark.usefixtures("app_env")  # empty Streamlit caches, default engine settings


def summary_of(root: Path, dataset: str) -> dict:
    """What mmrec_core itself says about the data set (the page must show the same numbers)."""
    ws = open_workspace(load_settings(root))
    try:
        summary = stats.dataset_summary(ws.store, dataset)
        summary["top_titles"] = ws.store.sample_items_with_images(dataset, n=8)["title"].tolist()
        return summary
    finally:
        ws.close()  # before the app opens the same file


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    tables = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(tables) == 1, f"expected one table with a '{column}' column"
    return tables[0]


def assert_counts_shown(at: AppTest, summary: dict) -> None:
    shown = metrics(at)
    assert len(shown) == len(at.metric) == 8  # each tile once, also after reruns
    for label, key in (
        ("Users", "users"),
        ("Items", "items"),
        ("Interactions", "interactions"),
        ("Source rows", "source_rows"),
        ("Items with images", "items_with_images"),
    ):
        assert shown[label] == f"{summary[key]:,}", label


def test_overview_shows_the_sample(data_dir: Path) -> None:
    summary = summary_of(data_dir, SAMPLE_DATASET)
    at = run_app()

    assert_counts_shown(at, summary)
    shown = metrics(at)
    protocol = summary["protocols"][0]
    assert shown["Evaluated users"] == f"{protocol['evaluated_users']:,}"
    assert shown["Test repeat share"] == f"{protocol['test_repeat_share']:.1%}"
    assert at.title[0].value == f"Overview · {SAMPLE_DATASET}"

    status = table_with(at, "stage").set_index("stage")
    assert status.index.tolist() == list(STAGES)  # nothing run yet on this data folder
    assert status.loc["textualize", "state"] == "⬜ missing" and status.loc["sft", "state"] == "➖ optional"
    assert status.loc["textualize", "detail"] == f"0 of {summary['items']} items up to date"
    assert not at.info  # no precomputed results here
    assert table_with(at, "protocol_id")["protocol_id"].tolist() == [protocol["protocol_id"]]

    assert len(at.get("plotly_chart")) == 2  # history lengths, categories
    captions = [c for img in at.image for c in img.captions]
    assert len(captions) == len(summary["top_titles"]) == 8
    for caption, title in zip(captions, summary["top_titles"], strict=True):
        assert caption.startswith(f"{title} · ")  # most-bought first, with the purchase count

    assert at.sidebar.selectbox[0].label == "Data set"
    assert at.sidebar.selectbox[0].value == SAMPLE_DATASET
    sidebar_text = " ".join(m.value for m in [*at.sidebar.markdown, *at.sidebar.caption])
    assert "**Engine**: `builtin`" in sidebar_text
    assert str(data_dir.resolve()) in sidebar_text


def test_first_start_ingests_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "fresh"
    monkeypatch.setenv("MMREC_DATA_DIR", str(root))
    at = run_app()
    assert at.sidebar.selectbox[0].options == [SAMPLE_DATASET]

    st.cache_resource.clear()  # runs the app's on_release: its DuckDB connection closes
    # Another process can open the file now, so the app really let go of it.
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
            str(load_settings(root).db_path),
        ],
        capture_output=True,
        text=True,
    )
    assert opened.returncode == 0, opened.stderr
    assert_counts_shown(at, summary_of(root, SAMPLE_DATASET))


def test_switching_the_data_set_changes_the_page(data_dir: Path, sample_copy: Path, tmp_path: Path) -> None:
    # A smaller second data set: the first 1,500 purchases of the sample, so every count differs.
    trans = sample_copy / "transactions.csv"
    trans.write_text("".join(trans.read_text().splitlines(keepends=True)[:1501]))
    ws = open_workspace(load_settings(data_dir))
    try:
        ingest(ws.store, ws.images, "hm", sample_copy, name="other")
    finally:
        ws.close()
    sample, other = summary_of(data_dir, SAMPLE_DATASET), summary_of(data_dir, "other")
    assert sample["interactions"] != other["interactions"]

    at = run_app()
    assert at.sidebar.selectbox[0].options == ["other", SAMPLE_DATASET]
    assert at.sidebar.selectbox[0].value == SAMPLE_DATASET  # the default, though not first
    assert_counts_shown(at, sample)

    at.sidebar.selectbox[0].select("other").run()
    assert not at.exception
    assert at.title[0].value == "Overview · other"
    assert_counts_shown(at, other)

    # A plain rerun keeps the choice (session state). It also covers the pages/-folder quirk that
    # widgets._leave_legacy_pages_mode handles: without it, AppTest reruns skip app.py entirely.
    at.run()
    assert at.sidebar.selectbox[0].value == "other"
    assert_counts_shown(at, other)


def test_locked_database_shows_one_clear_error(data_dir: Path) -> None:
    db = load_settings(data_dir).db_path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        at = run_app()
        assert len(at.error) == 1
        assert "open in another process" in at.error[0].value
        assert not at.metric and not at.dataframe  # stopped before the page ran
    finally:
        holder.kill()
        holder.wait()


def test_sidebar_saves_engine_settings_and_respects_environment(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MMREC_DEVICE", "cpu")
    at = run_app()
    form = {w.label: w for w in [*at.sidebar.selectbox, *at.sidebar.text_input]}
    assert form["Device"].disabled and form["Device"].value == "cpu"  # the environment wins, read-only
    assert not form["Quantization"].disabled
    form["Engine"].select("hf")
    form["Llm"].input("/models/qwen")
    form["Quantization"].select("4bit")
    at.sidebar.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]

    saved = json.loads((data_dir / "settings.json").read_text())
    assert saved == {"engine": "hf", "llm": "/models/qwen", "quantization": "4bit"}  # device not written
    assert "**Engine**: `hf` · `/models/qwen`" in " ".join(m.value for m in at.sidebar.markdown)
    assert load_settings(data_dir).quantization == "4bit"
