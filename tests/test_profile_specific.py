"""Specific block summaries: the scaffold of what recurs, and the checks a summary must pass (profiles.specific).

The items are real sample articles; their evidence is built from their catalog rows as the profile builder does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_core.config import SAMPLE_DATA_DIR
from mmrec_core.grounding.claims import Evidence, catalog_evidence, catalog_texts
from mmrec_core.profiles.specific import (
    grounded,
    item_terms,
    rarity,
    running_weights,
    scaffold,
    scaffold_sentence,
    twins,
    vague_reason,
)


@pytest.fixture(scope="module")
def evidence():
    rows = pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str).set_index("article_id")
    picked = ["0160442010", "0179950001", "0179123001", "0160442043"]  # white socks, leather belt, black leggings, grey
    out, titles = {}, {}
    for item in picked:
        row = rows.loc[item]
        texts = catalog_texts(row["prod_name"], row["product_type_name"], row["detail_desc"], row.dropna().to_dict())
        out[item], titles[item] = catalog_evidence(texts), f"{row['prod_name']}. {row['product_type_name']}"
    return out, titles


@pytest.fixture(scope="module")
def terms(evidence):
    return item_terms(*evidence[:1], {}, evidence[1])


def test_item_terms_name_concrete_attributes_then_keywords(evidence):
    found, titles = evidence
    terms = item_terms(found, {"0179950001": ["hip belt", "Leather"]}, titles)
    assert {"belt", "black", "leather"} <= set(terms["0179950001"]) and "solid" not in terms["0179950001"]
    assert terms["0179950001"][-1] == "hip belt"  # keywords after the attributes, lower-cased, no repeats
    assert terms["0179950001"].count("leather") == 1
    assert {"socks", "white"} <= set(terms["0160442010"]) and "melange" in terms["0160442043"]
    # product types from the title and category only: the socks' text mentions shoes, the garment group tights
    assert not {"shoes", "tights"} & set(terms["0160442010"])
    assert {"shoes", "tights"} <= set(item_terms(found, {})["0160442010"])


def test_running_weights_decay_and_the_scaffold_takes_the_heaviest(terms):
    blocks = [["0160442010", "0160442043"], ["0179950001", "0179123001"]]
    first, second = running_weights(blocks, terms)
    assert first["socks"] == 1.0 and second["socks"] == 0.5  # both items of block 1, then halved
    assert second["black"] == 1.0 and second["belt"] == 0.5
    assert scaffold(second, 3) == ["black", "belt", "jersey"]  # ties alphabetical


def test_the_scaffold_leaves_out_a_term_inside_a_heavier_one():
    weights = {"black top": 2.0, "black": 1.5, "top": 1.0, "lace": 0.5, "all-over print": 0.4, "all over print": 0.3}
    assert scaffold(weights, 3) == ["black top", "lace", "all-over print"]


def test_rare_terms_outrank_common_ones_of_the_same_weight(terms):
    rare = rarity(terms)  # socks on two of the four items, leather on one, black on two
    assert rare["leather"] > rare["socks"] == rare["black"] > 0
    weights = {"black": 1.0, "leather": 1.0, "socks": 0.6}
    assert scaffold(weights, 2) == ["black", "leather"] and scaffold(weights, 2, rare) == ["leather", "black"]


def test_the_scaffold_sentence_states_the_terms_then_the_latest_titles():
    said = scaffold_sentence(["swimwear", "dark green"], "purchases", ["Don Vito moulded triangle", "Scallop 5p Socks"])
    assert said == (
        "Recurring in their purchases: swimwear, dark green. "
        "Most recently: Don Vito moulded triangle; Scallop 5p Socks."
    )
    assert scaffold_sentence([], "videos watched") == ""


# (summary, what `grounded` keeps, why it is not specific or None). Terms: black, belt, jersey, leather, leggings, ...
SUMMARIES = [
    ("She buys black leggings and a leather belt, all solid.", "same", None),
    ("This customer has a unique and authentic style.", "", "names 0 of 3 recurring attributes"),  # fits anyone
    ("She loves affordable, sustainable black leggings. Her belt is leather.", "Her belt is leather.",
     "names 2 of 3 recurring attributes"),  # selling points the catalog never makes
    ("She likes black leggings. She also loves red mohair kaftans.", "She likes black leggings.",
     "names 2 of 3 recurring attributes"),  # the invented sentence goes; what is left names too little
    ("Black belts and leggings in solid colours", "", "names 0 of 3 recurring attributes"),  # cut off: dropped
    ("Mostly black: leggings and a hip belt. They like plain pieces.", "same", None),
]


@pytest.mark.parametrize("text, kept, reason", SUMMARIES)
def test_a_summary_is_grounded_then_held_to_the_scaffold(evidence, terms, text, kept, reason):
    covered = [["0179950001", "0179123001"]]
    union = Evidence.union([evidence[0]["0179950001"], evidence[0]["0179123001"]])
    weights = running_weights(covered, terms)[-1]
    terms = scaffold(weights, 6)
    clean = grounded(text, union, list(weights))
    assert clean == (text if kept == "same" else kept)
    assert vague_reason(clean, terms, union, min_terms=3) == reason


def test_a_summary_close_to_another_customers_is_a_twin_but_not_to_its_own_past():
    a, b, c = np.eye(3, dtype=np.float32)
    others = np.stack([a, b])
    found = twins(np.stack([a, c, c * 0.99 + a * 0.01]), ["u1", "u2", "u3"], others, ["u1", "u9"], near=0.95)
    assert found == [False, True, True]  # u1's own earlier summary is no twin; u2 and u3 read alike
