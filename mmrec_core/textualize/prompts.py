"""Stage 1's prompts: keywords from an item's source text, and the reconstruction behind R_recon."""

from __future__ import annotations

from mmrec_core.core.prompts import PRODUCT, Domain, Template
from mmrec_core.core.safe_text import tokens_broken

KEYWORDS = Template(
    version="keywords-v3",
    system="You write compact {item} keywords for a {name} catalog.",
    text="List keywords for this {item} ({keyword_aspects}), comma separated:\n{source}",
)


def keyword_chat(source: str, domain: Domain = PRODUCT) -> list[dict]:
    """The keyword request as a chat: the domain's worked example first (small models follow a shown format
    far better than a described one), then this item's source text."""
    example_source, example_answer = domain.example
    return [
        {"role": "user", "content": KEYWORDS.format(domain, source=example_source)},
        {"role": "assistant", "content": example_answer},
        {"role": "user", "content": KEYWORDS.format(domain, source=tokens_broken(source))},
    ]


# R_recon: how well the LLM rebuilds the source text from the keywords alone.
RECONSTRUCT = Template(
    version="recon-v2",
    text="{Item} keywords: {keywords}\nWrite the catalog text of this {item}.",
)
