"""Comparing runs: `eval --all`, per-user ranks, bootstrap intervals, paired tests, the protocol guard,
disagreements, breakdowns, `mmrec report` (sample data, the scripted engine for the LLM)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mmrec_core.config import load_settings
from mmrec_core.data.splits import create_protocol
from mmrec_core.evaluate import leaderboard as lb
from mmrec_core.evaluate.eval_all import eval_all, plan
from mmrec_core.evaluate.offline import evaluate_model
from mmrec_core.models.data import load_train_data
from mmrec_core.store.workspace import Workspace, open_workspace
from tests.conftest import engine_for_adapters, fake_adapter


def _pid(ws: Workspace) -> str:
    return create_protocol(ws.store, "sample")


def _run_of(ws: Workspace, label: str) -> str:
    board = lb.leaderboard(ws, "sample", _pid(ws))
    return board.table.set_index("label").loc[label, "run_id"]


def test_eval_all_runs_every_available_model_with_provenance_and_per_user_ranks(eval_ws: Workspace) -> None:
    pid = _pid(eval_ws)
    runs = lb.eval_runs(eval_ws, "sample", pid)
    full = runs[~runs["subset"] & ~runs["full_catalog"]]
    expected = {"popularity", "repeat", "sasrec", "llm-pointwise zero-shot", "llm-pointwise + sft-0123456789ab"}
    assert set(full["label"]) == expected
    n_users = eval_ws.store.scalar("SELECT n_users FROM protocols WHERE protocol_id = ?", [pid])
    assert (full["users"] == n_users).all() and full["seconds_per_user"].notna().all()
    for params in eval_ws.store.sql_df("SELECT params FROM runs WHERE kind = 'eval'")["params"].map(json.loads):
        assert params["candidates_hash"] and params["code_version"].startswith("0.1.0")
    tuned = json.loads(
        eval_ws.store.scalar(
            "SELECT params FROM runs WHERE run_id = ?", [_run_of(eval_ws, "llm-pointwise + sft-0123456789ab")]
        )
    )
    assert tuned["adapter"].endswith("sft-0123456789ab/adapter") and tuned["engine"] == "scripted"


def test_per_user_ranks_reproduce_each_runs_stored_metrics_and_intervals_hold_the_mean(eval_ws: Workspace) -> None:
    board = lb.leaderboard(eval_ws, "sample", _pid(eval_ws))
    assert len(board.table) == 5  # popularity, repeat, sasrec, the LLM zero-shot and with an adapter
    for run_id in board.table["run_id"]:
        stored = eval_ws.store.sql_df(
            "SELECT name, value FROM metrics WHERE run_id = ? AND subset = 'all' AND part = 'test'", [run_id]
        ).set_index("name")["value"]
        per_user = lb.user_metrics(eval_ws, run_id)
        for m in lb.METRICS:
            assert per_user[m].mean() == pytest.approx(stored[m], abs=1e-9), (run_id, m)
    lo, mean, hi = (board.table[[f"{m}{s}" for m in lb.METRICS]].to_numpy() for s in ("_lo", "", "_hi"))
    assert (lo <= mean).all() and (mean <= hi).all() and (hi - lo > 0).all()
    assert board.table["NDCG@5"].is_monotonic_decreasing


def test_a_second_eval_all_reads_the_llm_scores_back(eval_ws: Workspace) -> None:
    pid = _pid(eval_ws)
    engines = {}

    def engine_for(adapter):
        engines[adapter] = engine_for_adapters(eval_ws.settings)(adapter)
        return engines[adapter]

    before = lb.leaderboard(eval_ws, "sample", pid).table.set_index("label")
    done = eval_all(eval_ws, "sample", pid, engine_for=engine_for)
    assert all(e.prompts == [] for e in engines.values())  # nothing scored again: same inputs, same provenance
    after = lb.leaderboard(eval_ws, "sample", pid).table.set_index("label")
    sampled = {d["run_id"] for d in done if not d["run_id"].startswith("eval-two-stage")}
    assert set(after["run_id"]) == sampled  # the newest run of each setting is shown
    two_stage = done[-1]["run_id"]  # planned last, shown in the whole-catalog table
    assert two_stage.startswith("eval-two-stage") and two_stage in set(
        lb.full_catalog_board(eval_ws, "sample", pid)["run_id"]
    )
    pd.testing.assert_series_equal(before["NDCG@5"], after["NDCG@5"])


def test_bootstrap_interval_width_matches_the_binomial_standard_error() -> None:
    hits = np.random.default_rng(1).random(400) < 0.3
    boot = lb.bootstrap_means(hits.astype(float), n_boot=4000, seed=0)[:, 0]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    expected = 2 * 1.96 * np.sqrt(hits.mean() * (1 - hits.mean()) / len(hits))
    assert hi - lo == pytest.approx(expected, rel=0.15) and lo < hits.mean() < hi
    assert np.ptp(lb.bootstrap_means(np.full(50, 0.25), 100)) == 0  # no spread, no interval


def _fake_ranks(ws: Workspace, pid: str, greater: np.ndarray, like: str) -> str:
    """A run with hand-set ranks on the same users and candidates as run `like`."""
    users = lb.user_metrics(ws, like).index
    params = json.loads(ws.store.scalar("SELECT params FROM runs WHERE run_id = ?", [like]))
    ranks = pd.DataFrame({"user_id": users, "greater": greater, "ties": 0, "competitors": 20})
    return ws.store.record_run("sample", pid, "eval", "handmade", params, None, None, ranks)


def test_paired_test_finds_a_real_difference_and_none_between_equal_runs(eval_ws: Workspace) -> None:
    pid = _pid(eval_ws)
    pop = _run_of(eval_ws, "popularity")
    n = len(lb.user_metrics(eval_ws, pop))
    rng = np.random.default_rng(0)
    good = rng.integers(0, 3, n)  # the positive mostly in the top 3
    worse = np.minimum(good + rng.integers(0, 6, n), 20)  # never better, often worse
    a, b = _fake_ranks(eval_ws, pid, good, pop), _fake_ranks(eval_ws, pid, worse, pop)
    r = lb.paired_test(eval_ws, a, b, "NDCG@5")
    assert r.diff > 0 and r.ci[0] > 0 and r.p_value < 1e-6 and r.b_better == 0 and r.users == n
    same = lb.paired_test(eval_ws, a, _fake_ranks(eval_ws, pid, good, pop), "HR@5")
    assert same.diff == 0 and same.ci == (0.0, 0.0) and same.p_value == 1.0


def test_the_protocol_guard_keeps_other_candidates_and_subsets_out_of_the_ranking(eval_ws: Workspace) -> None:
    pid = _pid(eval_ws)
    board = lb.leaderboard(eval_ws, "sample", pid)
    assert "30 of 293 users (a subset)" in board.excluded.set_index("label").loc["llm-pointwise zero-shot", "reason"]
    # a run whose candidate lists differ (its hash does not match the stored protocol's)
    pop = _run_of(eval_ws, "popularity")
    params = {
        **json.loads(eval_ws.store.scalar("SELECT params FROM runs WHERE run_id = ?", [pop])),
        "candidates_hash": "0" * 16,
    }
    ranks = lb.user_metrics(eval_ws, pop).reset_index()[["user_id"]].assign(greater=0, ties=0, competitors=20)
    odd = eval_ws.store.record_run("sample", pid, "eval", "odd", params, None, None, ranks)
    board = lb.leaderboard(eval_ws, "sample", pid)
    assert odd not in set(board.table["run_id"])
    assert "candidate lists differ" in board.excluded.set_index("run_id").loc[odd, "reason"]
    with pytest.raises(ValueError, match="different users or candidate lists"):
        lb.paired_test(eval_ws, pop, odd)
    # another protocol (other negatives): its runs are never in this ranking, and never paired with it
    other = create_protocol(eval_ws.store, "sample", n_negatives=10, seed=7)
    run_other, _ = evaluate_model(eval_ws, "sample", "popularity", other)
    assert run_other not in set(lb.leaderboard(eval_ws, "sample", pid).table["run_id"])
    assert list(lb.leaderboard(eval_ws, "sample", other).table["run_id"]) == [run_other]
    with pytest.raises(ValueError, match="different users or candidate lists"):
        lb.paired_test(eval_ws, pop, run_other)


def test_disagreements_list_customers_one_run_gets_right_and_the_other_wrong(eval_ws: Workspace) -> None:
    pid = _pid(eval_ws)
    a, b = _run_of(eval_ws, "llm-pointwise zero-shot"), _run_of(eval_ws, "popularity")
    split = lb.disagreements(eval_ws, "sample", pid, a, b, k=5)
    ra, rb = lb.user_metrics(eval_ws, a)["rank"], lb.user_metrics(eval_ws, b)["rank"]
    assert len(split) == ((ra <= 5) != (rb <= 5)).sum() > 0
    only_a = split[split["winner"] == "a"]
    assert (only_a["rank_a"] <= 5).all() and (only_a["rank_b"] > 5).all()
    targets = eval_ws.store.sql_df("SELECT user_id, item_id FROM splits WHERE protocol_id = ? AND part = 'test'", [pid])
    truth = targets.set_index("user_id")["item_id"]
    assert (split["item_id"].to_numpy() == truth.loc[split["user_id"]].to_numpy()).all()
    assert split["title"].notna().all()


@pytest.mark.parametrize("by", ["history", "category", "cold"])
def test_breakdown_groups_cover_every_user_and_average_back_to_the_total(eval_ws: Workspace, by: str) -> None:
    pid = _pid(eval_ws)
    board = lb.leaderboard(eval_ws, "sample", pid)
    frame = lb.breakdown(eval_ws, "sample", pid, list(board.table["run_id"]), by, "HR@5")
    for run_id, rows in frame.groupby("run_id"):
        assert rows["users"].sum() == board.users
        weighted = (rows["value"] * rows["users"]).sum() / rows["users"].sum()
        assert weighted == pytest.approx(board.table.set_index("run_id").loc[run_id, "HR@5"])
    assert frame["group"].nunique() >= 2
    if by == "history":
        assert all(g.endswith("purchases") for g in frame["group"])
    if by == "cold":  # the SQL split agrees with the training sequences the models see
        test = load_train_data(eval_ws.store, "sample", pid).parts["test"]
        users = frame[frame["group"] == "cold"].groupby("run_id")["users"].first()
        assert (users == test.is_cold.sum()).all() and 0 < test.is_cold.sum() < len(test.users)


def test_cli_eval_all_compare_and_a_self_contained_report(eval_ws: Workspace, monkeypatch, capsys) -> None:
    from mmrec_core.cli.main import main

    monkeypatch.setenv("MMREC_DATA_DIR", str(eval_ws.settings.data_dir))
    eval_ws.close()  # the CLI opens the store itself
    assert main(["eval", "--all", "sample", "--no-llm"]) == 0
    out = capsys.readouterr().out
    assert "popularity" in out and "sasrec" in out and "95% bootstrap interval" in out
    assert "not ranked: llm-pointwise zero-shot" in out  # the 30-user subset, with its reason
    assert "cold test items (bought in no training interaction)" in out and "warm" in out
    assert "whole catalog, every test user" in out and "sasrec top-10 + llm-pointwise" in out
    ws = open_workspace(load_settings(eval_ws.settings.data_dir))
    a, b = _run_of(ws, "sasrec"), _run_of(ws, "popularity")
    ws.close()
    assert main(["compare", a, b, "--metric", "AUC"]) == 0
    assert "Wilcoxon signed-rank p =" in capsys.readouterr().out
    assert main(["compare", a, b, "--metric", "XYZ"]) == 2
    assert main(["eval", "sample"]) == 2 and "mmrec eval MODEL DATASET" in capsys.readouterr().err
    report = eval_ws.settings.data_dir / "report.html"
    assert main(["report", "sample", "--out", str(report)]) == 0
    text = report.read_text()
    assert "<table" in text and "Leaderboard" in text and "sasrec" in text and "Plotly" in text
    assert "<script src=" not in text  # plotly is inlined: the file opens without a network
    assert text.count('class="plotly-graph-div"') == 5


def test_plan_skips_untrained_models_and_adapter_folders_that_are_gone(sample_workspace: Workspace) -> None:
    pid = _pid(sample_workspace)
    labels = [r.label for r in plan(sample_workspace, "sample", pid)]
    assert labels == ["popularity", "repeat", "llm-pointwise zero-shot"]
    folder = fake_adapter(sample_workspace, pid)
    assert plan(sample_workspace, "sample", pid)[-1].adapter == folder
    shutil.rmtree(folder)
    assert len(plan(sample_workspace, "sample", pid)) == 3
