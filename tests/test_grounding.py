"""The grounding checker on a hand-labelled table of 45 real texts: the embedded engine's outputs (quoted in issue 22,
more of its free describer's on sample articles, and its block summaries of sample customers) and H&M's own
detail_desc checked against the rest of the article (sample_data), plus made-up number and image-fact cases.

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
        [("4p", C), ("Tights", C), ("bespoke", U), ("bespoke", U), ("underwear", C), ("tights", C), ("finest", U),
         ("luxurious", U)],  # selling points the catalog never makes
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
    # -- more of the builtin engine's own (free describer) outputs on sample articles: inventions it makes
    (
        "This product is a Skinnies. A Skinnie is a type of clothing made from light blue denim.",
        catalog("Skinny L.W Elite"), [],
        [("light blue", C), ("denim", C)],
    ),
    (
        "Skirt Mini: A stylish and versatile piece of clothing that can be worn by anyone.",
        catalog("Skirt Mini"), [],
        [("Skirt", C)],
    ),
    (
        "The product is a flirty lassie necklace made of gold, with a metallic finish.",
        catalog("Flirty Linnea necklace"), [],
        [("necklace", C), ("gold", C), ("metallic", U)],  # a metal chain is no metallic finish
    ),
    (
        "Lindsay N - Slip (W), Black, 90% (0%) (0)\nLace: Black, Lace, 0.5% (1.11)\n"
        "Pattern (metallic): glittering, 1.2% (2.21)",
        catalog("Lindsay N-slip (W)"), [],
        [("Black", C), ("90%", U), ("0%", U), ("0", U), ("Lace", C), ("Black", C), ("Lace", C), ("0.5%", U),
         ("1.11", U), ("Pattern", U), ("metallic", U), ("glittering", U), ("1.2%", U), ("2.21", U)],
    ),
    (
        "Tilly (2). T-Shirt: 1.\nT-shirt: 2.\nColouring: 99.99%\nPatterned: 0.001%\n\n"
        "This product is a 100% authentic product with a 90% chance of",
        catalog("Tilly (1)"), [],
        [("2", U), ("T-Shirt", C), ("1", C), ("T-shirt", C), ("2", U), ("99.99%", U), ("Patterned", U),
         ("0.001%", U), ("100%", U), ("90%", U)],  # a bare number the title has ("Tilly (1)") counts as said
    ),
    (
        "Categories: 1.\nProduct Description: Beckas Hoodie, a 2022 product, is a 100% of the product, a product of "
        "the company, Becka Hoodie.\nLikes: 2.\nSatisfies: 3.\nMakes",
        catalog("Becka hoodie"), [],
        [("Categories:", U), ("1", U), ("Product Description", U), ("Hoodie", C), ("2022", U), ("100%", U),
         ("Hoodie", C), ("2", U), ("3", U)],
    ),
    (
        "Mascara: Mascara\nMisc.: Mascaras\nProduct: Melt-A-Sweat\n\nThis product is a product that is made from a "
        "machine-read, and it is made with a machine that is capable of reading the color of the fabric.",
        catalog("PETAR SWEATSHIRT"), [],
        [("Mascara", U), ("Mascara", U), ("Mascaras", U)],
    ),
    (
        "Mentioning the colour is a double-edged sword. While it adds a unique touch to the product, it also makes it "
        "difficult to distinguish from other similar items. The product is a mix of different materials, and the "
        "pattern is a deliberate choice to add a personal touch.",
        catalog("Girlfriend R.W."), [],
        [("pattern", U)],  # plain denim jeans
    ),
    (
        "Jalin linen (1) - A luxurious, high-end, high fashion-inspired, high end, high quality, highend, luxurious, "
        "luxurious - a bespoke, bespoke - bespoke garment - a high-quality, highquality, luxurious garment - 1.\n"
        "Jaline linen (2",
        catalog("Jalin linen(1)"), [],
        [("linen", C), ("1", C), ("luxurious", U), ("high-end", U), ("high end", U), ("high quality", U),
         ("highend", U), ("luxurious", U), ("luxurious", U), ("bespoke", U), ("bespoke", U), ("bespoke", U),
         ("high-quality", U), ("highquality", U), ("luxurious", U), ("1", C), ("linen", C), ("2", U)],
    ),
    (
        "ESSENTIAL TOAD LACE VEHICLE TUNP LACE (SUPERSUBSTITUTE OF TOAD TOAD TUNCE)\nEASY TO DON'T DON’T DONT DON‘T "
        "DONE!\n\nThis product is a high",
        catalog("ESSENTIAL TANKTOP LACE TVP"), [],
        [("LACE", C), ("LACE", C)],  # the title says lace
    ),
    # -- more H&M detail_desc against the rest of the article
    (
        "Sports bra in fast-drying functional fabric with jacquard-patterned details, removable inserts, adjustable "
        "shoulder straps that cross at the back and wide ribbing at the hem. Light support. The bra is designed with "
        "the minimum number of seams for a more comfortable fit and increased mobility.",
        catalog("Honey seamless bra", with_details=False), [],
        [("bra", C), ("jacquard-patterned", U), ("bra", C)],
    ),
    (
        "High-waisted shorts in superstretch twill with a zip fly and button, back pockets and sewn-in turn-ups at "
        "the hems.",
        catalog("Ozzy  HW Denim Shorts", with_details=False), [],
        [("shorts", C), ("twill", U)],
    ),
    (
        "Sleeveless blouse in linen with a deep V-neck front and back, buttons down the front and a seam at the "
        "waist with a flared peplum.",
        catalog("Ariel", with_details=False), [],
        [("blouse", C), ("linen", U)],
    ),
    (
        "Wide sports top in fast-drying functional fabric with a slightly wider neckline and short cap sleeves. "
        "Rounded and slightly longer at the back.",
        catalog("Izzy tee", with_details=False), [],
        [("top", C)],  # a T-shirt is a top; "cap sleeves" are sleeves
    ),
    (
        "Lined bikini top with padded cups for a larger bust and fuller cleavage. Wide shoulder straps and a metal "
        "fastener at the back.",
        catalog("Push it Push Bra.", with_details=False), [],
        [("bikini top", C), ("metal", U)],
    ),
    (
        "Sports shorts in fast-drying functional fabric with a regular elasticated, drawstring waist, mesh key "
        "pocket in the waistband and short slits at the hems.",
        catalog("RA RW shorts", with_details=False), [],
        [("shorts", C), ("mesh", U)],
    ),
    (
        "Boxy-style jumper in a soft, fine knit containing some wool with low dropped shoulders, long sleeves and "
        "ribbing around the neckline, cuffs and hem. The polyester content of the jumper is recycled.",
        catalog("Dame", with_details=False), [],
        [("jumper", C), ("wool", U), ("polyester", U), ("jumper", C), ("recycled", U)],
    ),
    (
        "Fitted strappy top in soft organic cotton jersey.",
        catalog("Strap Top.", with_details=False), [],
        [("top", C), ("organic cotton", U), ("jersey", U)],
    ),
    (
        "Fine-knit trainer socks in a soft cotton blend.",
        catalog("7p Basic Shaftless", with_details=False), [],
        [("socks", C), ("cotton", U)],
    ),
    (
        "Fully lined, waist-high bikini bottoms with a decorative belt and round plastic buckle at the waist and a "
        "high cut at the back.",
        catalog("Belter HW Cheeky Brazilian", with_details=False), [],
        [("bikini bottoms", C), ("belt", U), ("plastic", U)],  # swimwear bottoms; the belt is a claimed detail
    ),
    (
        "Shaping briefs in microfibre and lace with a high waist, lined gusset and medium coverage at the back. Firm "
        "shaping effect on the waist and hips.",
        catalog("Emilia Brief HR FS", with_details=False), [],
        [("briefs", C), ("microfibre", U), ("lace", U)],
    ),
    (
        "Trousers in stretch twill with a high, elasticated waist and a concealed zip in one side. Fake welt pockets "
        "at the back and slim legs with creases and short slits at the hems.",
        catalog("Noa skinny trouser", with_details=False), [],
        [("Trousers", C), ("twill", U)],
    ),
    # -- the builtin engine's block summaries of sample customers (profiles), against the items they cover
    (
        "The customer purchased the iconic bikini top from the iconic swimwear brand, which is now available at the "
        "iconic beachfront store.",
        catalog("Scallop 5p Socks") + catalog("Don Vito moulded triangle") + catalog("Buckle Up Triangle Top"), [],
        [("iconic", U), ("bikini top", C), ("iconic", U), ("swimwear", C), ("brand", U), ("iconic", U)],
    ),
    (
        "The customer is interested in the most affordable options available to them, with a focus on sustainable "
        "and eco-friendly products. They also prioritize quality over quantity, opting for the most affordable and "
        "stylish options that align with their personal style.",
        catalog("Ashley Denim TRS") + catalog("Jade HW Skinny Denim TRS"), [],
        [("affordable", U), ("sustainable", U), ("eco-friendly", U), ("affordable", U)],  # all three are denim
    ),
    (
        "They prefer to buy from a limited selection of products that are made with high-quality materials such as "
        "black, printed, beige, belt, imitation leather, metal, and other unique designs.",
        catalog("+ Coco Highwaist") + catalog("Alex Jogger (J)") + catalog("STAR western belt"), [],
        [("high-quality", U), ("black", C), ("printed", C), ("beige", U), ("belt", C), ("imitation leather", C),
         ("metal", C)],  # the belt's "patterned metal buckle" is its print; nothing is beige
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
