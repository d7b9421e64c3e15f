"""Rationale faithfulness (`explain.faithfulness`): the lexical citation rule, the per-rationale figures on
hand-made attributions, the stored runs and their board, `mmrec eval-rationales` over the zero-shot model and
an adapter, and the Evaluate page's section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmrec_core.engines
from mmrec_core.data.splits import create_protocol
from mmrec_core.explain.faithfulness import (
    beside_accuracy,
    cited_pieces,
    evaluate_faithfulness,
    faithfulness_board,
    faithfulness_row,
    rationale_figures,
)
from mmrec_core.store.workspace import Workspace
from tests.conftest import fake_adapter
from tests.fakes import ScriptedEngine, TunedScripted

TITLES = {"a": "Striped shirt", "b": "Wool coat", "c": "Leather boots", "x": "Linen trousers"}
PIECES = pd.DataFrame(
    [
        ("purchase", "a", "Striped shirt: cotton, stripes, blue", -0.30),
        ("purchase", "b", "Wool coat: wool, grey, winter", 0.10),
        ("similar customer", "c", "Leather boots: leather, brown", 0.05),
        ("profile sentence", "1", "They buy striped cotton shirts for summer.", 0.02),
        ("profile sentence", "2", "Prefers dark colours in the evening.", 0.01),
        ("catalog keywords", "x", "linen, navy", 0.0),
    ],
    columns=["piece_kind", "piece_key", "piece_text", "effect"],
)


def test_a_title_named_cites_that_purchase_and_a_profile_sentence_sharing_words() -> None:
    strength = cited_pieces("They bought the Striped shirt before; this one is cotton and striped too.", PIECES, TITLES)
    assert strength[0] == 1.0  # the title, named
    assert strength[1] == strength[2] == 0.0  # the other purchase and the similar customer's item: not named
    assert strength[3] == pytest.approx(3 / 4)  # striped, cotton, shirt(s) of striped/cotton/shirt/summer
    assert strength[4] == strength[5] == 0.0
    # keywords: the share of an item's keywords named; one shared profile word of four is no citation
    strength = cited_pieces("A grey wool piece in navy for the summer.", PIECES, TITLES)
    assert strength[1] == pytest.approx(2 / 3) and strength[0] == 0.0
    assert strength[3] == 0.0 and strength[5] == pytest.approx(1 / 2)
    assert cited_pieces("", PIECES, TITLES) == [0.0] * len(PIECES)


def test_top_cited_and_spearman_on_a_known_attribution() -> None:
    figures = rationale_figures([1.0, 0.0, 0.5], [-0.3, 0.1, 0.05])
    assert figures["top_cited"] == 1.0 and figures["cited"] == 2
    assert figures["spearman"] == pytest.approx(0.5)  # ranks (3, 1, 2) vs (3, 2, 1)
    assert figures["chance_top"] == pytest.approx(2 / 3)  # citing 2 of 3 pieces at random hits the top one 2/3
    assert rationale_figures([0.0, 1.0, 0.5], [-0.3, 0.1, 0.05])["top_cited"] == 0.0
    assert rationale_figures([0.0, 1.0], [0.2, -0.2])["top_cited"] == 1.0  # a tie at the top: either counts
    nothing = rationale_figures([1.0, 0.0], [0.0, 0.0])  # no piece moves the score: undefined
    assert math.isnan(nothing["top_cited"]) and math.isnan(nothing["spearman"]) and math.isnan(nothing["chance_top"])
    assert math.isnan(rationale_figures([0.0, 0.0, 0.0], [0.3, 0.1, 0.05])["spearman"])  # nothing cited

    row = faithfulness_row("You bought the Striped shirt.", PIECES, TITLES, shown="Nothing relevant here.")
    assert row["top_cited"] == 1.0 and row["shown_top_cited"] == 0.0
    assert row["cited"] == 2  # the purchase, and the profile sentence sharing 'striped' and 'shirt'
    assert row["top_piece"].startswith("purchase: Striped shirt") and row["top_effect"] == pytest.approx(0.3)
    assert row["pieces"] == len(PIECES) and row["cites"].startswith("purchase: Striped shirt")


def test_accuracy_beside_faithfulness_by_label_or_by_adapter() -> None:
    board = pd.DataFrame({
        "label": ["llm-pointwise zero-shot", "llm-pointwise + grpo-1", "llm-listwise zero-shot"],
        "adapter": ["", "/runs/grpo-1/adapter", ""], "top piece cited": [0.5, 0.2, 0.1],
    })  # fmt: skip
    ranked = pd.DataFrame({"label": ["llm-pointwise zero-shot", "llm-listwise + grpo-1"], "NDCG@5": [0.3, 0.4]})
    out = beside_accuracy(board, ranked)
    assert out["NDCG@5"].tolist()[:2] == [0.3, 0.4] and out["NDCG@5"].isna().tolist() == [False, False, True]
    assert out["ranked as"].tolist()[:2] == ["llm-pointwise zero-shot", "llm-listwise + grpo-1"]
    assert pd.isna(out["ranked as"].iloc[2])


class FailsFirst(ScriptedEngine):
    """Its first generation fails (one customer's answer), as a broken prompt would."""

    calls = 0

    def generate(self, prompts, options=None, system=None):
        FailsFirst.calls += 1
        if FailsFirst.calls == 1:
            raise RuntimeError("out of memory")
        return super().generate(prompts, options, system)


def test_evaluate_faithfulness_figures_in_range_stored_and_on_the_board(rec_ws: Workspace) -> None:
    from mmrec_core.evaluate.rationales import evaluate_rationales

    pid = create_protocol(rec_ws.store, "sample")
    engine = ScriptedEngine(rec_ws.settings)
    summary, table = evaluate_faithfulness(rec_ws, engine, "sample", users=3)
    assert summary["users"] == 3 and summary["rationales"] == len(table) == 9  # the top 3 of each
    assert summary["failed users"] == 0 and not summary["failed"]
    for name in ("top piece cited", "cites any piece", "shown: top piece cited"):
        assert 0 <= summary[name] <= 1, name
    assert summary["top |effect|"] > 0 and summary["seconds per user"] > 0
    assert np.isnan(summary["spearman"]) or -1 <= summary["spearman"] <= 1
    assert table["user_id"].nunique() == 3 and (table["pieces"] > 0).all()
    assert summary["top piece cited"] == pytest.approx(table["top_cited"].mean())

    # the rationales `evaluate_rationales` wrote for the same users give the same figures, nothing generated again
    _, written = evaluate_rationales(rec_ws, engine, "sample", users=3)
    engine.prompts.clear()
    again, same = evaluate_faithfulness(rec_ws, engine, "sample", users=3, written=written)
    assert not engine.prompts  # no rationale generated, every attribution read back
    columns = ["user_id", "item_id", "top_cited", "cited"]
    assert same[columns].equals(table[columns])

    board = faithfulness_board(rec_ws, "sample", pid)
    assert len(board) == 1  # the newest run of the setting
    row = board.iloc[0]
    assert row["label"] == "llm-pointwise zero-shot" and row["method"] == "llm" and row["run_id"] == again["run_id"]
    assert row["rationales"] == 9 and row["top piece cited"] == pytest.approx(again["top piece cited"])

    # listwise: one rationale per valid answer, its own row on the board; a failing customer is skipped
    FailsFirst.calls = 0
    listwise, rows = evaluate_faithfulness(rec_ws, FailsFirst(rec_ws.settings), "sample", users=4, mode="listwise")
    assert listwise["failed users"] == 1 and "out of memory" in listwise["failed"][0][1]
    assert listwise["rationales"] == len(rows) <= 3 and rows["user_id"].is_unique
    board = faithfulness_board(rec_ws, "sample", pid).set_index("label")
    assert board.loc["llm-listwise zero-shot", "users"] == 4 and len(board) == 2

    # no rationales at all (none written, e.g. --explain 0): a run with no figures, no user failed
    empty, _ = evaluate_faithfulness(rec_ws, engine, "sample", users=2, written=pd.DataFrame())
    assert empty["rationales"] == 0 and empty["failed users"] == 0 and np.isnan(empty["top piece cited"])


def scripted_or_tuned(settings):
    return (TunedScripted if settings.adapter else ScriptedEngine)(settings)


def test_cli_eval_rationales_reports_the_zero_shot_model_and_each_adapter(
    rec_ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from mmrec_core.cli.main import build_parser

    pid = create_protocol(rec_ws.store, "sample")
    adapter = fake_adapter(rec_ws, pid)
    monkeypatch.setattr(mmrec_core.engines, "get_engine", scripted_or_tuned)
    run = lambda *flags: (a := build_parser().parse_args(["eval-rationales", "sample", *flags])).run(rec_ws, a)  # noqa: E731

    run("--users", "2")
    out = capsys.readouterr().out
    assert "LLM zero-shot (scripted-llm): rationales for the top 3 of 2 test users" in out
    assert f"LLM llm-sft {adapter} (scripted-llm)" in out
    assert out.count("cite verified evidence") == 2 and out.count("faithfulness (run") == 2  # one block per model
    board = faithfulness_board(rec_ws, "sample", pid).set_index("label")
    assert set(board.index) == {"llm-pointwise zero-shot", "llm-pointwise + sft-0123456789ab"}
    assert board.loc["llm-pointwise + sft-0123456789ab", "method"] == "llm-sft"
    assert board.loc["llm-pointwise + sft-0123456789ab", "adapter"] == adapter

    run("--users", "2", "--no-adapters", "--mode", "listwise")
    out = capsys.readouterr().out
    assert out.count("faithfulness (run") == 1 and "answer's first item (listwise)" in out
    run("--users", "2", "--adapter", adapter)
    out = capsys.readouterr().out
    assert out.count("faithfulness (run") == 1 and f"LLM adapter {adapter}" in out
    assert len(faithfulness_board(rec_ws, "sample", pid)) == 3


def test_the_evaluate_page_shows_faithfulness_beside_the_leaderboard(
    eval_db: Path, tmp_path: Path, app_env: pytest.MonkeyPatch
) -> None:
    import streamlit as st

    from mmrec_core.config import load_settings
    from mmrec_core.store.workspace import open_workspace
    from tests.app_helpers import run_app
    from tests.conftest import app_data_dir

    app_env.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)
    root = app_data_dir(eval_db, tmp_path, app_env)
    at = run_app("pages/evaluate.py")
    assert any("mmrec eval-rationales sample" in i.value for i in at.info)
    st.cache_resource.clear()  # the app's DuckDB connection closes, so the test can write a run

    ws = open_workspace(load_settings(root))
    evaluate_faithfulness(ws, ScriptedEngine(ws.settings), "sample", users=2)
    ws.close()
    at = run_app("pages/evaluate.py")
    assert any(h.value == "Do the rationales explain the scores?" for h in at.subheader)
    shown = next(d.value for d in at.dataframe if "ranked as" in d.value.columns)
    assert shown["label"].tolist() == ["llm-pointwise zero-shot"]
    assert 0 <= shown["NDCG@5"].iloc[0] <= 1 and 0 <= shown["top piece cited"].iloc[0] <= 1
