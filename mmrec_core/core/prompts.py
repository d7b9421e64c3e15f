"""Versioned prompt templates, and the catalog's domain that their wording names.

A stage's templates live in its package (`textualize.prompts`, `profiles.prompts`,
`recommend.prompts`; the describe prompt in `engines.base`). Change a template's wording, bump its
version: stored outputs record the version, so a re-run knows they are stale and old and new
results can be compared side by side.

The domain comes from the data set's format (`domain_for`): H&M is fashion, MovieLens films,
MicroLens videos, anything else a neutral product catalog. Templates name it through fields such as
`{name}` ("a fashion catalog"), `{buy}` / `{bought}` and `{aspects}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Domain:
    """How prompts speak of one kind of catalog."""

    name: str  # "a {name} catalog", "a {name} recommender"
    item: str  # what one item is: product, film, video
    customer: str  # who the history belongs to: shopper, viewer
    buy: str  # the interaction, present: buy, watch
    bought: str  # ... and past: bought, watched
    history: str  # "their last {history}": purchases, films watched
    aspects: str  # what a preference summary names
    keyword_aspects: str  # what an item's keywords cover
    example: tuple[str, str]  # one worked keyword example: (source text, keywords taken from it)

    def fields(self) -> dict[str, str]:
        values = {k: v for k, v in asdict(self).items() if k != "example"}
        return values | {"Item": self.item.capitalize()}


FASHION = Domain(
    "fashion",
    "product",
    "shopper",
    "buy",
    "bought",
    "purchases",
    "product types, colours, materials, styles",
    "style, colour, material, category, pattern, use",
    (
        "Basic jersey top. A fitted top in soft organic cotton jersey with short sleeves. Colour: white. "
        "Pattern: solid.",
        "top, white, organic cotton, jersey, fitted, short sleeves, solid, basic",  # only words of the source
    ),
)
FILM = Domain(
    "film",
    "film",
    "viewer",
    "watch",
    "watched",
    "films watched",
    "genres, themes, eras, moods",
    "genre, theme, era, mood, setting",
    (
        "Heat (1995). A master thief and a detective face off in a crime thriller set in Los Angeles. "
        "Genres: Action, Crime, Thriller.",
        "crime, thriller, action, thief, detective, los angeles, 1995",
    ),
)
VIDEO = Domain(
    "video",
    "video",
    "viewer",
    "watch",
    "watched",
    "videos watched",
    "topics, formats, moods, audiences",
    "topic, format, mood, audience",
    ("Easy 10-minute home workout for beginners, no equipment needed", "workout, home, beginners, 10-minute, easy"),
)
PRODUCT = Domain(
    "product",
    "product",
    "customer",
    "buy",
    "bought",
    "purchases",
    "product types, features, materials, uses",
    "type, feature, material, colour, use",
    (
        "Stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours.",
        "water bottle, stainless steel, 750 ml, drinks, cold, 24 hours",
    ),
)
DOMAINS = {"hm": FASHION, "movielens": FILM, "microlens": VIDEO}  # by data set format; others: PRODUCT


def domain_for(dataset_format: str | None) -> Domain:
    """The domain of a data set from its format (`datasets.format`): the neutral PRODUCT when unknown."""
    return DOMAINS.get(dataset_format or "", PRODUCT)


@dataclass(frozen=True)
class Template:
    version: str
    text: str
    system: str | None = None

    def format(self, domain: Domain = PRODUCT, **fields: str) -> str:
        return self.text.format(**domain.fields(), **fields)

    def system_for(self, domain: Domain = PRODUCT) -> str | None:
        return None if self.system is None else self.system.format(**domain.fields())
