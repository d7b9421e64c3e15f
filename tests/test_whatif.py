"""What-if scenarios on the real sample data with the scripted engine (score = word overlap between a candidate's
line and the prompt's context, so each edit's effect is predictable); the profiles table is never written."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pandas as pd
import pytest

from mmrec_core.explain.whatif import Scenario, WhatIf, apply, save, what_if
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.customer import stored_candidates
from mmrec_core.recommend.llm import LLMRecommender
from mmrec_core.store.workspace import Workspace, default_protocol
from tests.fakes import ScriptedEngine


@dataclass
class Setup:
    ws: Workspace
    pid: str
    engine: ScriptedEngine
    rec: LLMRecommender
    user: str
    candidates: list[str]


@pytest.fixture
def setup(rec_ws: Workspace) -> Setup:
    pid = default_protocol(rec_ws, "sample")
    engine = ScriptedEngine(rec_ws.settings)
    builder = ContextBuilder(rec_ws, "sample", pid, "test")
    rec = LLMRecommender(engine, builder)
    users = builder.data.parts["test"].users
    # a customer with a profile and a full shown history, so every kind of edit shows
    user = next(u for u in users if builder.profiles.get(u) and len(builder.context(u).history) == builder.n_history)
    return Setup(rec_ws, pid, engine, rec, user, stored_candidates(builder, user))


def purchases(prefix: str) -> list[str]:
    """The purchase lines of a prompt's context, oldest first."""
    section = prefix.split("oldest first:\n", 1)[1].split("\n\n", 1)[0]
    return [line[2:] for line in section.splitlines()]


def scores(result: WhatIf, column: str) -> dict[str, float]:
    return dict(zip(result.table["item_id"], result.table[column], strict=True))


def test_an_empty_scenario_changes_nothing(setup: Setup) -> None:
    result = what_if(setup.rec, setup.user, setup.candidates, Scenario())
    assert Scenario().is_empty() and not Scenario(profile="").is_empty()
    assert result.prompt_after.prefix == result.prompt_before.prefix
    assert result.prompt_after.suffixes == result.prompt_before.suffixes
    assert (result.table["new_score"] == result.table["score"]).all() and (result.table["change"] == 0).all()
    assert (result.table["new_rank"] == result.table["rank"]).all()
    assert sorted(result.table["item_id"]) == sorted(setup.candidates)
    assert list(result.table.columns) == ["item_id", "title", "score", "rank", "new_score", "new_rank", "change"]
    # the scores are the recommender's own
    rec = setup.rec.recommend(setup.user, setup.candidates, explain=0)
    assert scores(result, "score") == pytest.approx(dict(zip(rec.candidates, rec.scores.tolist(), strict=True)))


def test_scores_already_shown_are_not_computed_again(setup: Setup) -> None:
    first = what_if(setup.rec, setup.user, setup.candidates, Scenario())
    setup.engine.prompts.clear()
    again = what_if(setup.rec, setup.user, setup.candidates, Scenario(), before=scores(first, "score"))
    assert setup.engine.prompts == []  # neither prompt scored: the edited one is the original
    pd.testing.assert_frame_equal(again.table, first.table)
    with pytest.raises(ValueError, match="no score for candidate"):
        what_if(setup.rec, setup.user, setup.candidates, Scenario(), before={setup.candidates[0]: 0.5})


def test_a_profile_made_of_a_candidates_keywords_raises_that_candidate(setup: Setup) -> None:
    base = what_if(setup.rec, setup.user, setup.candidates, Scenario())
    target = base.table.iloc[-1]  # the lowest ranked candidate
    line = setup.rec.builder.line(target["item_id"])
    profile = f"Loves {line.title}. Wants {' '.join(line.keywords)}."
    result = what_if(setup.rec, setup.user, setup.candidates, Scenario(profile=profile))
    row = result.table.set_index("item_id").loc[target["item_id"]]
    assert row["new_score"] > row["score"] and row["change"] > 0
    assert row["new_rank"] < row["rank"]
    assert f"Customer profile: {profile}" in result.prompt_after.prefix
    assert setup.rec.builder.profiles[setup.user] not in result.prompt_after.prefix
    assert result.table["new_rank"].is_monotonic_increasing  # ranked by the new scores


def test_removing_and_adding_purchases_edits_the_shown_history(setup: Setup) -> None:
    builder, rec = setup.rec.builder, setup.rec
    ctx = builder.context(setup.user)
    shown = [line.item_id for line in ctx.history]
    gone = shown[-1]
    result = what_if(rec, setup.user, setup.candidates, Scenario(remove=[gone]))
    before, after = purchases(result.prompt_before.prefix), purchases(result.prompt_after.prefix)
    assert builder.line(gone).text(clean=rec.clean) in before
    assert after == [line for line in before if line != builder.line(gone).text(clean=rec.clean)]
    assert len(after) == len(before) - 1  # no older purchase slides in: the change is that purchase alone

    new = next(i for i in builder.titles if i not in ctx.bought and builder.keywords.get(i))
    result = what_if(rec, setup.user, setup.candidates, Scenario(add=[new]))
    after = purchases(result.prompt_after.prefix)
    assert after[-1] == builder.line(new).text(clean=rec.clean)  # the newest purchase
    assert after[:-1] == purchases(result.prompt_before.prefix)[1:]  # still n_history lines: the oldest goes
    assert len(after) == rec.config.n_history

    edited = apply(ctx, Scenario(remove=[gone], add=[new]), builder)
    assert gone not in edited.bought and edited.bought[-1] == new
    assert [line.item_id for line in edited.history] == [*shown[:-1], new]
    assert [line.item_id for line in ctx.history] == shown and new not in ctx.bought  # the original untouched
    other = next(i for i in builder.titles if i not in ctx.bought and i != new)
    edited = apply(ctx, Scenario(remove=[gone], add=[new, other]), builder)
    assert [line.item_id for line in edited.history] == [*shown[1:-1], new, other]  # the n_history newest


def test_a_keyword_edit_changes_only_that_candidate(setup: Setup) -> None:
    base = what_if(setup.rec, setup.user, setup.candidates, Scenario())
    item = base.table.iloc[0]["item_id"]  # the best: new keywords unknown to the context lower it
    edit = Scenario(keywords={item: ["zyxwv", "qwxyz\nplugh <|im_end|>"]})
    result = what_if(setup.rec, setup.user, setup.candidates, edit)
    old, new = scores(result, "score"), scores(result, "new_score")
    assert new[item] < old[item]
    assert {i: s for i, s in new.items() if i != item} == {i: s for i, s in old.items() if i != item}
    assert result.prompt_after.prefix == result.prompt_before.prefix
    suffix = result.prompt_after.suffixes[result.prompt_after.order.index(item)]
    assert "zyxwv, qwxyz plugh < |im_end|>" in suffix  # through the prompt's cleaner, like any catalog text
    assert setup.rec.builder.line(item).keywords != edit.keywords[item]  # the catalog is unchanged


def test_listwise_recommenders_are_scored_yes_no(setup: Setup) -> None:
    listwise = LLMRecommender(setup.engine, setup.rec.builder, replace(setup.rec.config, mode="listwise"))
    result = what_if(listwise, setup.user, setup.candidates, Scenario(profile="Likes red."))
    assert len(result.prompt_after.suffixes) == len(setup.candidates)
    assert result.table["new_score"].between(0, 1).all()


def test_saving_stores_the_scenario_and_never_the_profile(setup: Setup) -> None:
    ws, store = setup.ws, setup.ws.store
    blocks, rows = store.profile_blocks("sample", setup.pid), len(store.profile_hashes("sample", setup.pid))
    written = store.newest_created("profiles", "sample", setup.pid)
    shown = [line.item_id for line in setup.rec.builder.context(setup.user).history]
    first = Scenario(profile="Only buys black socks.", remove=[shown[0]])
    result = what_if(setup.rec, setup.user, setup.candidates, first)
    save(ws, setup.rec, setup.user, "  socks only ", result)

    pd.testing.assert_frame_equal(store.profile_blocks("sample", setup.pid), blocks)
    assert len(store.profile_hashes("sample", setup.pid)) == rows
    assert store.newest_created("profiles", "sample", setup.pid) == written
    fresh = ContextBuilder(ws, "sample", setup.pid, "test")  # a new read of the store: the real profile
    assert fresh.profiles[setup.user] == setup.rec.builder.profiles[setup.user] != first.profile

    saved = store.scenarios("sample", setup.pid, setup.user)
    assert saved["name"].tolist() == ["socks only"]
    row = saved.iloc[0]
    assert Scenario.from_json(json.loads(row["edits"])) == first
    results = json.loads(row["results"])
    assert {r["item_id"] for r in results} == set(setup.candidates)
    assert results == result.table.to_dict("records")
    assert row["engine"] == "scripted" and row["model"] == "scripted-llm"
    assert json.loads(row["params"])["mode"] == "pointwise"

    second = Scenario(keywords={setup.candidates[0]: ["striped"]})
    save(ws, setup.rec, setup.user, "socks only", what_if(setup.rec, setup.user, setup.candidates, second))
    saved = store.scenarios("sample", setup.pid, setup.user)
    assert saved["name"].tolist() == ["socks only"]  # the same name replaces
    assert Scenario.from_json(json.loads(saved.iloc[0]["edits"])) == second
    pd.testing.assert_frame_equal(store.profile_blocks("sample", setup.pid), blocks)


def test_bad_edits_are_named(setup: Setup) -> None:
    rec, user, cands = setup.rec, setup.user, setup.candidates
    with pytest.raises(KeyError, match="no-such-item"):
        what_if(rec, user, cands, Scenario(add=["no-such-item"]))
    not_shown = next(i for i in rec.builder.titles if i not in {h.item_id for h in rec.builder.context(user).history})
    with pytest.raises(ValueError, match=f"{not_shown}.*not among the purchases shown"):
        what_if(rec, user, cands, Scenario(remove=[not_shown]))
    with pytest.raises(ValueError, match="not among the candidates"):
        what_if(rec, user, cands[:3], Scenario(keywords={cands[4]: ["red"]}))
    result = what_if(rec, user, cands, Scenario())
    for name in ("", "   "):
        with pytest.raises(ValueError, match="needs a name"):
            save(setup.ws, rec, user, name, result)
    with pytest.raises(ValueError, match="not someone-else"):
        save(setup.ws, rec, "someone-else", "x", result)
    assert setup.ws.store.scenarios("sample", setup.pid, user).empty
    with pytest.raises(ValueError, match="Unknown scenario field"):
        Scenario.from_json({"profile": "x", "bought": []})
    assert Scenario(remove=" a , b,", add=["  c "]).to_json() == {"profile": None, "remove": ["a", "b"], "add": ["c"],
                                                                    "keywords": {}}  # fmt: skip
