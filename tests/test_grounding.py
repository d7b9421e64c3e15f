"""The grounding checker on a hand-labelled table of 20 real texts: the embedded engine's outputs quoted in issue 22
and H&M's own detail_desc checked against the rest of the article (sample_data), plus image-fact cases.

Each row: text, catalog fields, visual facts, and every checkable claim as (words as written, support) in reading
order, labelled by reading the article, not by running the checker."""

import json

import pandas as pd
import pytest

from mmrec_core.grounding import Grounding, check

ARTICLES = pd.read_csv("sample_data/articles.csv", dtype=str).set_index("prod_name")


def catalog(title: str, with_details: bool = True) -> list[str]:
    """The article's catalog texts; without its detail_desc when that is the text under test."""
    row = ARTICLES.loc[[title]].iloc[0]  # the first of same-named articles
    fields = [title, row.product_type_name, row.colour_group_name, row.graphical_appearance_name]
    return fields + ([row.detail_desc] if with_details else [])


U, C, V = "unsupported", "catalog", "image"  # V: visual facts
CASES = [
    (  # builtin engine, issue 22: numbers, pack size and product types that the article does not have
        "Shape Up 100 den den 3p Ties. product category: Leggings. product colour group (2): Black. "
        "product graphic type: Sock.",
        catalog("Shape Up 30 den 1p Tights"), [],
        [("100 den", U), ("3p", U), ("Ties", U), ("product category", U), ("Leggings", C),
         ("product colour group", U), ("2", U), ("Black", C), ("product graphic type", U), ("Sock", U)],
    ),
    (
        "Control Top 100 denim tights, available in a variety of colours",
        catalog("Control Top 50 den 1p Tights"), [],
        [("Top", C), ("100", U), ("denim", U), ("tights", C)],
    ),
    (
        "Box 4p Tights, a bespoke, bespoke underwear tights made from the finest, most luxurious materials",
        catalog("Box 4p Tights"), [],
        [("4p", C), ("Tights", C), ("underwear", C), ("tights", C)],
    ),
    (
        "Sneakers, Sleeveless, Slippers, Suede, Sunglasses",
        catalog("Nouvelle 1p Stay Up"), [],
        [("Sneakers", U), ("Slippers", U), ("Suede", U), ("Sunglasses", U)],
    ),
    (  # H&M's own texts against the rest of the article: what the attributes do not say is unsupported
        "Semi shiny stay-ups with a wide lace trim at the top and silicone on the inside. 20 denier.",
        catalog("Nouvelle 1p Stay Up", with_details=False), [],
        [("stay-ups", C), ("lace", U), ("20 denier", U)],
    ),
    (
        "Fitted, long-sleeved top in soft, ribbed jersey with a V-neck and buttons at the top.",
        catalog("Georgina", with_details=False), [],
        [("top", C), ("ribbed", U), ("jersey", U)],
    ),
    (
        "Fitted jacket in woven fabric with notch lapels, jetted front pockets, a decorative button at the cuffs "
        "and a single back vent. Lined.",
        catalog("Mariette Blazer", with_details=False), [],
        [("jacket", C)],  # a blazer is a jacket
    ),
    (
        "Fully lined bikini bottoms with a low waist and cutaway coverage at the back.",
        catalog("Surfs Up Tanga", with_details=False), [],
        [("bikini bottoms", C)],
    ),
    (
        "Ankle-length cigarette trousers in a stretch weave with a zip fly, concealed hook-and-eye fastening.",
        catalog("Pluto RW slacks (1)", with_details=False), [],
        [("trousers", C)],
    ),
    (
        "Blouse in sturdy cotton denim with buttons down the front and a wide, rounded collar.",
        catalog("Penelope Denim Price Item", with_details=False), [],
        [("Blouse", C), ("cotton", U), ("denim", C)],
    ),
    (  # a negated attribute is no claim
        "Jersey hair elastics without metal clips.",
        catalog("10p Jersey Terry", with_details=False),
        [],
        [("Jersey", C)],
    ),
    (
        "Long, pleated skirt in a softly draping crêpe weave with a high waist and a concealed zip. Lined.",
        catalog("Debra", with_details=False),
        [],
        [("pleated", U), ("skirt", C), ("crêpe", U)],
    ),
    (
        "Wide blouse in an airy, patterned viscose weave with a V-neck and buttons down the front.",
        catalog("Jackie", with_details=False),
        [],
        [("blouse", C), ("patterned", U), ("viscose", U)],
    ),
    (
        "Short top in an airy cotton weave. Square neckline with a narrow elastication, short puff sleeves.",
        catalog("Emily", with_details=False),
        [],
        [("top", C), ("cotton", U)],  # a blouse is a top
    ),
    (
        "Lined bikini top with no fasteners. Padded cups with removable inserts that shape the bust.",
        catalog("Wowcha Top", with_details=False),
        [],
        [("bikini top", C)],
    ),
    (
        "Fitted top in soft organic cotton jersey with short sleeves.",
        catalog("Claudine t-shirt", with_details=False),
        [],
        [("top", C), ("organic cotton", U), ("jersey", U)],
    ),
    (
        "Set with a soft, non-wired bra and a pair of briefs in lace. No fasteners.",
        catalog("Fissa Set 1pk", with_details=False),
        [],
        [("Set", C), ("bra", C), ("briefs", C), ("lace", C)],
    ),
    (
        "Push-up bra in microfibre with underwired, moulded, padded cups and adjustable shoulder straps.",
        catalog("OP Push Melbourne^", with_details=False),
        [],
        [("bra", C), ("microfibre", U)],
    ),
    (
        "V-neck top in woven fabric with spaghetti shoulder straps.",
        catalog("Prima", with_details=False),
        [],
        [("top", C)],
    ),
    (
        "High-waisted jeans in washed superstretch denim with a zip fly and button, fake front pockets.",
        catalog("Jade HW Skinny Denim TRS", with_details=False),
        [],
        [("jeans", C), ("denim", C)],
    ),
    (  # the same numbers written differently are one claim
        "Matt tights, 20 den, elasticated waist.",
        catalog("Box 4p Tights"), [],
        [("tights", C), ("20 den", C)],
    ),
    (  # image facts: confident ones support, weak ones do not; printed text supports its words and a print
        'A dark blue shirt with a red "SUMMER" print.',
        [], [{"kind": "colour", "value": "blue", "confidence": 0.7},
             {"kind": "colour", "value": "red", "confidence": 0.1},
             {"kind": "object", "value": "Shirt", "confidence": 0.5},
             {"kind": "text", "value": "SUMMER", "confidence": 0.9}],
        [("dark blue", V), ("shirt", V), ("red", U), ('"SUMMER"', V), ("print", V)],
    ),
    ("", [], [], []),
]


@pytest.mark.parametrize(("text", "fields", "facts", "expected"), CASES)
def test_claims_match_the_hand_labels(text, fields, facts, expected):
    found = [(c.text, c.support) for c in check(text, fields, facts).claims]
    assert found == expected


def test_rate_and_round_trip():
    g = check(CASES[1][0], CASES[1][1])
    assert g.unsupported_rate == pytest.approx(2 / 4)
    again = Grounding.from_json(g.to_json())
    assert again.claims == g.claims and json.loads(g.to_json())["version"] == g.version
    assert Grounding.from_json(None) is None and check("").unsupported_rate == 0.0
