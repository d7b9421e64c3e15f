"""The evaluation protocol on the real sample: leave-one-out targets, stored negatives, no leakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.config import load_settings
from mmrec_core.data.ingest import ingest
from mmrec_core.data.splits import candidates, create_protocol, item_split, repeat_share, train_interactions
from mmrec_core.store.workspace import Workspace, open_workspace

PID = "sample:loo-min5-neg20-seed42"


def _splits(ws: Workspace, pid: str = PID) -> pd.DataFrame:
    return ws.store.sql_df("SELECT * FROM splits WHERE protocol_id = ?", [pid])


def _negatives(ws: Workspace, pid: str = PID) -> pd.DataFrame:
    return ws.store.sql_df("SELECT * FROM negatives WHERE protocol_id = ? ORDER BY user_id, part, idx", [pid])


def test_targets_are_the_last_two_interactions_of_every_user_with_enough_history(sample_workspace) -> None:
    inter = sample_workspace.store.interactions("sample")
    lengths = inter.groupby("user_id").size()
    splits = _splits(sample_workspace)
    test = splits[splits.part == "test"].set_index("user_id")
    valid = splits[splits.part == "valid"].set_index("user_id")
    assert set(test.index) == set(lengths[lengths >= 5].index)  # every user with 5+ interactions
    assert (test["seq"] == lengths[test.index] - 1).all()
    assert (valid.loc[test.index, "seq"] == lengths[test.index] - 2).all()
    last = inter.sort_values("seq").groupby("user_id").tail(1).set_index("user_id")
    assert (test["item_id"] == last.loc[test.index, "item_id"]).all()


def test_negatives_are_stored_distinct_and_never_items_the_user_touched(sample_workspace) -> None:
    inter = sample_workspace.store.interactions("sample")
    history = inter.groupby("user_id")["item_id"].agg(set)
    negs = _negatives(sample_workspace)
    per_user = negs.groupby(["user_id", "part"])["item_id"]
    assert (per_user.size() == 20).all() and (per_user.nunique() == 20).all()
    touched = negs.apply(lambda r: r["item_id"] in history[r["user_id"]], axis=1)
    assert not touched.any()  # not even the valid/test items
    assert set(negs["item_id"]) <= set(sample_workspace.store.items("sample")["item_id"])


def test_a_protocol_is_never_redrawn_and_the_draw_is_reproducible(sample_workspace, tmp_path: Path) -> None:
    before = _negatives(sample_workspace)
    assert create_protocol(sample_workspace.store, "sample") == PID
    pd.testing.assert_frame_equal(before, _negatives(sample_workspace))
    other = create_protocol(sample_workspace.store, "sample", seed=7)
    assert not _negatives(sample_workspace, other)["item_id"].equals(before["item_id"])

    fresh = open_workspace(load_settings(tmp_path / "fresh"))  # same data, same seed, another file
    ingest(fresh.store, fresh.images, "hm", sample_workspace.store.dataset_info("sample")["source"], name="sample")
    pd.testing.assert_frame_equal(before.drop(columns="protocol_id"),
                                  _negatives(fresh).drop(columns="protocol_id"))
    fresh.close()


def test_training_data_never_contains_a_valid_or_test_interaction(sample_workspace) -> None:
    train = train_interactions(sample_workspace.store, PID)
    splits = _splits(sample_workspace)
    leaked = train.merge(splits, on=["user_id", "seq"])
    assert leaked.empty
    held_out_after = train.merge(splits[splits.part == "valid"][["user_id", "seq"]], on="user_id",
                                 suffixes=("", "_valid"))
    assert (held_out_after["seq"] < held_out_after["seq_valid"]).all()
    total = sample_workspace.store.count("interactions", "sample")
    assert len(train) == total - len(splits)


def test_candidates_hold_one_positive_and_the_stored_negatives(sample_workspace) -> None:
    cand = candidates(sample_workspace.store, PID, "test")
    per_user = cand.groupby("user_id")
    assert (per_user.size() == 21).all() and (per_user["is_positive"].sum() == 1).all()
    assert cand["user_id"].nunique() == 293
    with pytest.raises(ValueError, match="part"):
        candidates(sample_workspace.store, PID, "train")


def test_repeat_flags_match_the_history(sample_workspace) -> None:
    inter = sample_workspace.store.interactions("sample")
    splits = _splits(sample_workspace)
    for row in splits.itertuples():
        earlier = inter[(inter.user_id == row.user_id) & (inter.seq < row.seq)]["item_id"]
        assert row.is_repeat == (row.item_id in set(earlier))
    share = repeat_share(sample_workspace.store, PID)
    assert 0 < share < 0.5 and share == pytest.approx(splits[splits.part == "test"]["is_repeat"].mean())


def test_same_day_ties_are_ordered_by_content_not_by_file_order(sample_copy: Path, tmp_path: Path) -> None:
    trans = pd.read_csv(sample_copy / "transactions.csv", dtype=str)
    reversed_copy = tmp_path / "reversed"
    shutil.copytree(sample_copy, reversed_copy)
    trans.iloc[::-1].to_csv(reversed_copy / "transactions.csv", index=False)
    results = []
    for i, src in enumerate((sample_copy, reversed_copy)):
        ws = open_workspace(load_settings(tmp_path / f"d{i}"))
        report = ingest(ws.store, ws.images, "hm", src, name="sample")
        results.append((ws.store.dataset_info("sample")["fingerprint"], _splits(ws, report.protocol_id),
                        _negatives(ws, report.protocol_id)))
        ws.close()
    assert results[0][0] == results[1][0]
    pd.testing.assert_frame_equal(results[0][1].sort_values(["user_id", "part"]).reset_index(drop=True),
                                  results[1][1].sort_values(["user_id", "part"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(results[0][2], results[1][2])


def test_same_user_item_day_rows_collapse_into_one_interaction(sample_workspace) -> None:
    raw = pd.read_csv(Path(sample_workspace.store.dataset_info("sample")["source"]) / "transactions.csv",
                      dtype=str)
    distinct = raw.drop_duplicates(["customer_id", "article_id", "t_dat"])
    inter = sample_workspace.store.interactions("sample")
    assert len(raw) > len(distinct) == len(inter)
    assert inter["n_rows"].sum() == len(raw)


def test_the_default_protocol_is_read_never_created(sample_workspace) -> None:
    from mmrec_core.store.workspace import default_protocol

    ws = sample_workspace
    before = ws.store.protocols("sample")["protocol_id"].tolist()
    assert default_protocol(ws, "sample") == PID == before[0]
    other = create_protocol(ws.store, "sample", n_negatives=5, seed=3)
    assert default_protocol(ws, "sample") == PID  # the one ingest made, not the newest
    assert default_protocol(ws, "sample", other) == other
    assert ws.store.protocols("sample")["protocol_id"].tolist() == [*before, other]  # nothing created by reading
    with pytest.raises(KeyError, match="Unknown data set 'nope'"):
        default_protocol(ws, "nope")
    with pytest.raises(KeyError, match="does not exist"):
        default_protocol(ws, "sample", "sample:loo-min9-neg1-seed1")


def test_the_item_split_holds_out_a_seeded_fifth_and_is_drawn_once(sample_workspace) -> None:
    store = sample_workspace.store
    split_id, parts = item_split(store, "sample")
    items = set(store.items("sample")["item_id"])
    assert set(parts) == items and split_id == "items-test20-seed0"
    assert sum(p == "test" for p in parts.values()) == round(0.2 * len(items))
    store.cursor().execute("DELETE FROM item_splits WHERE item_id = (SELECT min(item_id) FROM item_splits)")
    _, again = item_split(store, "sample")
    assert len(again) == len(items) - 1  # the stored split is returned, never re-drawn
    _, other = item_split(store, "sample", seed=1)
    assert other != parts and sorted(other.values()) == sorted(parts.values())
    with pytest.raises(ValueError, match="held_out must be between 0 and 1"):
        item_split(store, "sample", held_out=20)
