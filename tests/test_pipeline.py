"""`mmrec pipeline`: every stage in order on the real sample (scripted LLM), resumable after a kill anywhere."""

from __future__ import annotations

import pytest

from mmrec_core.cli import main
from mmrec_core.data.splits import create_protocol
from mmrec_core.evaluate.costs import cost_table
from mmrec_core.evaluate.markdown import cost_section
from mmrec_core.pipeline import stages as pipeline
from mmrec_core.pipeline.stages import run_pipeline, select, status
from tests.fakes import ScriptedEngine


class Killed(Exception):
    """Stands in for a kill: raised from a progress callback in the middle of a stage."""


def _kill_after(stage: str, calls: int):
    """A progress_for that kills the run on the `calls`-th progress report of `stage` that has work done."""
    seen = []

    def progress_for(name: str):
        def progress(done: int, total, message: str) -> None:
            if name == stage and done > 0:
                seen.append(done)
                if len(seen) == calls:
                    raise Killed(f"{stage} at {done} of {total}")

        return progress

    return progress_for


@pytest.mark.parametrize(
    "start, until, with_sft, expected",
    [
        (None, None, False, ["textualize", "profiles", "graph", "models", "eval"]),
        (None, None, True, list(pipeline.STAGES)),
        ("graph", "eval", False, ["graph", "models", "eval"]),
        (None, "profiles", False, ["textualize", "profiles"]),
        ("sft", None, False, ["sft"]),  # named: run although optional
    ],
)
def test_stages_are_selected_in_dependency_order(start, until, with_sft, expected):
    assert select(start, until, with_sft) == expected


def test_a_wrong_stage_range_is_refused_with_the_order():
    with pytest.raises(ValueError, match="the stages are textualize, profiles"):
        select("train", None)
    with pytest.raises(ValueError, match="comes after"):
        select("eval", "profiles")


def test_a_run_killed_mid_stage_resumes_without_redoing_finished_work(sample_workspace):
    ws = sample_workspace
    protocol = create_protocol(ws.store, "sample")
    engine = ScriptedEngine(ws.settings)
    stages = select(None, "profiles")
    with pytest.raises(Killed):  # textualize finished; profiles stopped after two stored batches
        run_pipeline(ws, engine, "sample", protocol, stages, _kill_after("profiles", 2))
    assert status(ws, engine, "sample", protocol).set_index("stage").loc["textualize", "state"] == "done"
    kept = ws.store.sql_df("SELECT input_hash, created_at FROM profiles")
    assert 0 < len(kept)

    engine.prompts.clear()
    done = dict((stage, summary) for stage, summary, _ in run_pipeline(ws, engine, "sample", protocol, stages))
    assert done["textualize"].startswith("textualized 0 items") and "skipped 562 unchanged" in done["textualize"]
    again = ws.store.sql_df("SELECT input_hash, created_at FROM profiles")
    before = kept.set_index("input_hash")["created_at"]
    assert (again.set_index("input_hash").loc[before.index, "created_at"] == before).all()  # none rewritten
    assert f"{len(kept)} reused" in done["profiles"]
    table = status(ws, engine, "sample", protocol).set_index("stage")
    assert table.loc["profiles", "state"] == "done" and table.loc["graph", "state"] == "missing"
    # the cost table: textualize once (its second run did nothing), profiles only the blocks of the resumed run
    costs = cost_table(ws, "sample", protocol).set_index("stage")
    assert list(costs.index) == ["textualize", "profiles"] and costs.loc["textualize", "runs"] == 1
    assert costs.loc["textualize", "work"] == 562 and costs.loc["textualize", "unit"] == "items"
    assert costs.loc["profiles", "work"] == len(again) - len(kept) > 0
    assert (costs["wall s"] > 0).all() and (costs["CPU s"] > 0).all()
    per_item = costs.loc["textualize", "wall s"] / 562
    assert costs.loc["textualize", "per unit s"] == pytest.approx(per_item, abs=1e-3)
    assert "Cost per stage" in cost_section(ws, "sample", protocol)


@pytest.mark.slow
def test_the_whole_pipeline_then_a_second_run_that_does_nothing(sample_workspace, monkeypatch, capsys):
    ws = sample_workspace
    protocol = create_protocol(ws.store, "sample")
    engine = ScriptedEngine(ws.settings)
    monkeypatch.setattr("mmrec_core.engines.get_engine", lambda settings: engine)
    assert main(["--data-dir", str(ws.settings.data_dir), "pipeline", "sample"]) == 0
    table = status(ws, engine, "sample", protocol).set_index("stage")
    assert (table.loc[list(select()), "state"] == "done").all(), table
    costs = cost_table(ws, "sample", protocol).set_index("stage")
    assert list(costs.index) == list(select()) and (costs["work"] > 0).all()
    assert costs.loc["graph", "work"] == 562 and costs.loc["eval", "unit"] == "test users"
    assert table.loc["sft", "state"] == "optional"
    runs = ws.store.sql_df("SELECT run_id FROM runs")

    capsys.readouterr()
    engine.prompts.clear()
    for flags in ([], ["--no-llm"]):
        assert main(["--data-dir", str(ws.settings.data_dir), "pipeline", "sample", *flags]) == 0
    out = capsys.readouterr().out
    assert "every model up to date" in out and "every eval run up to date" in out and "(reused," in out
    assert ws.store.sql_df("SELECT run_id FROM runs").equals(runs)  # nothing trained or evaluated again
    assert not engine.prompts  # the LLM was asked nothing


@pytest.mark.slow
def test_llm_users_limit_profiles_and_the_llm_to_a_seeded_subset(sample_workspace, monkeypatch):
    """A catalog too large for the LLM on every customer: profiles and its eval cover the same seeded users, the
    other models every user, and the report shows every model on that subset."""
    from mmrec_core.evaluate.leaderboard import eval_runs, user_metrics
    from mmrec_core.evaluate.markdown import markdown_report

    ws = sample_workspace
    protocol = create_protocol(ws.store, "sample")
    engine = ScriptedEngine(ws.settings)
    monkeypatch.setattr("mmrec_core.engines.get_engine", lambda settings: engine)
    assert main(["--data-dir", str(ws.settings.data_dir), "pipeline", "sample", "--llm-users", "25"]) == 0
    subset = pipeline.llm_subset(ws, "sample", protocol, 25)
    assert len(subset) == 25 and set(ws.store.profile_blocks("sample", protocol)["user_id"]) == set(subset)
    assert status(ws, engine, "sample", protocol, 25).set_index("stage").loc["profiles", "state"] == "done"
    assert status(ws, engine, "sample", protocol).set_index("stage").loc["profiles", "state"] == "stale"
    runs = eval_runs(ws, "sample", protocol)
    llm = runs[runs["method"] == "llm-pointwise"]
    assert len(llm) == 1 and set(user_metrics(ws, llm["run_id"].iloc[0]).index) == set(subset)
    assert not runs[runs["method"] == "sasrec"]["subset"].iloc[0]  # the other models: every user
    assert "### On the 25 users of llm-pointwise zero-shot" in markdown_report(ws, "sample", protocol)
