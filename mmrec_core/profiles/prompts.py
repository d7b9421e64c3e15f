"""Stage 2's prompts: recurrent preference summarization (MLLM-MSR). Block 1 starts the summary; later
blocks update it."""

from __future__ import annotations

from mmrec_core.core.prompts import Template

PROFILE_FIRST = Template(
    version="profile-v4",
    system="You summarise a {customer}'s preferences for a {name} recommender. Be specific and brief.",
    text=(
        "A customer {bought} these items, oldest first:\n{items}\n\n"
        "In two sentences, describe this customer's preferences: {aspects}."
    ),
)
PROFILE_UPDATE = Template(
    version="profile-v4",
    system=PROFILE_FIRST.system,
    text=(
        "What we know about the customer so far:\n{summary}\n\nThen they {bought}:\n{items}\n\n"
        "Update the description of the customer's preferences in two sentences: keep what still holds, "
        "add what is new."
    ),
)
# A summary that named too little of what recurs (or read like another customer's) is written again with it.
PROFILE_SCAFFOLD = Template(
    version="profile-v4",
    system=PROFILE_FIRST.system,
    text="{prompt}\n\nName what recurs in their {history}: {terms}.",
)
