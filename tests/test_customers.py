"""Customers (listing, one customer's blocks and drift) and the profile quality figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_core.config import SAMPLE_DATASET
from mmrec_core.data.splits import create_protocol, train_interactions
from mmrec_core.profiles import customers
from mmrec_core.profiles.build import ProfileConfig, build_profiles
from mmrec_core.profiles.quality import distinctness, evaluate_profiles, specificity
from tests.fakes import ScriptedEngine


@pytest.fixture
def profiled(sample_workspace):
    """The sample with scripted profiles for its 40 longest-history users."""
    ws = sample_workspace
    protocol = create_protocol(ws.store, SAMPLE_DATASET)
    users = customers.customer_list(ws.store, SAMPLE_DATASET, protocol)["user_id"].tolist()[:40]
    engine = ScriptedEngine(ws.settings)
    build_profiles(ws, engine, SAMPLE_DATASET, protocol, ProfileConfig(users=users))
    return ws, protocol, users, engine


def test_customer_list_counts_training_history_and_profiles(profiled):
    ws, protocol, users, _ = profiled
    listed = customers.customer_list(ws.store, SAMPLE_DATASET, protocol)
    train = train_interactions(ws.store, protocol).groupby("user_id").size()
    assert len(listed) == len(train) == ws.store.count("users", SAMPLE_DATASET)
    assert listed.set_index("user_id")["history"].equals(train.loc[listed["user_id"]].rename("history"))
    assert listed["history"].is_monotonic_decreasing
    assert set(listed.loc[listed["has_profile"], "user_id"]) == set(users)
    assert listed["held_out"].isin([0, 2]).all()
    some = users[3]
    assert customers.customer_list(ws.store, SAMPLE_DATASET, protocol, some[5:15].upper())["user_id"].tolist() == [some]


def test_customer_view_groups_history_into_the_stored_blocks(profiled):
    ws, protocol, users, _ = profiled
    view = customers.customer_view(ws.store, SAMPLE_DATASET, protocol, users[0])
    history, blocks = view["history"], view["blocks"]
    assert history["block"].tolist() == [k // 3 + 1 for k in range(len(history))]
    assert [list(ids) for ids in blocks["item_ids"]] == [g["item_id"].tolist() for _, g in history.groupby("block")]
    assert view["profile"] == blocks["summary"].iloc[-1] and not view["stale"]
    assert set(view["held_out"]["part"]) == {"valid", "test"}
    assert not set(view["held_out"]["seq"]) & set(history["seq"])  # held-out purchases are not history
    assert history["title"].notna().all() and history["ext"].eq("jpg").all()
    assert set(view["weights"]["block"]) <= set(history["block"]) and len(set(view["weights"]["keyword"])) <= 8

    unprofiled = customers.customer_list(ws.store, SAMPLE_DATASET, protocol).query("~has_profile")["user_id"].iloc[0]
    empty = customers.customer_view(ws.store, SAMPLE_DATASET, protocol, unprofiled, block_size=2)
    assert empty["profile"] is None and empty["blocks"].empty and empty["history"]["block"].iloc[:2].tolist() == [1, 1]
    with pytest.raises(KeyError, match="Unknown customer 'nobody'"):
        customers.customer_view(ws.store, SAMPLE_DATASET, protocol, "nobody")


def test_each_summary_is_checked_against_the_items_it_has_covered(profiled):
    ws, protocol, users, _ = profiled
    blocks = customers.customer_view(ws.store, SAMPLE_DATASET, protocol, users[0])["blocks"]
    stored = ws.store.profile_blocks(SAMPLE_DATASET, protocol, users[0])
    assert stored["grounding"].notna().all()  # written with the summary
    for row in blocks.itertuples():  # the scripted summary lists the block's titles: all of it is the catalog's
        assert row.grounding.claims and not row.grounding.unsupported, row.summary
    # a summary claiming a colour none of the covered items has is marked
    ws.store.cursor().execute(
        "UPDATE profiles SET summary = 'Loves purple mohair kaftans.', grounding = NULL WHERE user_id = ? AND is_final",
        [users[0]],
    )
    final = customers.customer_view(ws.store, SAMPLE_DATASET, protocol, users[0])["blocks"]["grounding"].iloc[-1]
    assert sorted(c.value for c in final.unsupported) == ["kaftan", "mohair", "purple"]


@pytest.mark.parametrize(
    "blocks, keywords, expected",
    [
        # one block: weight = share of its items carrying the keyword
        ([["a", "b"]], {"a": ["black"], "b": ["black", "cotton"]}, {(1, "black"): 1.0, (1, "cotton"): 0.5}),
        # the past decays by half per block while new keywords enter
        (
            [["a"], ["b"]],
            {"a": ["black"], "b": ["red"]},
            {(1, "black"): 1.0, (2, "black"): 0.5, (2, "red"): 1.0},
        ),
        # a keyword that keeps coming back accumulates: 1, then 0.5 + 1
        ([["a"], ["a"]], {"a": ["lace"]}, {(1, "lace"): 1.0, (2, "lace"): 1.5}),
    ],
)
def test_keyword_weights_decay_old_blocks(blocks, keywords, expected):
    weights = customers.keyword_weights(blocks, keywords)
    assert {(r.block, r.keyword): r.weight for r in weights.itertuples()} == pytest.approx(expected)


def test_specificity_and_distinctness_separate_good_profiles_from_bad():
    rng = np.random.default_rng(0)
    tastes = rng.normal(size=(30, 16))
    tastes /= np.linalg.norm(tastes, axis=1, keepdims=True)
    heldout = [np.stack([t, t]) for t in tastes]
    sharp = specificity(tastes, heldout, n_random=10, seed=0)  # each profile points at its own later items
    assert sharp["auc"] == 1.0 and sharp["gap"] > 0.5 and sharp["users"] == 30
    same = np.repeat(tastes[:1], 30, axis=0)  # everyone gets the same profile
    flat = specificity(same, heldout, n_random=10, seed=0)
    assert 0.3 < flat["auc"] < 0.7
    assert distinctness(["x"] * 30, same, near=0.95) == pytest.approx(
        {"near_identical": 1.0, "duplicate_texts": 29 / 30, "mean_pairwise": 1.0}
    )
    assert distinctness([str(i) for i in range(30)], tastes, near=0.95)["near_identical"] == 0.0


def test_eval_profiles_reports_both_representations(profiled):
    ws, protocol, users, engine = profiled
    table = evaluate_profiles(ws, engine, SAMPLE_DATASET, protocol)
    assert table["representation"].tolist() == ["LLM profile", "history text (no LLM)"]
    assert table.attrs["profiled"] == 40 and table.attrs["flagged"] == 0 and table.attrs["scaffolded"] <= 40
    profile = table.iloc[0]  # every stored summary names what recurs and states nothing unsupported
    assert profile["terms_named"] >= 3 and profile["unsupported_claims"] == 0
    assert table["users"].eq(table.attrs["evaluated"]).all() and 2 <= table.attrs["evaluated"] <= 40
    assert table[["auc", "near_identical", "duplicate_texts"]].apply(lambda c: c.between(0, 1)).all().all()
    assert isinstance(table, pd.DataFrame) and (table["own_sim"] >= -1).all()
