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

# Stage 4: the LLM recommender (MLLM-MSR / MMSRARec yes-no scoring, MLLMRec-R1 listwise reasoning).
# A prompt is context sections (profile, recent purchases, similar customers) then the candidate(s) LAST,
# so the context is a prefix shared by every candidate. `recommend_prompt.py` assembles and trims them.
REC_VERSION = "rec-v1"
REC_SYSTEM = "You are a fashion recommender. You judge from a customer's history whether they will buy an item."
REC_PROFILE = "Customer profile: {profile}\n\n"
REC_HISTORY = "Their last purchases, oldest first:\n{items}\n\n"
REC_SIMILAR = "What customers with similar taste bought next:\n{items}\n\n"
REC_POINTWISE = "Candidate item: {candidate}\nWill this customer buy the candidate item? Answer Yes or No."
REC_LISTWISE = (
    "Candidate items:\n{candidates}\n\n"
    "Which candidate will this customer buy next? First give your reasons inside <think></think>, "
    "then the candidate's number inside <answer></answer>, for example <think>...</think><answer>3</answer>."
)
REC_EXPLAIN = (
    "Candidate item: {candidate}\n"
    "In one or two sentences, say why this customer would or would not buy the candidate item, "
    "naming only attributes the item really has."
)
