"""Two-stage full-catalog evaluation: a trained retriever's top K, re-ranked by the (scripted) LLM."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec_core.data.metrics import metrics_from_counts
from mmrec_core.data.splits import create_protocol
from mmrec_core.evaluate import leaderboard as lb
from mmrec_core.evaluate.offline import evaluate_model
from mmrec_core.evaluate.two_stage import TwoStageConfig, evaluate_two_stage, retrieve
from mmrec_core.models.data import load_train_data
from mmrec_core.models.registry import load_trained
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import Workspace
from tests.fakes import ScriptedEngine

K = 20
CONFIG = RecommendConfig(explain_top=0, n_similar=0)


@pytest.fixture
def two_stage(rec_ws: Workspace, monkeypatch):
    """One two-stage run on the sample (SASRec retrieves K), with every candidate list the LLM was given."""
    asked: dict[str, list[str]] = {}
    prepare = LLMRecommender.prepare

    def recording(self, user, candidates):
        asked[user] = list(candidates)
        return prepare(self, user, candidates)

    monkeypatch.setattr(LLMRecommender, "prepare", recording)
    engine = ScriptedEngine(rec_ws.settings)
    result = evaluate_two_stage(rec_ws, engine, "sample", config=TwoStageConfig(k=K), rec_config=CONFIG)
    return rec_ws, result, asked


def test_the_llm_sees_only_the_retrieved_items_and_only_where_it_can_change_a_rank(two_stage):
    ws, result, asked = two_stage
    pid = create_protocol(ws.store, "sample")
    data = load_train_data(ws.store, "sample", pid)
    model, _ = load_trained(ws, "sample", "sasrec", pid)
    top, _ = retrieve(model, data, K)
    cand = data.parts["test"]
    for r, user in enumerate(cand.users):
        history = set(cand.histories[r])
        assert not history & set(top[r].tolist())  # the customer's own items are never retrieved
        if user in asked:
            assert asked[user] == [str(data.item_ids[i]) for i in top[r]]  # exactly the top K, nothing else
    in_top = (top == cand.items[:, [0]]).any(1)
    assert set(asked) == {u for u, hit in zip(cand.users, in_top, strict=True) if hit} and 0 < len(asked)
    assert result.reranked == len(asked) == result.scored
    outside = ~result.per_user["in_top_k"]
    for column in ("greater", "ties"):  # below the K the retriever's order stands
        assert (result.per_user.loc[outside, column] == result.per_user.loc[outside, f"retriever_{column}"]).all()
    inside = result.per_user[result.per_user["in_top_k"]]
    assert (inside["greater"] + inside["ties"] < K).all()


def test_stored_ranks_give_the_reported_metrics_and_the_retriever_row_is_its_full_ranking(two_stage):
    ws, result, _ = two_stage
    pid = create_protocol(ws.store, "sample")
    ranks = ws.store.user_ranks(result.run_id)
    n_users = len(load_train_data(ws.store, "sample", pid).parts["test"].users)
    assert len(ranks) == result.table.loc["retriever+llm", "users"] == n_users  # every test user
    m = metrics_from_counts(ranks["greater"], ranks["ties"], ranks["competitors"], ks=(10, 20))
    for k in (10, 20):
        assert result.table.loc["retriever+llm", f"Recall@{k}"] == pytest.approx(m[f"HR@{k}"].mean())
        assert result.table.loc["retriever+llm", f"NDCG@{k}"] == pytest.approx(m[f"NDCG@{k}"].mean())
    assert result.table.loc["retriever", f"Recall@{K} (retriever)"] == pytest.approx(result.per_user["in_top_k"].mean())
    _, table = evaluate_model(ws, "sample", "sasrec", pid)  # the same model's full-catalog ranking
    for k in (10, 20):
        assert result.table.loc["retriever", f"Recall@{k}"] == pytest.approx(table.loc["all", f"full:Recall@{k}"])
        assert result.table.loc["retriever", f"NDCG@{k}"] == pytest.approx(table.loc["all", f"full:NDCG@{k}"])
    recall_k = result.table[f"Recall@{K}"]  # re-ranking within the K cannot change what is in the K
    assert recall_k["retriever+llm"] == pytest.approx(recall_k["retriever"])
    # the ranks agree with what was retrieved: a repeat purchase (never retrieved) is a miss in both
    assert recall_k["retriever"] == pytest.approx(result.table.loc["retriever", f"Recall@{K} (retriever)"])

    board = lb.full_catalog_board(ws, "sample", pid)
    assert {f"sasrec top-{K} + llm-pointwise", "sasrec"} <= set(board["label"])
    sampled = lb.leaderboard(ws, "sample", pid)  # another protocol: neither ranked nor warned about there
    assert result.run_id not in {*sampled.table["run_id"], *sampled.excluded["run_id"]}


def test_a_rerun_reads_the_scores_back(two_stage):
    ws, first, _ = two_stage
    again = evaluate_two_stage(ws, ScriptedEngine(ws.settings), "sample", config=TwoStageConfig(k=K), rec_config=CONFIG)
    assert again.scored == 0 and again.reranked == first.reranked
    assert np.allclose(again.table.to_numpy(dtype=float), first.table.to_numpy(dtype=float))


def test_an_untrained_retriever_is_refused(rec_ws: Workspace):
    engine = ScriptedEngine(rec_ws.settings)
    with pytest.raises(KeyError, match="mmrec train bprmf"):
        evaluate_two_stage(rec_ws, engine, "sample", config=TwoStageConfig(retriever="bprmf"), rec_config=CONFIG)


def test_the_retriever_is_the_model_whose_whole_catalog_top_k_holds_the_most_valid_items(rec_ws: Workspace):
    import json

    from mmrec_core.models.bprmf import BPRMFConfig
    from mmrec_core.models.registry import train_model

    pid = create_protocol(rec_ws.store, "sample")
    train_model(rec_ws, "sample", "bprmf", pid, BPRMFConfig(epochs=2, patience=1))  # beside the fixture's SASRec
    data = load_train_data(rec_ws.store, "sample", pid)
    valid = data.parts["valid"]
    expected = {}
    for method in ("sasrec", "bprmf"):  # recomputed by hand: top K of all items, the training items left out
        model, _ = load_trained(rec_ws, "sample", method, pid)
        scores = model.score(valid.users, valid.histories).astype(np.float64)
        for r, history in enumerate(valid.histories):
            scores[r, history] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
        expected[method] = float((top == valid.items[:, [0]]).any(1).mean())
    assert expected["sasrec"] != expected["bprmf"]  # a real choice
    result = evaluate_two_stage(rec_ws, ScriptedEngine(rec_ws.settings), "sample", config=TwoStageConfig(k=K),
                                rec_config=CONFIG)  # fmt: skip
    assert result.valid_recall == pytest.approx(expected, abs=1e-9)
    assert result.retriever == max(expected, key=expected.get)
    params = json.loads(rec_ws.store.runs_by_id([result.run_id])["params"].iloc[0])
    assert params[f"valid_Recall@{K}"] == pytest.approx(expected) and params["retriever"] == result.retriever


def test_listwise_puts_the_named_item_first_and_keeps_the_retrievers_order_below_it(rec_ws: Workspace):
    config = RecommendConfig(mode="listwise", explain_top=0, n_similar=0)
    result = evaluate_two_stage(
        rec_ws, ScriptedEngine(rec_ws.settings), "sample", config=TwoStageConfig(k=K), rec_config=config
    )
    pid = create_protocol(rec_ws.store, "sample")
    data = load_train_data(rec_ws.store, "sample", pid)
    test_item = dict(zip(data.parts["test"].users, data.item_ids[data.parts["test"].items[:, 0]], strict=True))
    answers = rec_ws.store.llm_scores("sample", pid, "listwise").set_index("user_id")
    per_user = result.per_user.set_index("user_id")
    inside = per_user[per_user["in_top_k"]]
    assert result.invalid == int((~answers.loc[inside.index, "valid"].astype(bool)).sum())
    assert 0 < result.invalid < len(inside)  # the scripted engine answers out of range for some users
    for user, row in inside.iterrows():
        items, scores = answers.loc[user, "item_ids"], np.asarray(answers.loc[user, "scores"])
        slot = int(row["retriever_greater"])  # the test item's place in the retriever's top K (no ties)
        assert row["retriever_ties"] == 0 and items[slot] == test_item[user]
        if not answers.loc[user, "valid"]:  # an invalid answer changes nothing
            assert (row["greater"], row["ties"]) == (slot, 0)
            continue
        named = int(np.argmax(scores))  # the one item the scripted answer names
        expected = 0 if named == slot else slot + (named > slot)  # named first, the rest in retrieved order
        assert (row["greater"], row["ties"]) == (expected, 0)
    assert result.table.loc["retriever+llm", "Recall@20"] == pytest.approx(result.table.loc["retriever", "Recall@20"])
    board = lb.full_catalog_board(rec_ws, "sample", pid)
    assert f"sasrec top-{K} + llm-listwise" in set(board["label"])


def test_the_cli_runs_it_and_prints_both_rows(rec_ws: Workspace, monkeypatch, capsys):
    import mmrec_core.engines
    from mmrec_core.cli.main import main

    monkeypatch.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)
    root = str(rec_ws.settings.data_dir)
    rec_ws.close()  # the CLI opens the store itself
    argv = ["--data-dir", root, "eval", "two-stage", "sample", "--top-k", "15", "--similar-users", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sasrec retrieves the top 15 of the whole catalog" in out
    assert "retriever chosen on valid Recall@15 over the whole catalog: sasrec 0." in out
    assert "retriever+llm" in out and "Recall@15 (retriever)" in out
    assert main([*argv, "--mode", "listwise"]) == 0
    assert "answers were invalid" in capsys.readouterr().out
