"""Stage 4's prompts: the LLM recommender (MLLM-MSR / MMSRARec yes-no scoring, MLLMRec-R1 listwise reasoning).

A prompt is context sections (profile, recent history, similar customers) then the candidate(s) LAST,
so the context is a prefix shared by every candidate; `recommend.prompt` assembles and trims them.
Every text is a template over the catalog's domain (`core.prompts.Domain`); one version covers all.
"""

from __future__ import annotations

from mmrec_core.core.prompts import Domain

REC_VERSION = "rec-v2"
REC_SYSTEM = "You are a {name} recommender. You judge from a customer's history whether they will {buy} an item."
REC_PROFILE = "Customer profile: {profile}\n\n"
REC_HISTORY = "Their last {history}, oldest first:\n{items}\n\n"
REC_SIMILAR = "What customers with similar taste {bought} next:\n{items}\n\n"
REC_POINTWISE = "Candidate item: {candidate}\nWill this customer {buy} the candidate item? Answer Yes or No."
REC_LISTWISE = (
    "Candidate items:\n{candidates}\n\n"
    "Which candidate will this customer {buy} next? First give your reasons inside <think></think>, "
    "then the candidate's number inside <answer></answer>, for example <think>...</think><answer>3</answer>."
)
REC_EXPLAIN = (
    "Candidate item: {candidate}\n"
    "In one or two sentences, say why this customer would or would not {buy} the candidate item, "
    "naming only attributes the item really has."
)
REC_EXPLAIN_EVIDENCE = (
    "Candidate item: {candidate}\n"
    "What supports it: {evidence}\n"
    "In one or two sentences, say why this customer would or would not {buy} the candidate item. Cite one of "
    "the supporting facts above and name only attributes the item really has."
)


def rec_text(template: str, domain: Domain, **fields: str) -> str:
    """One of the templates above for this domain."""
    return template.format(**domain.fields(), **fields)
