"""An item's compact keyword set: parse the LLM's list, sort each keyword into a facet, fill gaps from the text.

Facets: style, colour, material, category, pattern, use (MMSRARec's keyword summaries). A small LLM
often ignores the format, so parsing is lenient and facets are assigned by vocabulary, not trusted
from the model. Facets the LLM left empty are filled with terms found in the source text itself
(never invented), so a keyword set stays informative whatever the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mmrec_core.engines.vision import PALETTE

FACETS = ("category", "colour", "pattern", "material", "style", "use")

COLOURS = sorted({name.lower() for name, _ in PALETTE} | {"navy", "brown", "purple", "gold", "silver", "khaki"})
MATERIALS = [
    "cotton",
    "organic cotton",
    "denim",
    "wool",
    "merino",
    "cashmere",
    "linen",
    "silk",
    "satin",
    "viscose",
    "polyester",
    "nylon",
    "elastane",
    "lace",
    "leather",
    "imitation leather",
    "suede",
    "velvet",
    "jersey",
    "fleece",
    "knit",
    "rib",
    "chiffon",
    "mesh",
    "corduroy",
    "twill",
    "sweatshirt fabric",
    "faux fur",
    "tulle",
]
PATTERNS = [
    "solid",
    "stripe",
    "striped",
    "check",
    "checked",
    "dot",
    "dots",
    "spotted",
    "floral",
    "print",
    "printed",
    "all over pattern",
    "melange",
    "embroidery",
    "embroidered",
    "sequin",
    "sequins",
    "glitter",
    "metallic",
    "jacquard",
    "denim wash",
    "washed",
    "colour blocking",
    "lace",
    "animal print",
    "camouflage",
    "tie-dye",
]
USES = [
    "sport",
    "sports",
    "training",
    "running",
    "yoga",
    "swim",
    "swimwear",
    "beach",
    "party",
    "office",
    "work",
    "casual",
    "everyday",
    "lounge",
    "loungewear",
    "sleep",
    "nightwear",
    "outdoor",
    "winter",
    "summer",
    "school",
    "wedding",
    "festive",
    "evening",
    "maternity",
    "baby",
    "kids",
]
STYLES = [
    "slim",
    "skinny",
    "regular",
    "relaxed",
    "oversized",
    "fitted",
    "loose",
    "cropped",
    "high waist",
    "wide",
    "straight",
    "long",
    "short",
    "sleeveless",
    "hooded",
    "v-neck",
    "basic",
    "classic",
    "soft",
    "stretch",
    "elastic",
    "wired",
    "padded",
    "push-up",
    "button",
    "zip",
    "pockets",
]


def parse_keywords(text: str, budget: int) -> list[str]:
    """Lower-case keywords from a loosely comma/line separated answer, deduplicated, at most `budget`."""
    keywords: list[str] = []
    for raw in re.split(r"[,;\n]|\s-\s", text):
        word = raw.strip().lower()
        word = re.sub(r"^(\d+[.)]|[-*\u2022])\s*", "", word)  # list markers
        word = re.sub(r"^(style|colou?r|material|category|pattern|use|keywords?)\s*:\s*", "", word)
        word = re.sub(r"[^\w\s/&'-]", "", word).strip(" -'")
        if not (2 <= len(word) <= 30) or len(word.split()) > 4 or word in keywords:
            continue
        keywords.append(word)
        if len(keywords) >= budget:
            break
    return keywords


def grounded(keyword: str, source: str) -> bool:
    """Every word of the keyword occurs in the source (plural s aside): summaries may compress, not invent."""
    words = set(re.findall(r"[\w-]+", source.lower()))
    return all(w in words or w.rstrip("s") in words or f"{w}s" in words for w in re.findall(r"[\w-]+", keyword))


def contains_term(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text) is not None


def facet_of(keyword: str, categories: Sequence[str]) -> str:
    """The facet a keyword belongs to, by vocabulary (catalog categories first); 'style' if none matches."""
    vocab = {"category": categories, "colour": COLOURS, "pattern": PATTERNS, "material": MATERIALS, "use": USES}
    for facet, terms in vocab.items():
        if any(keyword == t or contains_term(keyword, t) for t in terms):
            return facet
    return "style"


def build_facets(
    llm_keywords: Iterable[str], source: str, categories: Sequence[str], budget: int
) -> tuple[list[str], dict[str, list[str]]]:
    """Keywords and their facets: the LLM's keywords found in `source`, then empty facets filled from it."""
    categories = sorted({c.lower() for c in categories if c}, key=len, reverse=True)
    facets: dict[str, list[str]] = {f: [] for f in FACETS}
    keywords: list[str] = []
    for keyword in llm_keywords:
        if keyword not in keywords and grounded(keyword, source):
            keywords.append(keyword)
            facets[facet_of(keyword, categories)].append(keyword)
    text = source.lower()
    fill = {"category": categories, "colour": COLOURS, "pattern": PATTERNS, "material": MATERIALS, "use": USES}
    for facet, terms in fill.items():
        found = next((t for t in sorted(terms, key=len, reverse=True) if contains_term(text, t)), None)
        if not facets[facet] and found and found not in keywords and len(keywords) < budget:
            keywords.append(found)
            facets[facet].append(found)
    return keywords[:budget], {f: v for f, v in facets.items() if v}
