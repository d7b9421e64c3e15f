"""Evidence for a recommendation, computed WITHOUT the LLM, to read beside the model's rationale.

For a candidate item and a customer: which of the item's keywords the profile mentions and which
recur in the customer's purchases; which of its item-graph neighbours the customer bought; which
similar customers (the prompt's) bought it or a neighbour. And a check of the rationale itself, by the
grounding checker: a sentence about the item that names a colour, material, pattern, product type or
number the item's own texts (title, catalog text, description, keywords) do not support is flagged.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

import pandas as pd

from mmrec_core.graph.build import latest_graph_id, load_graph
from mmrec_core.grounding.claims import Evidence as ClaimEvidence
from mmrec_core.grounding.claims import Grounding, catalog_evidence, check
from mmrec_core.recommend.context import ContextBuilder, UserContext
from mmrec_core.textualize.keywords import contains_term
from mmrec_core.textualize.texts import fused_item_texts

# Words that can end up as "keywords" of a weak summarizer and would match any profile.
_STOPWORDS = {"and", "the", "with", "for", "of", "in", "a", "an", "or", "to", "is", "it", "this", "that", "item"}
# A sentence with one of these words talks about the customer, where naming their tastes is fine.
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_ABOUT_CUSTOMER = re.compile(
    r"\b(customer|shopper|they|their|them|he|she|his|her|prefers?|preferences?|likes?|loves?|bought|history)\b",
    re.I,
)


@dataclass
class Evidence:
    item_id: str
    bought_before: bool = False  # a repeat purchase candidate
    profile_matches: list[str] = field(default_factory=list)  # item keywords the profile mentions
    history_matches: list[tuple[str, int]] = field(default_factory=list)  # (keyword, purchases sharing it)
    neighbours_bought: list[tuple[str, float, str]] = field(default_factory=list)  # (item, weight, reason)
    similar_bought: list[tuple[str, str]] = field(default_factory=list)  # (similar customer, item they bought)

    def lines(self, titles: dict[str, str]) -> list[str]:
        """Readable evidence, one statement per line (for the app)."""
        name = lambda i: f"{titles.get(i, i)} ({i})"  # noqa: E731
        out = ["The customer bought this item before."] if self.bought_before else []
        if self.profile_matches:
            out.append("Profile mentions: " + ", ".join(self.profile_matches))
        if self.history_matches:
            out.append("Shares with past purchases: " + ", ".join(f"{k} ({n}x)" for k, n in self.history_matches))
        out += [f"Graph neighbour bought: {name(i)} · {r}, weight {w:.2f}" for i, w, r in self.neighbours_bought[:5]]
        out += [f"Similar customer {u[:10]}… bought {name(i)}" for u, i in self.similar_bought[:5]]
        return out or ["No supporting evidence in the profile, the purchases, the graph or similar customers."]

    def for_prompt(self, titles: dict[str, str], most: int = 3) -> str:
        """The strongest few facts, short, for the rationale prompt to cite ('' when there are none)."""
        facts = ["the customer bought this item before"] if self.bought_before else []
        if self.history_matches:
            shared = ", ".join(k for k, _ in self.history_matches[:3])
            facts.append(f"it shares {shared} with the customer's past purchases")
        facts += [f"the customer bought its neighbour {titles.get(i, i)}" for i, _, _ in self.neighbours_bought[:2]]
        facts += [f"a similar customer bought {titles.get(i, i)}" for _, i in self.similar_bought[:2]]
        if self.profile_matches:
            facts.append("the profile mentions " + ", ".join(self.profile_matches[:3]))
        return "; ".join(facts[:most])

    def cited_by(self, rationale: str, titles: dict[str, str]) -> list[str]:
        """The pieces of this evidence that `rationale` names (a shared keyword, a bought neighbour's or a similar
        customer's item title, a repeat purchase): what makes a rationale verifiable."""
        text = rationale.lower()
        cited = [f"keyword '{k}'" for k, _ in self.history_matches if contains_term(text, k.lower())]
        cited += [f"keyword '{k}' (profile)" for k in self.profile_matches
                  if contains_term(text, k.lower()) and f"keyword '{k}'" not in cited]  # fmt: skip
        items = [i for i, _, _ in self.neighbours_bought] + [i for _, i in self.similar_bought]
        cited += [f"item '{titles[i]}'" for i in dict.fromkeys(items) if titles.get(i) and titles[i].lower() in text]
        if self.bought_before and re.search(r"\b(before|again|already)\b", text):
            cited.append("a repeat purchase")
        return cited

    def summary(self) -> str:
        """One line for tables and the command line."""
        parts = []
        if self.bought_before:
            parts.append("bought before")
        if self.profile_matches:
            parts.append("profile: " + ", ".join(self.profile_matches))
        if self.history_matches:
            parts.append("history: " + ", ".join(f"{k} x{n}" for k, n in self.history_matches[:4]))
        if self.neighbours_bought:
            parts.append(f"{len(self.neighbours_bought)} graph neighbour(s) bought")
        if self.similar_bought:
            parts.append(f"{len({u for u, _ in self.similar_bought})} similar customer(s) bought it or a neighbour")
        return "; ".join(parts) or "no supporting evidence"


class EvidenceFinder:
    """Item texts, graph and purchase sequences of one protocol, loaded once."""

    def __init__(self, builder: ContextBuilder) -> None:
        self.builder = builder
        store, dataset = builder.ws.store, builder.dataset
        self.item_texts = {i: t.lower() for i, t in fused_item_texts(store, dataset).items()}
        self._evidence: dict[str, ClaimEvidence] = {}  # per item, built when first needed
        self._customer: tuple[tuple, ClaimEvidence] | None = None
        self.graph_id = latest_graph_id(store, dataset, builder.protocol_id)
        columns = ["src", "dst", "weight", "reason"]
        edges = load_graph(store, dataset, self.graph_id) if self.graph_id else pd.DataFrame(columns=columns)
        both = pd.concat(
            [edges[columns], edges[columns].rename(columns={"src": "dst", "dst": "src"})],
            ignore_index=True,
        )
        self.neighbours = {
            src: list(zip(g["dst"], g["weight"], g["reason"], strict=True)) for src, g in both.groupby("src")
        }

    def for_item(self, ctx: UserContext, item_id: str) -> Evidence:
        line = self.builder.line(item_id)
        bought = set(ctx.bought)
        ev = Evidence(item_id, bought_before=item_id in bought)
        profile = ctx.profile.lower()
        useful = [k for k in line.keywords if k.lower() not in _STOPWORDS and len(k) > 2]
        ev.profile_matches = [k for k in useful if profile and contains_term(profile, k.lower())]
        counts = Counter(k for i in ctx.bought for k in set(self.builder.line(i).keywords))
        ev.history_matches = sorted(((k, counts[k]) for k in useful if counts[k]), key=lambda kv: -kv[1])
        near = sorted(self.neighbours.get(item_id, []), key=lambda n: -n[1])
        ev.neighbours_bought = [(i, float(w), r) for i, w, r in near if i in bought]
        near_ids = {i for i, _, _ in near}
        ids = self.builder.data.item_ids
        for s in ctx.similar:
            theirs = {ids[i] for i in self.builder.data.sequences.get(s.similar_user, [])}
            ev.similar_bought += [(s.similar_user, i) for i in sorted(theirs & ({item_id} | near_ids))]
        return ev

    def rationale_grounding(self, rationale: str, item_id: str, ctx: UserContext) -> Grounding:
        """The rationale's claims, checked by the grounding checker (see module docstring): a sentence about the
        item may say what the item's own texts support; one about the customer also what their profile,
        purchases and the similar customers' purchases support (every item's texts)."""
        if item_id not in self._evidence:
            self._evidence[item_id] = catalog_evidence([self.item_texts.get(item_id, "")])
        own = self._evidence[item_id]
        customer = self._customer_evidence(ctx)
        claims = []
        for found in _SENTENCE.finditer(rationale):
            sentence = found.group(0)
            about_customer = _ABOUT_CUSTOMER.search(sentence) is not None
            evidence = ClaimEvidence.union([own, customer]) if about_customer else own
            for claim in check(sentence, evidence).claims:  # offsets moved from the sentence into the rationale
                claims.append(replace(claim, start=claim.start + found.start(), end=claim.end + found.start()))
        return Grounding(claims)

    def _customer_evidence(self, ctx: UserContext) -> ClaimEvidence:
        """What a sentence about the customer may say: their profile and the texts of everything they and the
        prompt's similar customers bought (kept for the last customer asked about)."""
        key = (ctx.user_id, len(ctx.bought), ctx.profile)
        if self._customer is None or self._customer[0] != key:
            ids, sequences = self.builder.data.item_ids, self.builder.data.sequences
            theirs = [ids[i] for s in ctx.similar for i in sequences.get(s.similar_user, [])]
            texts = [ctx.profile, *(s.text() for s in ctx.similar)]
            texts += [self.item_texts.get(i, "") for i in dict.fromkeys([*ctx.bought, *theirs])]
            self._customer = (key, catalog_evidence(texts))
        return self._customer[1]

    def rationale_flags(self, rationale: str, item_id: str, ctx: UserContext) -> list[str]:
        """The unsupported claims of the rationale, as written (each once)."""
        return unsupported_texts(self.rationale_grounding(rationale, item_id, ctx))


def unsupported_texts(grounding: Grounding) -> list[str]:
    """The unsupported claims of a checked text, as written, lower-cased, each once (a rationale's flags)."""
    return list(dict.fromkeys(c.text.lower() for c in grounding.unsupported))
