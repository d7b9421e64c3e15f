"""Popularity and SASRec, their evaluation as runs, and similar-user retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_core.config import SAMPLE_DATASET
from mmrec_core.data.splits import create_protocol, train_interactions
from mmrec_core.evaluate.offline import evaluate_model, ranking_metrics
from mmrec_core.models.data import Candidates, TrainData, load_train_data
from mmrec_core.models.lightgcn import ItemGraphConfig, ItemGraphLightGCN, normalized_adjacency
from mmrec_core.models.popularity import Popularity, PopularityConfig
from mmrec_core.models.registry import load_trained, train_model
from mmrec_core.models.sasrec import SASRec, SASRecConfig
from mmrec_core.models.similar_users import similar_user_context, with_keywords

FAST = SASRecConfig(hidden=32, layers=1, heads=1, max_len=12, dropout=0.0, lr=5e-3, epochs=40, patience=40)


def synthetic(groups: int = 2, users_per_group: int = 20, items_per_group: int = 8, length: int = 10) -> TrainData:
    """Group g's users walk around their own ring of items (a, a+1, ...): the next item is predictable."""
    rng = np.random.default_rng(0)
    n_items = groups * items_per_group
    seqs, parts = {}, {"valid": [], "test": []}
    for g in range(groups):
        for u in range(users_per_group):
            start = int(rng.integers(items_per_group))
            walk = [g * items_per_group + (start + t) % items_per_group for t in range(length + 2)]
            user = f"g{g}u{u:02d}"
            seqs[user] = walk[:length]
            parts["valid"].append((user, walk[length]))
            parts["test"].append((user, walk[length + 1]))
    data = TrainData("synthetic", "synthetic:p", np.array([f"i{i}" for i in range(n_items)], dtype=object), seqs)
    for part, rows in parts.items():
        users = [u for u, _ in rows]
        items = np.array([[pos, *[(pos + d) % n_items for d in (3, 5, 9, 11)]] for _, pos in rows])
        hist = [seqs[u] if part == "valid" else seqs[u] + [dict(parts["valid"])[u]] for u in users]
        data.parts[part] = Candidates(users, items, np.zeros(len(users), bool), hist)
    return data


def assert_reloads_identically(model, config_type: type, data: TrainData, folder) -> None:
    """Saved and loaded back, the model gives the same test scores."""
    model.save(folder)
    again = type(model).load(folder, config_type)
    users, hist = data.parts["test"].users, data.parts["test"].histories
    np.testing.assert_allclose(again.score(users, hist), model.score(users, hist), atol=1e-5)


def test_sasrec_learns_a_predictable_next_item_and_reloads_identically(tmp_path):
    data = synthetic()
    model = SASRec(FAST)
    model.fit(data)
    per_user = ranking_metrics(model, data, "test")
    assert per_user["HR@5"].mean() == 1.0 and per_user["NDCG@5"].mean() > 0.9  # popularity cannot do this
    assert model.log[-1]["loss"] < model.log[0]["loss"]
    pop = Popularity(PopularityConfig())
    pop.fit(data)
    assert ranking_metrics(pop, data, "test")["NDCG@5"].mean() < 0.6

    short, long = [3, 4], list(range(12))  # alone the short one is trimmed to 2 columns, with the long one not
    together = model.user_vectors([short, long])
    np.testing.assert_allclose(model.user_vectors([short])[0], together[0], atol=1e-5)

    assert_reloads_identically(model, SASRecConfig, data, tmp_path / "m")


def test_similar_users_come_from_the_same_group_and_name_their_next_item():
    data = synthetic()
    model = SASRec(FAST)
    model.fit(data)
    context = similar_user_context(model, data, ["g0u00", "g1u05"], k=3)
    assert context.groupby("user_id").size().to_dict() == {"g0u00": 3, "g1u05": 3}
    assert (context["similar_user"] != context["user_id"]).all()
    for row in context.itertuples():
        group = row.user_id[:2]
        assert row.similar_user.startswith(group)  # the same taste
        next_index = int(row.next_item[1:])
        assert next_index // 8 == int(group[1])  # what they bought next is from that taste too
        seq = data.sequences[row.similar_user]
        assert seq[row.match_pos + 1] == next_index  # the item right after the matching point
    with pytest.raises(KeyError, match="Unknown user"):
        similar_user_context(model, data, ["nobody"])
    with pytest.raises(ValueError, match="at least 1"):
        similar_user_context(model, data, ["g0u00"], k=0)


def test_training_data_never_holds_valid_or_test_items(sample_workspace):
    store = sample_workspace.store
    protocol = create_protocol(store, SAMPLE_DATASET)
    data = load_train_data(store, SAMPLE_DATASET, protocol)
    inter = store.interactions(SAMPLE_DATASET).groupby("user_id").size()
    test = data.parts["test"]
    assert len(test.users) == store.scalar("SELECT n_users FROM protocols WHERE protocol_id = ?", [protocol])
    for user in test.users:  # evaluated users: every interaction but the last two
        assert len(data.sequences[user]) == inter[user] - 2
    index = data.index()
    train = train_interactions(store, protocol)
    assert sum(len(s) for s in data.sequences.values()) == len(train)
    valid = dict(zip(data.parts["valid"].users, data.parts["valid"].items[:, 0], strict=True))
    for user, hist in zip(test.users, test.histories, strict=True):
        assert hist == data.sequences[user] + [valid[user]]  # test input = training + the valid item
    assert set(index) == set(store.items(SAMPLE_DATASET)["item_id"])


@pytest.mark.slow
def test_train_and_eval_record_runs_over_all_test_users(sample_workspace):
    ws = sample_workspace
    protocol = create_protocol(ws.store, SAMPLE_DATASET)
    config = SASRecConfig(epochs=3, patience=3)
    run = train_model(ws, SAMPLE_DATASET, "sasrec", protocol, config)
    model, run_again = load_trained(ws, SAMPLE_DATASET, "sasrec", protocol)
    assert run_again == run and len(model.log) == 3
    eval_run, table = evaluate_model(ws, SAMPLE_DATASET, "sasrec", protocol)
    n_users = ws.store.scalar("SELECT n_users FROM protocols WHERE protocol_id = ?", [protocol])
    assert table.loc["all", "users"] == n_users
    assert table.loc["no_repeat", "users"] + table.loc["repeat", "users"] == n_users
    stored = ws.store.sql_df("SELECT subset, name, value FROM metrics WHERE run_id = ?", [eval_run])
    got = stored[stored.subset == "all"].set_index("name")["value"]
    for name in ("HR@5", "NDCG@5", "AUC", "full:Recall@20", "full:NDCG@20", "seconds_per_user"):
        assert name in got.index
    assert got["HR@5"] == pytest.approx(table.loc["all", "HR@5"])
    runs = ws.store.sql_df("SELECT kind, method, params FROM runs WHERE dataset = ? ORDER BY kind", [SAMPLE_DATASET])
    assert runs[["kind", "method"]].values.tolist() == [["eval", "sasrec"], ["train", "sasrec"]]
    assert '"train_run"' in runs["params"].iloc[0] and '"hidden": 64' in runs["params"].iloc[1]

    data = load_train_data(ws.store, SAMPLE_DATASET, protocol)
    user = data.parts["test"].users[0]
    context = with_keywords(ws.store, SAMPLE_DATASET, similar_user_context(model, data, [user], 3))
    assert len(context) == 3 and user not in set(context["similar_user"])
    items = ws.store.items(SAMPLE_DATASET).set_index("item_id")
    for row in context.itertuples():  # the next item is the similar user's TRAINING purchase after the match
        seq = [data.item_ids[i] for i in data.sequences[row.similar_user]]
        assert seq[row.match_pos + 1] == row.next_item and row.keywords == [items.at[row.next_item, "category"]]

    pop_run, pop = evaluate_model(ws, SAMPLE_DATASET, "popularity", protocol)  # fitted on the spot
    assert pop.loc["all", "users"] == n_users and 0 <= pop.loc["all", "AUC"] <= 1
    with pytest.raises(ValueError, match="Unknown model 'bert4rec'"):
        evaluate_model(ws, SAMPLE_DATASET, "bert4rec", protocol)


def with_graph_inputs(data: TrainData, profiles: bool) -> TrainData:
    """Text vectors that know each item's group, a ring graph inside each group, and (optionally) profiles."""
    n, per = data.n_items, 8
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(n, 16)).astype(np.float32) * 0.1
    feats[np.arange(n), np.arange(n) // per] += 1.0  # the group is visible in the text
    data.item_features = feats
    ring = [(i, (i // per) * per + (i + 1) % per, 1.0) for i in range(n)]
    data.edges = pd.DataFrame(ring, columns=["src", "dst", "weight"])
    if profiles:
        data.user_features = {u: feats[s].mean(0) for u, s in data.sequences.items()}
    return data


@pytest.mark.parametrize("profiles", [True, False])
def test_item_graph_lightgcn_learns_group_taste_and_reloads(tmp_path, profiles):
    data = with_graph_inputs(synthetic(), profiles)
    model = ItemGraphLightGCN(ItemGraphConfig(dim=16, epochs=30, patience=30, lr=1e-2))
    model.fit(data)
    per_user = ranking_metrics(model, data, "test")
    assert per_user["AUC"].mean() > 0.8  # the group's items rank above the other group's
    assert_reloads_identically(model, ItemGraphConfig, data, tmp_path / "m")


def test_item_graph_model_needs_its_graph():
    with pytest.raises(ValueError, match="mmrec graph"):
        ItemGraphLightGCN(ItemGraphConfig()).fit(synthetic())


def test_normalized_adjacency_is_symmetric_and_degree_scaled():
    edges = pd.DataFrame({"src": [0, 0], "dst": [1, 2], "weight": [1.0, 3.0]})
    adj = normalized_adjacency(edges, 4).to_dense().numpy()
    np.testing.assert_allclose(adj, adj.T)
    assert adj[0, 2] == pytest.approx(3.0 / np.sqrt(4.0 * 3.0)) and adj[3].sum() == 0  # isolated item 3


@pytest.mark.slow
def test_item_graph_model_trains_on_the_stored_graph_and_profiles(sample_workspace):
    from mmrec_core.graph.build import build_item_graph
    from mmrec_core.profiles.build import ProfileConfig, build_profiles
    from tests.fakes import ScriptedEngine

    ws = sample_workspace
    protocol = create_protocol(ws.store, SAMPLE_DATASET)
    with pytest.raises(KeyError, match="mmrec graph sample"):
        train_model(ws, SAMPLE_DATASET, "lightgcn", protocol)
    engine = ScriptedEngine(ws.settings)
    build_item_graph(ws, engine, SAMPLE_DATASET, protocol)
    users = sorted(train_interactions(ws.store, protocol)["user_id"].unique())[:30]
    build_profiles(ws, engine, SAMPLE_DATASET, protocol, ProfileConfig(users=users))
    run = train_model(ws, SAMPLE_DATASET, "lightgcn", protocol, ItemGraphConfig(epochs=3, patience=3))
    params = ws.store.sql_df("SELECT params FROM runs WHERE run_id = ?", [run])["params"].iloc[0]
    assert '"users_with_profile": 30' in params and '"epochs_run": 3' in params
    _, table = evaluate_model(ws, SAMPLE_DATASET, "lightgcn", protocol)
    assert table.loc["all", "users"] == len(load_train_data(ws.store, SAMPLE_DATASET, protocol).parts["test"].users)
