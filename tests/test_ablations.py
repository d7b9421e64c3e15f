"""Ablations (`mmrec eval ablations`): each takes one part of the LLM's context away, on the real sample's
bundled textualization, and is reported paired against the full prompt."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mmrec_core.config import load_settings
from mmrec_core.data.ingest import ensure_sample_dataset
from mmrec_core.evaluate.ablations import ABLATIONS, run_ablations
from mmrec_core.evaluate.leaderboard import eval_runs, paired_test
from mmrec_core.evaluate.markdown import markdown_report
from mmrec_core.evaluate.offline import evaluate_model
from mmrec_core.models.lightgcn import NoGraphConfig
from mmrec_core.models.registry import load_trained, train_model
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import open_workspace
from mmrec_core.textualize.keywords import contains_term
from mmrec_core.textualize.texts import catalog_entries
from tests.fakes import ScriptedEngine
from tests.test_report_markdown import section


def bundled_sample(folder):
    """A fresh data folder with the sample and its bundled results (real keywords, descriptions, profiles)."""
    ws = open_workspace(load_settings(folder))
    ensure_sample_dataset(ws, with_results=True)
    return ws, ws.store.protocols("sample")["protocol_id"].iloc[0]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory):
    ws, protocol_id = bundled_sample(tmp_path_factory.mktemp("ablations") / "data")
    yield ws, protocol_id
    ws.close()


def builder(bundled, **changes) -> tuple[ContextBuilder, RecommendConfig]:
    ws, protocol_id = bundled
    config = replace(RecommendConfig(), **changes)
    return ContextBuilder.for_config(ws, "sample", protocol_id, config), config


def test_without_images_shows_only_the_keywords_the_catalog_names(bundled) -> None:
    full, _ = builder(bundled)
    ablated, _ = builder(bundled, item_text="catalog-keywords")
    entries = catalog_entries(bundled[0].store, "sample")
    changed = 0
    for item in full.titles:
        shown, kept = full.line(item).keywords, ablated.line(item).keywords
        assert [k for k in shown if k in kept] == kept  # a subset, in the same order
        assert all(contains_term(entries[item].lower(), k.lower()) for k in kept), item
        changed += kept != shown
    assert changed >= 20  # the photos did add keywords to the sample's items


@pytest.mark.parametrize("item_text", ["description", "catalog"])
def test_descriptions_or_catalog_text_replace_the_keywords(bundled, item_text: str) -> None:
    ws, _ = bundled
    ablated, _ = builder(bundled, item_text=item_text)
    if item_text == "description":
        source = ws.store.latest_keywords("sample").set_index("item_id")["description"].to_dict()
    else:
        source = ws.store.items("sample").set_index("item_id")["text"].to_dict()
    item = next(iter(ablated.titles))
    line = ablated.line(item)
    assert line.keywords == [] and line.detail and line.detail in " ".join(source[item].split())
    assert line.text() == f"{line.title}: {line.detail}"
    assert not line.detail.lower().startswith(line.title.lower())  # the title is not said twice


def test_without_profiles_the_prompt_has_none_and_the_context_says_why(bundled) -> None:
    ws, _ = bundled
    full, config = builder(bundled)
    ablated, ablated_config = builder(bundled, profile=False)
    user = next(u for u in full.data.parts["test"].users if full.profiles.get(u))
    items = full.candidates(user)
    _, with_profile = LLMRecommender(ScriptedEngine(ws.settings), full, config).prepare(user, items)
    ctx, without = LLMRecommender(ScriptedEngine(ws.settings), ablated, ablated_config).prepare(user, items)
    assert "Customer profile" in with_profile.prefix and "Customer profile" not in without.prefix
    assert ctx.profile == "" and any("profile left out" in n for n in ctx.notes)
    assert with_profile.suffixes == without.suffixes  # only the context changed


def test_ablations_enter_provenance_only_when_set_and_builders_must_match(bundled) -> None:
    ws, _ = bundled
    full, config = builder(bundled)
    params = LLMRecommender(ScriptedEngine(ws.settings), full, config).provenance()["params"]
    assert "profile" not in params and "item_text" not in params  # runs without an ablation keep their hashes
    ablated, ablated_config = builder(bundled, item_text="description", profile=False)
    params = LLMRecommender(ScriptedEngine(ws.settings), ablated, ablated_config).provenance()["params"]
    assert params["profile"] is False and params["item_text"] == "description"
    with pytest.raises(ValueError, match="for_config"):
        LLMRecommender(ScriptedEngine(ws.settings), full, ablated_config)
    with pytest.raises(ValueError, match="item_text must be one of"):
        builder(bundled, item_text="pictures")


def test_each_ablation_is_a_run_paired_against_the_full_prompt(tmp_path) -> None:
    ws, protocol_id = bundled_sample(tmp_path / "data")
    with pytest.raises(ValueError, match="no-images"):
        run_ablations(ws, ScriptedEngine(ws.settings), "sample", protocol_id, names=["no-pictures"])
    done = run_ablations(ws, ScriptedEngine(ws.settings), "sample", protocol_id)
    assert [name for name, _ in done] == ["full", *ABLATIONS]
    runs = eval_runs(ws, "sample", protocol_id).set_index("run_id")
    labels = [runs.loc[r.run_id, "label"] for _, r in done]
    assert labels[0] == "llm-pointwise zero-shot" and len(set(labels)) == len(labels)  # each its own row
    table = section(markdown_report(ws, "sample", protocol_id), "Ablations")
    assert (table["setting"] == "llm-pointwise zero-shot").sum() == len(ABLATIONS)  # the bundle may add its own
    full_run = done[0][1].run_id
    rows = {row["eval run"].strip("`"): row for row in table.to_dict("records")}
    for _, result in done[1:]:
        row = rows[result.run_id]
        r = paired_test(ws, result.run_id, full_run)
        assert row["difference"] == f"{r.diff:+.4f}" and row["NDCG@5 full"] == f"{r.mean_b:.3f}"
    ws.close()


def test_the_item_graph_model_without_its_graph_is_paired_against_lightgcn(tmp_path) -> None:
    ws, protocol_id = bundled_sample(tmp_path / "data")
    train_model(ws, "sample", "lightgcn-no-graph", protocol_id, NoGraphConfig(epochs=4, patience=2))
    model, _ = load_trained(ws, "sample", "lightgcn-no-graph", protocol_id)
    assert model.config.layers == 0 and model.net.layers == 0  # the graph is loaded but never propagated over
    run_id, _ = evaluate_model(ws, "sample", "lightgcn-no-graph", protocol_id)
    table = section(markdown_report(ws, "sample", protocol_id), "Ablations")
    row = table.set_index("eval run").loc[f"`{run_id}`"]
    assert (row["setting"], row["ablation"]) == ("lightgcn", "without the item graph")
    full = eval_runs(ws, "sample", protocol_id).query("label == 'lightgcn'")["run_id"].iloc[0]
    assert row["difference"] == f"{paired_test(ws, run_id, full).diff:+.4f}"
    ws.close()


def test_the_cli_runs_the_named_ablations_with_a_bar_each(tmp_path, monkeypatch, capsys) -> None:
    from mmrec_core.cli.main import main

    ws, _ = bundled_sample(tmp_path / "data")
    engine = ScriptedEngine(ws.settings)
    ws.close()
    monkeypatch.setattr("mmrec_core.engines.get_engine", lambda settings: engine)
    args = ["--data-dir", str(tmp_path / "data"), "eval", "ablations", "sample", "--users", "5", "--ablations"]
    assert main([*args, "no-profile"]) == 0
    out = capsys.readouterr().out
    assert "full ..." in out and "no-profile ..." in out and "no-similar" not in out
    assert "5 users, runs:" in out
