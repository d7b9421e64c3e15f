"""Descriptions written from a fact sheet, so they cannot invent.

The sheet gathers what is known about one item: attributes the catalog states (its own fields where the
catalog has them, else claims found in its title, category and text) and facts read from the image, each
with its confidence. `write_description` turns the sheet into prose: catalog facts are stated, an image
fact at or above `SURE` is stated as seen in the photo, one between `MIN_FACT_CONFIDENCE` and `SURE` is
hedged ("appears to be"), a weaker one is left out, and no field name ever reaches the text. The grounding
checker (`claims.check`) finds no unsupported claim in what this writes (tested on the whole sample).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmrec_core.grounding.claims import MIN_FACT_CONFIDENCE, find_claims

SHEET_VERSION = "factsheet-v1"
SURE = 0.6  # an image fact this confident is stated plainly; below it, hedged
# OCR is sure of fragments too ("ghts" at 0.94, "20Don" at 0.87): a line is quoted only when the catalog has it or
# when it is this sure and made of whole words of four letters or more.
SURE_PRINT = 0.97
# Catalog fields that state one attribute each (H&M's names). A catalog without them falls back to the claims
# found in its title, category and text.
CATALOG_FIELDS = {
    "product": ("product_type_name",),
    "colour": ("colour_group_name",),
    "pattern": ("graphical_appearance_name",),
    "range": ("index_group_name", "garment_group_name"),
}
_PLACEHOLDERS = {"", "unknown", "other", "none", "n/a", "uploaded", "nan"}
# How an H&M graphical appearance reads as an adjective before the product ("striped top"), or after it.
_PATTERN_BEFORE = {
    "solid": "solid", "stripe": "striped", "check": "checked", "dot": "dotted", "melange": "melange",
    "denim": "denim", "jacquard": "jacquard", "lace": "lace", "sequin": "sequinned", "glittering/metallic":
    "glittering", "embroidery": "embroidered", "mesh": "mesh",
    "colour blocking": "colour-block", "metallic": "metallic", "chambray": "chambray", "argyle": "argyle",
    "slub": "slub", "hologram": "holographic", "neps": "melange", "transparent": "transparent",
}  # fmt: skip
_PATTERN_AFTER = {
    "all over pattern": "with an all-over pattern", "front print": "with a front print",
    "placement print": "with a placement print", "other pattern": "with a pattern", "application/3d":
    "with appliqués", "mixed solid/pattern": "in solid and patterned parts", "contrast": "with contrasts",
}  # fmt: skip


@dataclass(frozen=True)
class SheetFact:
    kind: str  # product | colour | pattern | material | quantity | print text | range
    phrase: str  # as it will read in prose
    confidence: float = 1.0  # catalog facts are certain; image facts carry their own
    source: str = "catalog"  # "catalog" | "image"

    @property
    def hedged(self) -> bool:
        return self.source == "image" and self.confidence < SURE


@dataclass
class FactSheet:
    title: str
    facts: list[SheetFact] = field(default_factory=list)

    def first(self, kind: str) -> SheetFact | None:
        return next((f for f in self.facts if f.kind == kind), None)

    def all(self, kind: str) -> list[SheetFact]:
        return [f for f in self.facts if f.kind == kind]

    def as_lines(self) -> list[str]:
        """The sheet for an LLM prompt: one fact per line, hedged ones marked, no field names."""
        return [f"- {f.phrase}" + (" (uncertain)" if f.hedged else "") for f in self.facts if f.kind != "range"]


def _field(attributes: dict, kind: str) -> list[str]:
    values = [str(attributes.get(column) or "").strip() for column in CATALOG_FIELDS[kind]]
    return [v for v in values if v.lower() not in _PLACEHOLDERS]


def _colour_phrase(value: str) -> str:
    words = value.lower().split()
    return " ".join(words[1:]) if len(words) > 1 and words[0] == "other" else " ".join(words)  # "Other Pink"


def _image(facts: Sequence, kind: str) -> list[tuple[str, float]]:
    found = []
    for fact in facts:
        k, value, confidence = (fact[a] if isinstance(fact, dict) else getattr(fact, a) for a in (
            "kind", "value", "confidence"))  # fmt: skip
        if k == kind and confidence >= MIN_FACT_CONFIDENCE:
            found.append((str(value), float(confidence)))
    return found


def build_sheet(title: str, category: str, text: str, attributes: dict, facts: Sequence = ()) -> FactSheet:
    """The fact sheet of one item: catalog fields first, claims in its texts next, the image's facts last."""
    sheet = FactSheet(title=title.strip())
    claims = [c for t in (title, category, text) if t for c in find_claims(t)]
    title_claims = find_claims(title) if title else []

    products = _field(attributes, "product") or ([category] if category.strip().lower() not in _PLACEHOLDERS else [])
    # the title's own word for the product, if it agrees with the catalog ("Control Top ... Tights": tights)
    product_values = {c.value for p in products for c in find_claims(p) if c.kind == "product type"}
    named = next(
        (c.text.lower() for c in title_claims if c.kind == "product type" and c.value in product_values), ""
    )
    if named or products:
        sheet.facts.append(SheetFact("product", named or products[0].lower()))
    elif seen := _image(facts, "object"):
        value, confidence = seen[0]
        sheet.facts.append(SheetFact("product", value.lower(), confidence, "image"))

    colours = _field(attributes, "colour") or [c.text for c in claims if c.kind == "colour"][:1]
    if colours:
        sheet.facts.append(SheetFact("colour", _colour_phrase(colours[0])))
    elif seen := _image(facts, "colour"):
        value, confidence = seen[0]
        sheet.facts.append(SheetFact("colour", value.lower(), confidence, "image"))

    patterns = _field(attributes, "pattern") or [c.text for c in claims if c.kind == "pattern"][:1]
    if patterns:
        sheet.facts.append(SheetFact("pattern", patterns[0].lower()))
    elif seen := _image(facts, "pattern"):
        value, confidence = seen[0]
        sheet.facts.append(SheetFact("pattern", value.lower(), confidence, "image"))

    # materials from any catalog text; numbers from the title only (a text's "light amber in 15 denier" is a variant)
    for kind, source in (("material", claims), ("quantity", title_claims)):
        seen_values: set[str] = set()
        for claim in (c for c in source if c.kind == kind and c.value not in seen_values):
            if kind == "quantity" and " " not in claim.value:
                continue  # a bare number ("Box 4") says nothing on its own
            seen_values.add(claim.value)
            sheet.facts.append(SheetFact(kind, claim.text if kind == "material" else claim.value))
    catalog = _word_runs(" ".join([title, text, *map(str, attributes.values())]))
    for value, confidence in _image(facts, "text"):
        words = value.split()
        if _squashed(value) in catalog or (confidence >= SURE_PRINT and all(len(w) >= 4 for w in words)):
            sheet.facts.append(SheetFact("print text", value.replace('"', "'"), confidence, "image"))
    sheet.facts += [SheetFact("range", value) for value in _field(attributes, "range")]
    return sheet


def _seen_pattern(pattern: SheetFact) -> str:
    """'looks striped' / 'appears striped', 'has a front print' / 'seems to have a front print'."""
    name = pattern.phrase
    if name == "solid" or name in _PATTERN_BEFORE:
        return ("appears " if pattern.hedged else "looks ") + _PATTERN_BEFORE.get(name, name)
    after = _PATTERN_AFTER.get(name) or f"with {name}"
    if after.startswith("with "):
        return ("seems to have " if pattern.hedged else "has ") + after.removeprefix("with ")
    return ("seems to be " if pattern.hedged else "is ") + after


def _squashed(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _word_runs(text: str, longest: int = 3) -> set[str]:
    """Runs of up to `longest` consecutive words, squashed: OCR's "20Denier" matches "20 denier", "ghts" nothing."""
    words = re.findall(r"[0-9a-z]+", text.lower())
    return {"".join(words[i : i + n]) for n in range(1, longest + 1) for i in range(len(words) - n + 1)}


def _quantity_phrase(value: str) -> str:
    number, _, unit = value.partition(" ")
    if unit == "den":
        return f"in {number} denier"
    if unit == "p":
        return "" if number == "1" else f"in a pack of {number}"
    return ""


def write_description(sheet: FactSheet) -> str:
    """Prose from the sheet alone: stated catalog facts, image facts as seen or hedged, nothing else."""
    product, colour, pattern = sheet.first("product"), sheet.first("colour"), sheet.first("pattern")
    sure = [f for f in (colour, pattern, product) if f and not f.hedged]
    before = [colour.phrase] if colour in sure else []
    after = []
    if pattern in sure:
        name = pattern.phrase
        if name == "solid":
            before.insert(0, "solid")  # "a solid black shirt"
        elif name in _PATTERN_BEFORE:
            before.append(_PATTERN_BEFORE[name])  # "a dark blue striped tee"
        elif _PATTERN_AFTER.get(name):
            after.append(_PATTERN_AFTER[name])
    noun = product.phrase if product in sure else "item"
    after += [p for p in (_quantity_phrase(q.phrase) for q in sheet.all("quantity")) if p]
    materials = [m.phrase.lower() for m in sheet.all("material")]
    if materials:
        after.append("made of " + _joined(materials))
    phrase = _with_article(noun, " ".join([*before, noun, *after]))
    sentences = [f"{sheet.title}: {phrase}." if sheet.title else f"{phrase[:1].upper()}{phrase[1:]}."]

    seen = []  # what the photo shows that the catalog does not say
    if product and product.source == "image":
        seen.append(("appears to be " if product.hedged else "shows ") + _with_article(product.phrase, product.phrase))
    if colour and colour.source == "image":
        seen.append(("looks mostly" if colour.hedged else "is mostly") + f" {colour.phrase}")
    if pattern and pattern.source == "image":
        seen.append(_seen_pattern(pattern))
    if seen:
        sentences.append("In the photo it " + _joined(seen) + ".")
    prints = [p for p in sheet.all("print text") if not p.hedged]
    if prints:
        sentences.append("Text in the photo reads " + _joined([f'"{p.phrase}"' for p in prints[:3]]) + ".")
    ranges = [r.phrase for r in sheet.all("range")]
    if ranges:
        rest = f" ({', '.join(ranges[1:])})" if len(ranges) > 1 else ""
        sentences.append(f"From the {ranges[0]} range{rest}.")
    return " ".join(sentences)


_PAIRS = {
    "tights",
    "trousers",
    "shorts",
    "leggings",
    "socks",
    "jeans",
    "gloves",
    "earrings",
    "sandals",
    "boots",
    "sneakers",
    "slippers",
    "pumps",
    "shoes",
    "sunglasses",
    "briefs",
    "joggers",
    "pyjamas",
    "dungarees",
}


def _with_article(noun: str, lead: str) -> str:
    """'a black top', 'an orange top', 'a pair of black tights', 'black leggings/tights'."""
    last = noun.split()[-1] if noun else ""
    if last in _PAIRS:
        return f"a pair of {lead}"
    if last.endswith("s") and not last.endswith("ss") or "/" in last:
        return lead
    return ("an " if lead[:1].lower() in "aeiou" else "a ") + lead


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
