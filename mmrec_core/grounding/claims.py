"""The grounding checker: split a text into checkable claims and mark each as supported by the catalog, by the
visual facts read from the image, or by neither.

A claim is a closed-vocabulary attribute (colour, material, pattern, product type; `vocabulary.py`), a selling
point (sustainable, affordable, luxurious, limited edition, a brand: "marketing"), a number with or without a unit
("30 den", "3p", "100%"), quoted print text, or a catalog field name leaking into prose (never supported).
Evidence is matched on canonical values, so "jumper" is supported by a catalog "Sweater", "20 denier" by a
title's "20 den", and "dark blue" by any blue (shade names are subjective; the family is the fact).
Free prose ("a relaxed fit for every day") makes no checkable claim and is not counted either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

from mmrec_core.grounding.vocabulary import (
    BROADER,
    COLOUR_FAMILY,
    COLOUR_SHADES,
    FIELD_NAMES,
    MARKETING,
    MATERIAL,
    PATTERN,
    PATTERN_OF_APPEARANCE,
    PRODUCT_TYPE,
    UNITS,
)

CHECKER_VERSION = "grounding-v2"  # v2: selling points ("marketing") are claims
MIN_FACT_CONFIDENCE = 0.2  # a visual fact weaker than this supports nothing (the describer leaves it out)


@dataclass(frozen=True)
class Claim:
    kind: str  # colour | material | pattern | product type | marketing | quantity | print text | field name
    text: str  # as written
    value: str  # canonical: the colour family, the material, "30 den", ...
    start: int
    end: int
    support: str = "unsupported"  # "catalog" | "image" | "unsupported"
    evidence: str = ""  # what supports it, or why nothing does


@dataclass
class Grounding:
    claims: list[Claim] = field(default_factory=list)
    version: str = CHECKER_VERSION

    @property
    def unsupported(self) -> list[Claim]:
        return [c for c in self.claims if c.support == "unsupported"]

    @property
    def unsupported_rate(self) -> float:
        return len(self.unsupported) / len(self.claims) if self.claims else 0.0

    def segments(self, text: str) -> list[tuple[str, Claim | None]]:
        """`text` cut into plain runs (None) and its claims, in order: what a page marks up."""
        out: list[tuple[str, Claim | None]] = []
        at = 0
        for claim in sorted(self.claims, key=lambda c: c.start):
            if claim.start < at or text[claim.start : claim.end] != claim.text:
                continue  # checked against another text: mark nothing rather than the wrong words
            out += [(text[at : claim.start], None), (claim.text, claim)]
            at = claim.end
        out.append((text[at:], None))
        return [(t, c) for t, c in out if t]

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "claims": [asdict(c) for c in self.claims]})

    @classmethod
    def from_json(cls, text: str | None) -> Grounding | None:
        if not text:
            return None
        data = json.loads(text)
        return cls([Claim(**c) for c in data["claims"]], data.get("version", CHECKER_VERSION))


# --- Finding claims -------------------------------------------------------------------------------------------

# After these words a garment noun is a modifier ("shirt collar", "cap sleeves", "tie belt"), not the product.
_MODIFIED = (
    r"(?!\s+(?:collar|sleeves?|dress|fabric|cuffs?|style|neckline|straps?|hem|shape|length|pockets?|tape|details?"
    r"|closure|lining|belt|fastening)\b)"
    r"(?!(?<=tie)\s+(?:at|around|to)\b)(?!(?<=ties)\s+(?:at|around|to)\b)"  # "ties at the sides": a fastening
)


def _alternation(forms: Iterable[str]) -> str:
    return "|".join(re.escape(f) for f in sorted(set(forms), key=len, reverse=True))


def _word_pattern(forms: Iterable[str], before: str = "", after: str = "") -> re.Pattern:
    return re.compile(rf"{before}(?<![\w-])(?:{_alternation(forms)})(?:s|es)?(?![\w-]){after}", re.IGNORECASE)


_COLOUR = re.compile(
    rf"(?<![\w-])(?:(?:{'|'.join(COLOUR_SHADES)})[\s-]+)?(?:{_alternation(COLOUR_FAMILY)})(?![\w-])", re.IGNORECASE
)
_KIND_PATTERNS = {
    "material": (_word_pattern(MATERIAL), MATERIAL),
    "marketing": (_word_pattern(MARKETING), MARKETING),
    "pattern": (_word_pattern(PATTERN), PATTERN),
    # "at the top", "on top", "the top of": a position, not a product ("the bra is padded" is one)
    "product type": (
        _word_pattern(
            PRODUCT_TYPE, before=r"(?<!\bat the )(?<!\bon the )(?<!\bon )", after=_MODIFIED + r"(?!(?<=top) of\b)"
        ),
        PRODUCT_TYPE,
    ),
}
_UNIT_FORMS = _alternation(UNITS)
_QUANTITY = re.compile(rf"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?({_UNIT_FORMS})?(?![\w%])", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“]([^\"”\n]{2,60})[\"”]")
_FIELD = re.compile(rf"(?<![\w-])(?:{_alternation(FIELD_NAMES)})", re.IGNORECASE)
_NEGATED = re.compile(r"(?<![\w-])(?:without|no|non|not)[\s-]+$", re.IGNORECASE)  # just before a claim


def _canonical(table: dict[str, str], text: str) -> str:
    word = re.sub(r"\s+", " ", text.lower())
    for candidate in (word, word[:-1], word[:-2]):  # plural s / es
        if candidate in table:
            return table[candidate]
    return word


def colour_family(text: str) -> str:
    """'Dark Blue' -> 'blue', 'navy' -> 'blue', 'Off White' -> 'white' ('' when it names no colour)."""
    words = re.sub(r"[\s-]+", " ", text.lower()).strip()
    for shade in COLOUR_SHADES:
        words = words.removeprefix(shade + " ")
    return COLOUR_FAMILY.get(words, "")


def quantity_value(number: str, unit: str | None) -> str:
    """'20', 'denier' -> '20 den'; '3', 'pack' -> '3 p'; '100', None -> '100'."""
    n = number.replace(",", ".")
    n = n.rstrip("0").rstrip(".") if "." in n else n
    u = UNITS.get((unit or "").lower(), "")
    return f"{n} {u}".strip()


def find_claims(text: str) -> list[Claim]:
    """Every checkable claim in `text`, in reading order; overlapping matches keep the longest."""
    found: list[Claim] = []
    for m in _FIELD.finditer(text):
        found.append(Claim("field name", m.group(0), m.group(0).lower(), m.start(), m.end()))
    for m in _QUOTED.finditer(text):
        found.append(Claim("print text", m.group(0), _plain(m.group(1)), m.start(), m.end()))
    for m in _COLOUR.finditer(text):
        found.append(Claim("colour", m.group(0), colour_family(m.group(0)), m.start(), m.end()))
    for kind, (pattern, table) in _KIND_PATTERNS.items():
        for m in pattern.finditer(text):
            found.append(Claim(kind, m.group(0), _canonical(table, m.group(0)), m.start(), m.end()))
    for m in _QUANTITY.finditer(text):
        found.append(Claim("quantity", m.group(0), quantity_value(m.group(1), m.group(2)), m.start(), m.end()))
    found.sort(key=lambda c: (c.start, -(c.end - c.start)))
    kept: list[Claim] = []
    for claim in found:
        if _NEGATED.search(text[max(0, claim.start - 12) : claim.start]):  # "without metal clips" claims no metal
            continue
        if not kept or claim.start >= kept[-1].end:
            kept.append(claim)
    return kept


def _plain(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


# --- Evidence -------------------------------------------------------------------------------------------------


@dataclass
class Evidence:
    """Canonical values one source supports, per claim kind."""

    values: dict[str, set[str]] = field(default_factory=dict)
    text: str = ""  # plain text, for print text and bare numbers

    def add(self, kind: str, value: str) -> None:
        if value:
            self.values.setdefault(kind, set()).add(value)

    @classmethod
    def union(cls, parts: Iterable[Evidence]) -> Evidence:
        """What any of `parts` supports (a profile's evidence: every item it summarises)."""
        merged = cls()
        texts = []
        for part in parts:
            for kind, values in part.values.items():
                merged.values.setdefault(kind, set()).update(values)
            texts.append(part.text)
        merged.text = " ".join(t for t in texts if t)
        return merged

    def supports(self, claim: Claim) -> bool:
        have = self.values.get(claim.kind, set())
        if claim.kind == "print text":
            return bool(claim.value) and claim.value in self.text
        if claim.kind == "quantity" and " " not in claim.value:  # a bare number: any mention of it
            return any(v.split(" ")[0] == claim.value for v in have)
        if claim.kind == "product type":
            return claim.value in have or bool(have & set(BROADER.get(claim.value, ())))
        return claim.value in have


def catalog_evidence(texts: Sequence[str]) -> Evidence:
    """What the catalog says: claims found in its texts (title, category, details, attribute values)."""
    evidence = Evidence(text=" ".join(_plain(t) for t in texts if t))
    for text in texts:
        if not text:
            continue
        for claim in find_claims(text):  # also each part of "Leggings/Tights": "/" separates words
            if claim.kind != "field name":
                evidence.add(claim.kind, claim.value)
        evidence.add("pattern", PATTERN_OF_APPEARANCE.get(text.strip().lower(), ""))
    return evidence


def fact_evidence(facts: Sequence, min_confidence: float = MIN_FACT_CONFIDENCE) -> Evidence:
    """What the image shows: visual facts (objects or dicts with kind, value, confidence) above `min_confidence`."""
    evidence = Evidence()
    texts = []
    for fact in facts:
        kind, value, confidence = (fact[k] if isinstance(fact, dict) else getattr(fact, k) for k in (
            "kind", "value", "confidence"))  # fmt: skip
        if confidence < min_confidence:
            continue
        if kind == "colour":
            evidence.add("colour", colour_family(value))
        elif kind == "pattern":  # a pattern read as the catalog names it ("Other pattern") or as a word
            evidence.add("pattern", PATTERN_OF_APPEARANCE.get(value.lower()) or _canonical(PATTERN, value))
            evidence.add("material", MATERIAL.get(value.lower(), ""))  # "denim" reads as both
        elif kind == "object":
            for part in re.split(r"[/,]", value.lower()):
                evidence.add("product type", PRODUCT_TYPE.get(part.strip(), ""))
        elif kind == "text":  # printed text on the product: its words, its numbers, and that it has a print
            texts.append(value)
            evidence.add("pattern", "print")
            for claim in find_claims(value):
                if claim.kind == "quantity":
                    evidence.add("quantity", claim.value)
    evidence.text = " ".join(_plain(t) for t in texts)
    return evidence


def check(text: str, catalog: Sequence[str] | Evidence = (), facts: Sequence = ()) -> Grounding:
    """Each claim of `text` marked supported by the catalog (first), by the image's facts, or unsupported."""
    known = catalog if isinstance(catalog, Evidence) else catalog_evidence(catalog)
    seen = fact_evidence(facts)
    claims = []
    for claim in find_claims(text):
        if claim.kind == "field name":
            support, why = "unsupported", "a catalog field name in prose"
        elif known.supports(claim):
            support, why = "catalog", "named by the catalog"
        elif seen.supports(claim):
            support, why = "image", "read from the image"
        else:
            support, why = "unsupported", "neither the catalog nor the image says so"
        claims.append(replace(claim, support=support, evidence=why))
    return Grounding(claims)


def unsupported_words(catalog: Evidence, facts: Sequence = ()) -> tuple[str, ...]:
    """Every vocabulary word (colour, material, pattern, product type, selling point) that would be an unsupported
    claim about this item: what a constrained writer may not say (`engines.constrained.BannedWords`)."""
    known = Evidence.union([catalog, fact_evidence(facts)])
    forms = [*COLOUR_FAMILY, *MATERIAL, *PATTERN, *PRODUCT_TYPE, *MARKETING]
    return tuple(form for form in forms if check(form, known).unsupported)


def catalog_texts(title: str, category: str, text: str, attributes: dict | None = None) -> list[str]:
    """The texts an item's catalog evidence comes from: title, category, text and every string attribute."""
    values = [str(v) for v in (attributes or {}).values() if isinstance(v, str) and v.strip()]
    return [t for t in (title, category, text, *values) if t]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def grounded_sentences(text: str, catalog: Evidence, facts: Sequence = (), min_words: int = 4) -> list[str]:
    """The sentences of `text` in which every claim is supported (field names never are); fragments dropped."""
    kept = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        complete = len(sentence.split()) >= min_words and sentence[-1:] in ".!?"
        if complete and not check(sentence, catalog, facts).unsupported:
            kept.append(sentence)
    return kept
