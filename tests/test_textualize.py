"""Stage 1: keyword parsing and facets, rewards, the resumable textualize job, the attribute check."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mmrec_core.cli.main import main
from mmrec_core.grounding import Grounding
from mmrec_core.textualize.build import TextualizeConfig, textualize
from mmrec_core.textualize.keywords import build_facets, grounded, parse_keywords
from mmrec_core.textualize.quality import balanced_accuracy, evaluate_descriptions, names_value
from mmrec_core.textualize.rewards import keyword_rewards

# -- keywords ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("black, jersey, t-shirt", ["black", "jersey", "t-shirt"]),
        ("1. Black\n2. Slim fit\n- denim\n* denim", ["black", "slim fit", "denim"]),
        ("colour: dark blue; material: cotton", ["dark blue", "cotton"]),
        ("Here are 6 to 10 short keywords for the product:\n- socks", ["socks"]),  # chatter dropped
        ("a, b, skirt", ["skirt"]),  # single letters are not keywords
        ("one, two, three, four, five", ["one", "two", "three"]),  # budget
    ],
)
def test_parse_keywords_is_lenient_but_clean(answer, expected):
    assert parse_keywords(answer, budget=3 if "five" in answer else 12) == expected


def test_facets_keep_only_grounded_keywords_and_fill_gaps_from_the_source():
    source = "Slim jeans in washed stretch denim. Colour: dark blue. Pattern: denim wash. For everyday wear."
    keywords, facets = build_facets(["dark blue", "slim", "leather", "trousers"], source, ["Trousers", "Dress"], 12)
    assert "leather" not in keywords  # not in the source: a summary may compress, never invent
    assert facets["colour"] == ["dark blue"] and facets["style"] == ["slim"]
    assert facets["material"] == ["denim"] and facets["use"] == ["everyday"]  # filled from the text
    assert "trousers" not in keywords  # 'trousers' is a category but the source never says it
    assert grounded("stretch denim", source) and not grounded("wool", source)


# -- rewards ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_rewards_prefer_faithful_short_keywords(builtin_engine):
    source = "Slim jeans in washed stretch denim with a high waist. Colour: dark blue."
    faithful = ["jeans", "denim", "dark blue", "slim", "high waist"]
    unrelated = ["bikini", "swimwear", "pink", "floral", "beach"]
    padded = faithful + ["jeans trousers", "stretch", "washed", "waist", "blue", "high", "slim jeans"]
    settings = replace(builtin_engine.settings, reward_weights="1,2,0.5", keyword_budget=10)
    r_good, r_bad, r_long = keyword_rewards(builtin_engine, [faithful, unrelated, padded], [source] * 3, settings)
    assert r_good.r_info > r_bad.r_info + 0.2
    assert r_good.r_recon > r_bad.r_recon and 0 < r_good.r_recon <= 1
    assert (r_good.r_len, r_long.r_len) == (-0.5, -1.2)
    assert r_good.reward == pytest.approx(r_good.r_info + 2 * r_good.r_recon + 0.5 * -0.5)
    assert r_good.reward > r_bad.reward


# -- the textualize job -----------------------------------------------------------------------


@pytest.mark.slow
def test_textualize_stores_everything_with_provenance_and_resumes(sample_workspace, builtin_engine):
    ws, engine = sample_workspace, builtin_engine
    ids = ws.store.items("sample")["item_id"].tolist()[:3]
    seen = []
    report = textualize(ws, engine, "sample", ids, TextualizeConfig(batch_size=2), lambda d, t, m: seen.append(d))
    assert (report.done, report.skipped, report.failed) == (3, 0, [])
    assert seen[0] == 0 and seen[-1] == 3 and report.items_per_second > 0

    stored = ws.store.latest_keywords("sample").set_index("item_id")
    assert sorted(stored.index) == sorted(ids)
    for item_id, row in stored.iterrows():
        assert row["description"] and len(row["keywords"]) >= 2 and row["prompt_version"] == "keywords-v3"
        assert -1 <= row["r_info"] <= 1 and 0 < row["r_recon"] <= 1 and row["r_len"] < 0
        versions = ws.store.text_versions("sample", item_id)
        assert versions["image_sha256"].iloc[0] == ws.store.item("sample", item_id)["image_sha256"]
        assert "colour" in {f["kind"] for f in json.loads(versions["facts"].iloc[0])}
        claims = Grounding.from_json(versions["grounding"].iloc[0]).claims  # stored with the text it checks
        assert claims and all(c.support in ("catalog", "image") for c in claims)
        assert json.loads(versions["params"].iloc[0])["quantization"] == "none"
        assert versions["model"].iloc[0].startswith("visual-facts + SmolLM2")

    again = textualize(ws, engine, "sample", ids)
    assert (again.done, again.skipped) == (0, 3)  # unchanged inputs and provenance: nothing redone

    ws.store.cursor().execute("UPDATE items SET text = text || ' New fabric.' WHERE item_id = ?", [ids[0]])
    changed = textualize(ws, engine, "sample", ids)
    assert (changed.done, changed.skipped) == (1, 2)
    assert len(ws.store.text_versions("sample", ids[0])) == 2  # the older version is kept beside the new one


@pytest.mark.slow
def test_one_broken_image_is_reported_and_the_rest_is_stored(sample_workspace, builtin_engine):
    ws, engine = sample_workspace, builtin_engine
    ids = ws.store.items("sample")["item_id"].tolist()[10:13]
    broken = ws.store.item("sample", ids[1])
    ws.images.path(broken["image_sha256"], broken["ext"]).write_bytes(b"not a jpeg at all")
    report = textualize(ws, engine, "sample", ids, TextualizeConfig(batch_size=3))
    assert report.done == 2 and [item for item, _ in report.failed] == [ids[1]]
    assert "cannot be read" in report.failed[0][1]
    assert sorted(ws.store.latest_keywords("sample")["item_id"]) == sorted([ids[0], ids[2]])


def test_unknown_items_and_data_sets_are_named(sample_workspace, builtin_engine):
    with pytest.raises(KeyError, match="Unknown item"):
        textualize(sample_workspace, builtin_engine, "sample", ["no-such-article"])
    with pytest.raises(KeyError, match="Unknown data set 'nope'"):
        textualize(sample_workspace, builtin_engine, "nope")


@pytest.mark.slow
def test_cli_textualize_reports_rate_and_skips_on_rerun(sample_workspace, capsys):
    data = str(sample_workspace.settings.data_dir)
    item = sample_workspace.store.items("sample")["item_id"].iloc[20]
    sample_workspace.close()
    assert main(["--data-dir", data, "textualize", "sample", "--items", item]) == 0
    assert "textualized 1 items" in capsys.readouterr().out
    assert main(["--data-dir", data, "textualize", "sample", "--items", item]) == 0
    out = capsys.readouterr().out
    assert "textualized 0 items" in out and "skipped 1 unchanged" in out


# -- attribute check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ("a dark blue jersey top", "Dark Blue", True),
        ("a blue jersey top", "Dark Blue", False),
        ("black tights with support", "Leggings/Tights", True),
        ("black t-shirts", "T-shirt", True),
        ("a shirt in cotton", "T-shirt", False),
    ],
)
def test_names_value_matches_whole_phrases(text, value, expected):
    assert names_value(text, value) is expected


@pytest.mark.slow
def test_eval_descriptions_scores_every_describer_on_held_out_articles(sample_workspace, builtin_engine):
    report = evaluate_descriptions(sample_workspace, builtin_engine, "sample", n=4, seed=1)
    parts = sample_workspace.store.item_split("sample", report.split_id)
    assert report.items == 4 and {parts[i] for i in report.examples["item_id"]} == {"test"}
    table = report.describers.set_index("describer")
    assert list(table.index) == ["free", "template", "filtered"]
    # the fact sheet never invents, even with detail_desc withheld; whatever the free LLM writes is counted
    assert table.loc["template", "unsupported claims"] == 0 and table.loc["template", "field names"] == 0
    assert table.loc["template", "names colour"] == 1.0  # the catalog colour is always said
    assert (table["similarity to detail_desc"].between(-1, 1)).all() and (table["claims per text"] > 0).all()
    for text, secret in zip(report.examples["description"], report.examples["detail_desc"], strict=True):
        assert secret not in text  # the withheld text never reaches a describer
    image = report.image.set_index("attribute")
    assert list(image.index) == ["colour", "product type", "pattern"]
    assert (image["majority balanced"] == 1 / image["classes"]).all()


def test_balanced_accuracy_scores_a_constant_guess_at_one_over_the_classes():
    truth = ["solid"] * 8 + ["stripe", "check"]
    assert balanced_accuracy(truth, ["solid"] * 10) == pytest.approx(1 / 3)
    assert balanced_accuracy(truth, truth) == 1.0
