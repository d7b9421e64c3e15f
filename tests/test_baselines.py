"""The baselines: SASRec's losses, the content hybrid's cold-item fallback, repeat and BPR-MF.

Each runs on tiny hand-made data whose right answer is known (`synthetic`: users walk their group's ring).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mmrec_core.data.metrics import summarize
from mmrec_core.evaluate.offline import ranking_metrics
from mmrec_core.models.bprmf import BPRMF, BPRMFConfig
from mmrec_core.models.data import Candidates, TrainData
from mmrec_core.models.losses import LOSSES, gbce_beta
from mmrec_core.models.repeat import Repeat, RepeatConfig
from mmrec_core.models.sasrec import ContentSASRec, SASRec, SASRecConfig
from mmrec_core.models.similar_users import retrieval_quality
from mmrec_core.store.runs import RANK_COLUMNS
from tests.test_models import FAST, assert_reloads_identically, synthetic

# one row per loss: the config that trains it on the ring data
LOSS_CASES = {
    "ce": FAST,
    "gbce": dataclasses.replace(FAST, loss="gbce", negatives=8),
    "bce": dataclasses.replace(FAST, loss="bce"),
}


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_learns_the_predictable_next_item(loss):
    data = synthetic()
    model = SASRec(dataclasses.replace(LOSS_CASES[loss], loss=loss))
    model.fit(data)
    per_user = ranking_metrics(model, data, "test")
    assert per_user["HR@5"].mean() == 1.0 and per_user["NDCG@5"].mean() > 0.8
    assert model.log[-1]["loss"] < model.log[0]["loss"]


def test_gbce_beta_spans_plain_bce_to_full_calibration():
    assert gbce_beta(8, 101, t=0.0) == pytest.approx(1.0)  # plain BCE: the positive term unchanged
    assert gbce_beta(8, 101, t=1.0) == pytest.approx(8 / 100)  # alpha: as if every item were a negative
    assert gbce_beta(8, 101, t=0.0) > gbce_beta(8, 101, t=0.75) > gbce_beta(8, 101, t=1.0)


def test_no_epoch_cap_stops_on_patience():
    data = synthetic()
    model = SASRec(dataclasses.replace(FAST, epochs=0, patience=2))
    model.fit(data)
    best = max(range(len(model.log)), key=lambda e: model.log[e]["valid_NDCG@10"])
    assert len(model.log) == best + 1 + 2  # stopped exactly `patience` epochs after its best one


def with_cold_items(groups: int = 2, per_group: int = 8, cold_per_group: int = 3) -> TrainData:
    """The ring data plus, per group, items nobody bought in training whose text says which group they are.

    Content vectors: a group direction plus item noise, unit length. Each user's test positive becomes a
    cold item of their own group; the negatives are cold items of the other group.
    """
    base = synthetic(groups, items_per_group=per_group)
    rng = np.random.default_rng(1)
    n_warm = groups * per_group
    n_items = n_warm + groups * cold_per_group
    group_of = np.r_[np.repeat(np.arange(groups), per_group), np.repeat(np.arange(groups), cold_per_group)]
    directions = rng.normal(size=(groups, 16))
    content = directions[group_of] + 0.3 * rng.normal(size=(n_items, 16))
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    cold = {g: [n_warm + g * cold_per_group + c for c in range(cold_per_group)] for g in range(groups)}
    item_ids = np.array([f"i{i}" for i in range(n_items)], dtype=object)
    data = TrainData("cold", "cold:p", item_ids, base.sequences, item_features=content.astype(np.float32))
    data.parts["valid"] = base.parts["valid"]
    test = base.parts["test"]
    rows = []
    for user in test.users:
        g = int(user[1])
        other = cold[1 - g]
        rows.append([cold[g][int(user[-2:]) % cold_per_group], *other, other[0]])
    data.parts["test"] = Candidates(test.users, np.array(rows), test.is_repeat, test.histories)
    return data


def test_content_hybrid_ranks_cold_items_by_their_text_and_reloads(tmp_path):
    data = with_cold_items()
    model = ContentSASRec(FAST)
    model.fit(data)
    net = model.net
    with torch.no_grad():
        table = net.item_table()
        cold_row = 16 + 1  # the first cold item (+1: row 0 pads)
        # a cold item's vector is its content part only: the ID embedding never trained is not used
        np.testing.assert_allclose(table[cold_row], net.project(net.content[cold_row - 1]), atol=1e-6)
        assert not torch.allclose(table[1], net.project(net.content[0]))  # a warm item has an ID part too
    hybrid = ranking_metrics(model, data, "test")
    id_only = SASRec(FAST)
    id_only.fit(data)
    plain = ranking_metrics(id_only, data, "test")
    assert hybrid["AUC"].mean() > 0.9  # own-group cold items above the other group's
    assert hybrid["AUC"].mean() > plain["AUC"].mean() + 0.3  # IDs alone cannot tell untrained items apart

    assert_reloads_identically(model, SASRecConfig, data, tmp_path / "m")


def test_content_hybrid_needs_item_vectors():
    with pytest.raises(ValueError, match="mmrec graph"):
        ContentSASRec(FAST).fit(synthetic())


def test_repeat_puts_the_most_bought_then_most_recent_own_items_first():
    data = synthetic()
    model = Repeat(RepeatConfig())
    model.fit(data)
    scores = model.score(["x"], [[5, 3, 5, 7]])[0]
    order = np.argsort(-scores)
    assert list(order[:3]) == [5, 7, 3]  # bought twice, then the newest of the once-bought
    assert scores[[5, 7, 3]].min() > np.delete(scores, [5, 7, 3]).max()
    counts = data.item_counts()
    others = np.delete(np.arange(data.n_items), [5, 7, 3])
    assert np.array_equal(np.argsort(-scores[others], kind="stable"), np.argsort(-counts[others], kind="stable"))


def test_bprmf_learns_group_taste_and_reloads(tmp_path):
    data = synthetic()
    model = BPRMF(BPRMFConfig(dim=16, lr=0.05, epochs=60, patience=60))
    model.fit(data)
    users = data.parts["test"].users
    scores = model.score(users, data.parts["test"].histories)
    own = np.array([[int(u[1]) == i // 8 for i in range(data.n_items)] for u in users])
    assert (scores[own].reshape(len(users), -1).min(1) > scores[~own].reshape(len(users), -1).max(1)).mean() > 0.9
    assert not model.score(["never-seen"], [[]]).any()  # no vector for an unknown user

    assert_reloads_identically(model, BPRMFConfig, data, tmp_path / "m")


def test_summaries_split_cold_and_warm_targets():
    data = synthetic()
    model = Repeat(RepeatConfig())
    model.fit(data)
    per_user = ranking_metrics(model, data, "test").drop(columns=["user_id", *RANK_COLUMNS])
    cold = np.arange(len(per_user)) % 4 == 0
    table = summarize(per_user, np.zeros(len(per_user), bool), cold)
    assert table.loc["cold", "users"] == cold.sum() and table.loc["warm", "users"] == (~cold).sum()
    assert table.loc["cold", "HR@5"] == pytest.approx(per_user["HR@5"][cold].mean())


def test_retrieval_quality_finds_the_next_item_through_similar_users():
    data = synthetic()
    model = SASRec(dataclasses.replace(FAST, hidden=SASRecConfig.hidden))  # user vectors of the default size
    model.fit(data)
    quality = retrieval_quality(model, data, k=3)
    assert quality["users"] == len(data.parts["valid"].users)
    # same-ring neighbours bought the next ring item at the matching point; 3 of 16 equally popular items do not
    assert quality["hit_rate"] > 0.8 > 0.3 > quality["popular_hit_rate"]
    assert 0 < quality["precision"] <= quality["hit_rate"]


@pytest.mark.slow
def test_the_strongest_sequential_model_on_valid_serves_similar_users_and_evals_split_cold(sample_workspace, capsys):
    from mmrec_core.config import SAMPLE_DATASET
    from mmrec_core.data.splits import create_protocol
    from mmrec_core.evaluate.offline import evaluate_model
    from mmrec_core.graph.build import build_item_graph
    from mmrec_core.models.data import load_train_data
    from mmrec_core.models.registry import (
        MODELS,
        best_valid_ndcg,
        load_strongest_sequential,
        load_trained,
        train_model,
    )
    from mmrec_core.recommend.context import ContextBuilder
    from tests.fakes import ScriptedEngine

    ws = sample_workspace
    pid = create_protocol(ws.store, SAMPLE_DATASET)
    with pytest.raises(KeyError, match="mmrec graph sample"):
        train_model(ws, SAMPLE_DATASET, "content-sasrec", pid)
    build_item_graph(ws, ScriptedEngine(ws.settings), SAMPLE_DATASET, pid)
    for method in ("sasrec", "content-sasrec"):
        train_model(ws, SAMPLE_DATASET, method, pid, MODELS[method][1](epochs=2, patience=2))
    scores = {m: best_valid_ndcg(load_trained(ws, SAMPLE_DATASET, m, pid)[0]) for m in ("sasrec", "content-sasrec")}
    _, run_id, method = load_strongest_sequential(ws, SAMPLE_DATASET, pid)
    assert method == max(scores, key=scores.get)
    builder = ContextBuilder(ws, SAMPLE_DATASET, pid, "test", n_similar=2)
    assert builder.sasrec_run == run_id and builder.provenance()["sasrec_run"] == run_id

    _, table = evaluate_model(ws, SAMPLE_DATASET, "content-sasrec", pid)
    test = load_train_data(ws.store, SAMPLE_DATASET, pid).parts["test"]
    assert table.loc["cold", "users"] == test.is_cold.sum() > 0
    assert table.loc["warm", "users"] + table.loc["cold", "users"] == table.loc["all", "users"] == len(test.users)

    from mmrec_core.cli.main import main

    ws.close()  # the CLI opens the store itself
    assert main(["--data-dir", str(ws.settings.data_dir), "similar-users", "sample", "--quality", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert f"by {method} run {run_id}, valid part" in out and "of users have a similar user" in out


def test_a_sasrec_state_of_another_network_version_is_refused_by_name(tmp_path):
    model = SASRec(dataclasses.replace(FAST, epochs=1, patience=1))
    model.fit(synthetic())
    model.save(tmp_path / "m")
    stored = torch.load(tmp_path / "m" / "sasrec.pt", weights_only=True)
    torch.save({**stored, "arch": 1}, tmp_path / "m" / "sasrec.pt")  # as an earlier release wrote it (no match)
    with pytest.raises(ValueError, match="older version; retrain it: `mmrec train sasrec"):
        SASRec.load(tmp_path / "m", SASRecConfig)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_fast_dropout_drops_its_share_and_keeps_the_mean(p):
    from mmrec_core.models.sasrec import FastDropout

    drop, x = FastDropout(p), torch.ones(400_000)
    out = drop.train()(x)
    assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.01)  # p rounded to 1/256 at most
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)  # kept values scaled by 1 / (1 - p)
    assert torch.equal(drop.eval()(x), x) and torch.equal(FastDropout(0.0).train()(x), x)


def test_user_states_do_not_depend_on_how_histories_are_batched():
    model = SASRec(dataclasses.replace(FAST, epochs=1, patience=1))
    model.fit(synthetic())
    rng = np.random.default_rng(3)
    histories = [list(rng.integers(0, 16, size=int(n))) for n in rng.integers(1, 70, size=40)]  # some > max_len
    together = model.user_vectors(histories, batch_size=7)  # sorted by length, cut in batches of 7
    alone = np.concatenate([model.user_vectors([h]) for h in histories])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_bucketed_batches_cover_every_sequence_once_and_group_similar_lengths():
    lengths = np.random.default_rng(0).integers(5, 60, size=1000)
    spread = {}
    for bucket in (True, False):
        model = SASRec(dataclasses.replace(FAST, batch_size=16, bucket=bucket))
        batches = model._batches(np.random.default_rng(1), lengths, pool=10)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000)) and max(map(len, batches)) <= 16
        spread[bucket] = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread[True] < spread[False] / 5  # a bucketed batch is about as wide as its rows
