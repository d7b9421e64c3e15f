"""Versioned prompt templates of the pipeline stages (engine-internal describe prompts live in engines/).

Change a template's wording, bump its version: stored outputs record the version, so a re-run knows
they are stale and old and new results can be compared side by side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    version: str
    text: str
    system: str | None = None

    def format(self, **fields: str) -> str:
        return self.text.format(**fields)


KEYWORDS = Template(
    version="keywords-v2",
    system="You write compact product keywords for a fashion catalog.",
    text="List keywords for this product (style, colour, material, category, pattern, use), comma separated:\n{source}",
)
# One worked example, given as an earlier chat turn: small models follow a shown format far better than a described one.
KEYWORDS_EXAMPLE = (
    "Basic jersey top. A fitted top in soft organic cotton jersey with short sleeves. Colour: white. Pattern: solid.",
    "top, white, organic cotton, jersey, fitted, short sleeves, solid, basic, everyday",
)


def keyword_chat(source: str) -> list[dict]:
    """The keyword request as a chat: the worked example first, then this item's source text."""
    example_source, example_answer = KEYWORDS_EXAMPLE
    return [
        {"role": "user", "content": KEYWORDS.format(source=example_source)},
        {"role": "assistant", "content": example_answer},
        {"role": "user", "content": KEYWORDS.format(source=source)},
    ]


# R_recon: how well the LLM rebuilds the source text from the keywords alone.
RECONSTRUCT = Template(
    version="recon-v1",
    text="Product keywords: {keywords}\nWrite the catalog text of this product.",
)
