"""The rationale a merchandiser reads: the LLM's sentences that invent nothing, and one verified citation.

The LLM explains a top candidate (`LLMRecommender.explain`), asked to cite the evidence found without it.
A small model often cites none of it or names an attribute the item lacks, so before a rationale is shown:
- a sentence with a claim the grounding checker cannot support (`EvidenceFinder.rationale_grounding`) is
  dropped;
- when what is left cites none of the evidence (`Evidence.cited_by`) and there is some, one sentence stating
  the strongest verified piece is added (`evidence_sentence`).
What the LLM wrote is kept beside it (`Rationale.raw`) and each change is named (`Rationale.notes`), so the
page shows what was removed and what was added, and the evaluation reports the LLM alone as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmrec_core.recommend.context import UserContext
from mmrec_core.recommend.evidence import Evidence, EvidenceFinder

NO_EVIDENCE = "Nothing found without the LLM supports this item; its rank rests on the model's score alone."
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


@dataclass
class Rationale:
    text: str  # what is shown
    raw: str  # what the LLM wrote
    dropped: list[str] = field(default_factory=list)  # its sentences with unsupported claims
    added: str = ""  # the evidence sentence added ('' when the LLM's own text cites evidence)

    def notes(self) -> list[str]:
        """What was changed, for the page and the CLI ([] when the LLM's text is shown as written)."""
        out = [f"removed (unsupported claims): {s}" for s in self.dropped]
        if self.added:
            out.append("added from the evidence: the LLM's text cites none of it")
        return out


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def evidence_sentence(ev: Evidence, titles: dict[str, str]) -> str:
    """One sentence stating the strongest verified piece of `ev` ('' when there is none), worded so that
    `Evidence.cited_by` recognises it: a repeat purchase, shared keywords, a bought graph neighbour, a
    similar customer's purchase, the profile's words, in that order."""
    if ev.bought_before:
        return "They bought this item before."
    if ev.history_matches:
        return f"It shares {_and([k for k, _ in ev.history_matches[:3]])} with their past purchases."
    for item, _, _ in ev.neighbours_bought:
        if titles.get(item):
            return f"They bought {titles[item]}, which the item graph links to it."
    for _, item in ev.similar_bought:
        if titles.get(item):
            link = "" if item == ev.item_id else ", which the item graph links to it"
            return f"A customer with similar taste bought {titles[item]}{link}."
    if ev.profile_matches:
        return f"Their profile mentions {_and(ev.profile_matches[:3])}."
    return ""


def settle(finder: EvidenceFinder, raw: str, ev: Evidence, ctx: UserContext) -> Rationale:
    """The rationale to show for `raw`, written about `ev.item_id` with the evidence `ev` (see module docstring)."""
    titles = finder.builder.titles
    kept, dropped = [], []
    for found in _SENTENCE.finditer(" ".join(raw.split())):
        sentence = found.group(0).strip()
        if not sentence:
            continue
        bad = finder.rationale_grounding(sentence, ev.item_id, ctx).unsupported
        (dropped if bad else kept).append(sentence)
    text = " ".join(kept)
    added = "" if ev.cited_by(text, titles) else evidence_sentence(ev, titles)
    text = " ".join(t for t in (text, added) if t) or NO_EVIDENCE
    return Rationale(text, raw, dropped, added)
