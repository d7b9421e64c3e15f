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

# Stage 2: recurrent preference summarization (MLLM-MSR). Block 1 starts the summary; later blocks update it.
PROFILE_FIRST = Template(
    version="profile-v1",
    system="You summarise a shopper's preferences for a fashion recommender. Be specific and brief.",
    text=(
        "A customer bought these items, oldest first:\n{items}\n\n"
        "In two sentences, describe this customer's preferences: product types, colours, materials, styles."
    ),
)
PROFILE_UPDATE = Template(
    version="profile-v1",
    system=PROFILE_FIRST.system,
    text=(
        "What we know about the customer so far:\n{summary}\n\nThen they bought:\n{items}\n\n"
        "Update the description of the customer's preferences in two sentences: keep what still holds, "
        "add what is new."
    ),
)
