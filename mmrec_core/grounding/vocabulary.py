"""The words a product text can make claims with, grouped by kind, each form mapped to one canonical value.

A claim is checkable only if it is a closed-vocabulary attribute (colour, material, pattern, product type), a
number with a unit, or quoted print text. The vocabularies cover H&M's attribute values (product_type_name,
graphical_appearance_name, colour_group_name) and the everyday words that mean the same ("jumper" is a sweater,
"navy" is a dark blue). Forms are matched as whole words, longest first, plural `s`/`es` allowed.
"""

from __future__ import annotations

# Colour families: a shade is supported by any evidence of its family (a "dark blue" shirt whose catalog colour
# is "Blue" is not an invention; a "red" one is). Shade words without a family of their own map to one.
COLOUR_FAMILY: dict[str, str] = {
    "black": "black", "charcoal": "grey", "grey": "grey", "gray": "grey", "anthracite": "grey",
    "white": "white", "off white": "white", "off-white": "white", "ivory": "white", "cream": "white",
    "natural white": "white", "beige": "beige", "sand": "beige", "camel": "beige", "taupe": "beige",
    "mole": "beige", "greyish beige": "beige", "nude": "beige", "brown": "brown", "yellowish brown": "brown",
    "chocolate": "brown", "cognac": "brown", "rust": "orange", "pink": "pink", "rose": "pink", "fuchsia": "pink",
    "powder pink": "pink", "red": "red", "burgundy": "red", "wine red": "red", "coral": "orange",
    "orange": "orange", "yellow": "yellow", "mustard": "yellow", "mustard yellow": "yellow", "green": "green",
    "khaki": "green", "khaki green": "green", "greenish khaki": "green", "olive": "green", "mint": "green",
    "sage": "green", "turquoise": "turquoise", "teal": "turquoise", "aqua": "turquoise", "blue": "blue",
    "navy": "blue", "navy blue": "blue", "denim blue": "blue", "cobalt": "blue", "purple": "purple",
    "lilac": "purple", "lilac purple": "purple", "lavender": "purple", "violet": "purple", "plum": "purple",
    "gold": "gold", "golden": "gold", "gold-coloured": "gold", "silver": "silver", "silver-coloured": "silver",
    "bronze": "bronze", "copper": "bronze", "transparent": "transparent",
}  # fmt: skip
COLOUR_SHADES = ("light", "dark", "bright", "pale", "deep", "other")  # "light pink": shade + colour word

MATERIAL: dict[str, str] = {
    "cotton": "cotton", "organic cotton": "cotton", "denim": "denim", "wool": "wool", "woollen": "wool",
    "merino": "wool", "merino wool": "wool", "cashmere": "cashmere", "silk": "silk", "satin": "satin",
    "linen": "linen", "leather": "leather", "imitation leather": "imitation leather",
    "faux leather": "imitation leather", "suede": "suede", "imitation suede": "imitation suede",
    "faux suede": "imitation suede", "polyester": "polyester", "recycled polyester": "polyester",
    "nylon": "nylon", "polyamide": "nylon", "viscose": "viscose", "lyocell": "lyocell", "modal": "modal",
    "elastane": "elastane", "spandex": "elastane", "lycra": "elastane", "jersey": "jersey", "fleece": "fleece",
    "velvet": "velvet", "velour": "velour", "corduroy": "corduroy", "chiffon": "chiffon", "tulle": "tulle",
    "canvas": "canvas", "twill": "twill", "rubber": "rubber", "metal": "metal",
    "plastic": "plastic", "acrylic": "acrylic", "mohair": "mohair", "alpaca": "alpaca", "sweatshirt fabric":
    "sweatshirt fabric", "crêpe": "crepe", "crepe": "crepe", "poplin": "poplin", "chambray": "chambray",
    "muslin": "muslin", "felt": "felt", "straw": "straw", "microfibre": "microfibre", "terry": "terry",
}  # fmt: skip

PATTERN: dict[str, str] = {
    "solid": "solid", "solid-colour": "solid", "solid colour": "solid", "plain": "solid", "single-colour": "solid",
    "stripe": "stripe", "striped": "stripe", "pinstripe": "stripe", "pinstriped": "stripe", "check": "check",
    "checked": "check", "plaid": "check", "tartan": "check", "gingham": "check", "houndstooth": "check",
    "dot": "dot", "dotted": "dot", "polka dot": "dot", "polka-dot": "dot", "spotted": "dot", "spot": "dot",
    "floral": "print", "flower": "print", "flowered": "print", "print": "print", "printed": "print",
    "all over pattern": "print", "all-over pattern": "print", "all-over print": "print", "patterned": "print",
    "pattern": "print", "motif": "print", "front print": "print", "placement print": "print",
    "leopard": "print", "leopard print": "print", "animal print": "print", "camouflage": "print",
    "paisley": "print", "graphic": "print", "melange": "melange", "marl": "melange", "marled": "melange",
    "jacquard": "jacquard", "jacquard-knit": "jacquard",
    "jacquard-patterned": "jacquard", "lace": "lace", "embroidery": "embroidery",
    "embroidered": "embroidery", "sequin": "sequin", "sequinned": "sequin", "glitter": "glitter",
    "glittery": "glitter", "glittering": "glitter", "metallic": "glitter", "shimmer": "glitter",
    "colour block": "colour blocking", "colour blocking": "colour blocking", "colour-block": "colour blocking",
    "mesh": "mesh", "argyle": "argyle", "slub": "slub", "tie-dye": "tie-dye", "tie-dyed": "tie-dye",
    "herringbone": "herringbone", "ribbed": "rib", "rib": "rib", "rib-knit": "rib", "cable-knit": "cable knit",
    "cable knit": "cable knit", "quilted": "quilted", "pleated": "pleated", "sheer": "transparent",
    "see-through": "transparent", "appliqué": "application", "appliqués": "application",
}  # fmt: skip
# H&M graphical_appearance_name values that mean one of the canonical patterns above.
PATTERN_OF_APPEARANCE = {"glittering/metallic": "glitter", "other pattern": "print", "mixed solid/pattern": "print",
                         "application/3d": "application", "neps": "melange", "other structure": "",
                         "treatment": "", "contrast": "colour blocking"}  # fmt: skip

PRODUCT_TYPE: dict[str, str] = {
    "bag": "bag", "shoulder bag": "bag", "tote bag": "bag", "handbag": "bag", "backpack": "bag", "purse": "bag",
    "ballerinas": "flat shoes", "ballet flats": "flat shoes", "flat shoe": "flat shoes", "flat shoes": "flat shoes",
    "pumps": "pumps", "heels": "pumps", "wedge": "wedge", "wedges": "wedge", "beanie": "hat", "hat": "hat",
    "cap": "hat", "felt hat": "hat", "bucket hat": "hat", "belt": "belt", "bikini": "swimwear",
    "bikini top": "swimwear", "bikini bottoms": "swimwear", "swimsuit": "swimwear", "swimwear": "swimwear",
    "swim shorts": "swimwear", "swimming trunks": "swimwear", "blazer": "blazer", "blouse": "blouse",
    "bodysuit": "body", "body": "body", "boots": "boots", "boot": "boots", "ankle boots": "boots",
    "braces": "braces", "cardigan": "cardigan", "coat": "coat", "parka": "coat", "trench coat": "coat",
    "costume": "costume", "dress": "dress", "gown": "dress", "earring": "earrings", "earrings": "earrings",
    "flip flops": "sandals", "flip-flops": "sandals", "sandals": "sandals", "sandal": "sandals",
    "gloves": "gloves", "mittens": "gloves", "hair clip": "hair accessory", "hairband": "hair accessory",
    "hair tie": "hair accessory", "hair ties": "hair accessory", "scrunchie": "hair accessory",
    "alice band": "hair accessory", "hoodie": "hoodie", "hooded top": "hoodie", "jacket": "jacket",
    "bomber jacket": "jacket", "gilet": "jacket", "jumpsuit": "jumpsuit", "playsuit": "jumpsuit",
    "dungarees": "jumpsuit", "overalls": "jumpsuit", "mobile case": "mobile case", "phone case": "mobile case",
    "necklace": "necklace", "pendant": "necklace", "nightgown": "nightwear", "night gown": "nightwear",
    "nightdress": "nightwear", "pyjamas": "nightwear", "pyjama": "nightwear", "pyjama set": "nightwear",
    "pyjama bottoms": "nightwear", "robe": "robe", "dressing gown": "robe", "bathrobe": "robe",
    "nipple covers": "nipple covers", "trousers": "trousers", "pants": "trousers", "joggers": "trousers",
    "chinos": "trousers", "jeans": "trousers", "slacks": "trousers", "polo shirt": "polo shirt",
    "ring": "ring", "sarong": "sarong", "scarf": "scarf", "shawl": "scarf", "shirt": "shirt", "shorts": "shorts",
    "skirt": "skirt", "slippers": "slippers", "slipper": "slippers", "sneakers": "sneakers", "trainers": "sneakers",
    "socks": "socks", "sock": "socks", "ankle socks": "socks", "sunglasses": "sunglasses", "sweater": "sweater",
    "jumper": "sweater", "pullover": "sweater", "sweatshirt": "sweater", "t-shirt": "t-shirt", "tee": "t-shirt",
    "tshirt": "t-shirt", "tie": "tie", "top": "top", "crop top": "top", "tank top": "vest top",
    "vest top": "vest top", "camisole": "vest top", "strap top": "vest top", "umbrella": "umbrella",
    "underdress": "underdress", "slip dress": "dress", "wallet": "wallet", "bra": "bra", "bralette": "bra",
    "briefs": "underwear", "knickers": "underwear", "thong": "underwear", "boxer shorts": "underwear",
    "underwear": "underwear", "tights": "tights", "pantyhose": "tights", "stockings": "tights",
    "stay ups": "tights", "stay-ups": "tights", "stay up": "tights", "leggings": "leggings", "shoes": "shoes",
    "loafers": "shoes",
    "garment set": "set", "set": "set", "suit": "suit", "waistcoat": "waistcoat", "poncho": "poncho",
    "kaftan": "kaftan", "tunic": "tunic", "bolero": "bolero", "mascara": "mascara", "lipstick": "lipstick",
}  # fmt: skip
# Broader catalog words that support their narrower types ("Leggings/Tights" supports "tights" and "leggings";
# a catalog "T-shirt" supports "top"; underwear tights are tights).
BROADER: dict[str, tuple[str, ...]] = {
    "top": ("t-shirt", "vest top", "blouse", "shirt", "body", "polo shirt", "tunic", "sweater", "hoodie"),
    "shoes": ("sneakers", "boots", "pumps", "flat shoes", "sandals", "slippers", "wedge"),
    "jacket": ("blazer", "coat"),
    "coat": ("jacket",),
    "underwear": ("bra", "body"),
    "swimwear": ("bra",),
    "nightwear": ("robe", "set"),
}

# Selling points a writer adds from habit, not from the item: sustainability, price, luxury, exclusivity, brand.
# Supported only where the catalog says so (H&M's texts do say "recycled" or "organic" for some articles).
MARKETING: dict[str, str] = {
    "sustainable": "sustainable", "sustainably": "sustainable", "sustainability": "sustainable",
    "eco-friendly": "sustainable", "eco friendly": "sustainable", "environmentally friendly": "sustainable",
    "environmentally-friendly": "sustainable", "ethical": "sustainable", "ethically": "sustainable",
    "recycled": "recycled", "affordable": "price", "cheap": "price", "inexpensive": "price", "budget": "price",
    "budget-friendly": "price", "bargain": "price", "luxury": "luxury", "luxurious": "luxury",
    "premium": "luxury", "high-end": "luxury", "high end": "luxury", "highend": "luxury",
    "high-quality": "quality", "high quality": "quality", "highquality": "quality", "finest": "quality",
    "exquisite": "quality", "bespoke": "bespoke", "tailor-made": "bespoke", "made-to-measure": "bespoke",
    "exclusive": "exclusive", "limited edition": "exclusive", "limited-edition": "exclusive",
    "designer": "designer", "designers": "designer", "handmade": "handmade", "hand-made": "handmade",
    "artisan": "handmade", "brand": "brand", "brands": "brand", "boutique": "brand", "iconic": "iconic",
}  # fmt: skip

# Catalog field names that must never appear in prose (they leak from a prompt's metadata block).
FIELD_NAMES = (
    "product type", "product group", "product colour group", "product category", "product graphic type",
    "colour group", "graphical appearance", "garment group", "index name", "section name", "perceived colour",
    "department name", "product_type_name", "colour_group_name", "detail_desc", "title:", "category:",
    "details:", "catalog entry", "product description", "categories:",
)

# Units a number can carry, each form mapped to one canonical unit ("3 pack", "3-pack" and "3p" are one claim).
UNITS: dict[str, str] = {
    "den": "den", "denier": "den", "p": "p", "pk": "p", "pack": "p", "-pack": "p", "pcs": "p", "pieces": "p",
    "piece": "p", "%": "%", "percent": "%", "cm": "cm", "mm": "mm", "m": "m", "ml": "ml", "g": "g", "kg": "kg",
    "l": "l",
}
