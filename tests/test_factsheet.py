"""The fact-sheet describer: what it writes is supported claim by claim, hedged where the image is unsure."""

from __future__ import annotations

import pandas as pd
import pytest

from mmrec_core.config import SAMPLE_DATA_DIR
from mmrec_core.grounding.claims import catalog_evidence, catalog_texts, check, find_claims, grounded_sentences
from mmrec_core.grounding.factsheet import build_sheet, write_description


def _articles() -> list[dict]:
    return pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str).fillna("").to_dict("records")


@pytest.mark.parametrize("held_out", [False, True], ids=["whole catalog", "detail_desc withheld"])
def test_every_sample_article_is_described_without_one_unsupported_claim(held_out):
    for row in _articles():
        attributes = {k: v for k, v in row.items() if not (held_out and k == "detail_desc")}
        text = "" if held_out else row["detail_desc"]
        description = write_description(build_sheet(row["prod_name"], row["product_type_name"], text, attributes))
        grounding = check(description, catalog_texts(row["prod_name"], row["product_type_name"], text, attributes))
        assert grounding.unsupported == [], (description, grounding.unsupported)
        assert not [c for c in find_claims(description) if c.kind == "field name"]
        assert description.startswith(row["prod_name"] + ":")
        colour = row["colour_group_name"].lower().removeprefix("other ")
        if colour not in ("unknown", "other"):  # the catalog colour is always said
            assert colour in description.lower(), description


def test_a_title_number_is_said_and_a_variant_number_in_the_text_is_not():
    row = next(r for r in _articles() if r["prod_name"] == "Shape Up 30 den 1p Tights")
    described = write_description(build_sheet(row["prod_name"], row["product_type_name"], row["detail_desc"], row))
    assert "30 denier" in described and "15 denier" not in described  # 15 den is the light amber variant
    assert "pair of solid black tights" in described


# An uploaded photo: no catalog fields, so everything past the title comes from the image and its confidence.
UPLOAD = ("IMG_0042", "uploaded", "IMG_0042. category: uploaded")
IMAGE_CASES = [
    # (facts, must appear, must not appear)
    ([("object", "sweater", 0.8)], ["shows a sweater"], ["appears"]),
    ([("object", "sweater", 0.35)], ["appears to be a sweater"], []),
    ([("object", "sweater", 0.1)], [], ["sweater"]),  # below the threshold: left out
    ([("colour", "dark blue", 0.9)], ["is mostly dark blue"], []),
    ([("colour", "dark blue", 0.4)], ["looks mostly dark blue"], []),
    ([("pattern", "solid", 0.85)], ["looks solid"], []),
    ([("text", "SUMMER", 0.99)], ['"SUMMER"'], []),
    ([("text", "ghts", 0.94)], [], ["ghts"]),  # an OCR fragment, however sure OCR is
    ([("object", "trousers", 0.7), ("colour", "black", 0.9)], ["shows a pair of trousers", "is mostly black"], []),
]


@pytest.mark.parametrize("facts, present, absent", IMAGE_CASES)
def test_image_facts_are_stated_hedged_or_left_out_by_confidence(facts, present, absent):
    facts = [{"kind": k, "value": v, "confidence": c} for k, v, c in facts]
    described = write_description(build_sheet(*UPLOAD, {}, facts))
    for phrase in present:
        assert phrase in described, described
    for phrase in absent:
        assert phrase not in described, described
    assert check(described, catalog_texts(*UPLOAD), facts).unsupported == []


def test_only_fully_supported_llm_sentences_survive_the_filter():
    catalog = catalog_evidence(["Shape Up 30 den 1p Tights", "Leggings/Tights", "Black", "Solid"])
    prose = (
        "These black tights give a smooth look. They are made of soft denim. "
        "product colour group: Black. Wear them"  # a field name, and a fragment
    )
    assert grounded_sentences(prose, catalog) == ["These black tights give a smooth look."]
