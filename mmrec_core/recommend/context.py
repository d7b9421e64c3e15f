"""What the LLM recommender is told about a customer: profile, recent purchases, similar customers.

All of it comes from TRAINING interactions (for the test part the valid item is known too, as for
every other model: `models.data`). The profile is the stored final summary when its block chain
still covers the training history; similar customers come from the newest trained SASRec
(`similar_users`); either may be missing, and the context says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmrec_core.core.prompts import PRODUCT, Domain, domain_for
from mmrec_core.core.safe_text import prompt_text
from mmrec_core.models.data import TrainData, load_train_data
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.texts import ITEM_TEXTS, item_details, item_keywords


@dataclass
class ItemLine:
    """One item as the prompt shows it: title and keywords."""

    item_id: str
    title: str
    keywords: list[str]
    detail: str = field(default="", kw_only=True)  # prose shown instead of the keywords (`item_text` ablations)

    def text(self, max_keywords: int = 8, clean: Callable[[str], str] = prompt_text) -> str:
        """The line a prompt shows; title and keywords are catalog data, so each passes `clean` (control tokens
        broken, line breaks folded: `core.safe_text`), which leaves ordinary text as it is."""
        words = clean(self.detail) if self.detail else ", ".join(clean(k) for k in self.keywords[:max_keywords])
        title = clean(self.title)
        return f"{title}: {words}" if words else title


@dataclass
class SimilarLine(ItemLine):
    """The item a similar customer bought next (MMSRARec), with who and how similar."""

    similar_user: str = ""
    cosine: float = 0.0


@dataclass
class UserContext:
    user_id: str
    profile: str  # '' when the user has no (current) profile
    history: list[ItemLine]  # the last n purchases, oldest first
    similar: list[SimilarLine]  # most similar customer first
    bought: list[str] = field(default_factory=list)  # every item id of the model input history
    notes: list[str] = field(default_factory=list)  # why a section is missing
    domain: Domain = PRODUCT  # how the prompts name the catalog (from the data set's format)


class ContextBuilder:
    """Loads a protocol's data once, then hands out contexts for many users quickly.

    `profile=False` leaves the profile out and `item_text` picks how items are shown (`textualize.texts.ITEM_TEXTS`):
    the ablations the papers report, as settings of `RecommendConfig`.
    """

    def __init__(
        self,
        ws: Workspace,
        dataset: str,
        protocol_id: str,
        part: str = "test",
        n_history: int = 5,
        n_similar: int = 3,
        data: TrainData | None = None,
        *,
        profile: bool = True,
        item_text: str = "keywords",
    ) -> None:
        if part not in ("valid", "test"):
            raise ValueError(f"part must be 'valid' or 'test', not '{part}'.")
        if item_text not in ITEM_TEXTS:
            raise ValueError(f"item_text must be one of {', '.join(ITEM_TEXTS)}, not '{item_text}'.")
        self.ws, self.dataset, self.protocol_id, self.part = ws, dataset, protocol_id, part
        self.n_history, self.n_similar = n_history, n_similar
        self.use_profile, self.item_text = profile, item_text
        self.data = data or load_train_data(ws.store, dataset, protocol_id)
        self.domain = domain_for(ws.store.require_dataset(dataset)["format"])
        items = ws.store.items(dataset).set_index("item_id")
        self.titles = {i: str(t or i) for i, t in items["title"].items()}
        self.categories = {i: str(c or "") for i, c in items["category"].items()}
        self.keywords = item_keywords(ws.store, dataset, images=item_text != "catalog-keywords")
        self.details = item_details(ws.store, dataset, item_text) if item_text in ("description", "catalog") else {}
        cand = self.data.parts[part]
        self.inputs = dict(zip(cand.users, cand.histories, strict=True))  # test part: training + valid item
        self._rows = {u: r for r, u in enumerate(cand.users)}
        self.chains = self._current_chains()  # for `context(user, cut)`: the summary before a target
        self.profiles = {user: steps[-1][1] for user, steps in self.chains.items()}  # the final summaries
        # the sequential model similar customers come from: the trained one best on valid
        self.sasrec, self.sasrec_run, self.sasrec_method, self.similar_note = None, None, "", ""
        if n_similar > 0:
            from mmrec_core.models.registry import load_strongest_sequential

            try:
                self.sasrec, self.sasrec_run, self.sasrec_method = load_strongest_sequential(ws, dataset, protocol_id)
            except KeyError as exc:
                self.similar_note = str(exc.args[0])
        self._similar_cache: dict[tuple[str, int | None], list[SimilarLine]] = {}

    def _current_chains(self) -> dict[str, list[tuple[int, str]]]:
        """Per user, the stored block chain as (training items covered so far, summary) steps, kept only
        when it still covers exactly the user's training sequence (else the profile is stale)."""
        chains = self.ws.store.profile_blocks(self.dataset, self.protocol_id)
        ids = self.data.item_ids
        out: dict[str, list[tuple[int, str]]] = {}
        for user, chain in chains.groupby("user_id", sort=False):
            covered = [i for block in chain["item_ids"] for i in block]
            if covered == [ids[i] for i in self.data.sequences.get(user, [])]:
                ends = np.cumsum([len(block) for block in chain["item_ids"]])
                out[user] = list(zip(ends.tolist(), chain["summary"].astype(str), strict=True))
        return out

    @classmethod
    def for_config(
        cls, ws: Workspace, dataset: str, protocol_id: str, config, part: str = "test", data: TrainData | None = None
    ) -> ContextBuilder:
        """The builder a `RecommendConfig` asks for (history and similar-customer counts, profile, item text)."""
        return cls(ws, dataset, protocol_id, part, config.n_history, config.n_similar, data,
                   profile=config.profile, item_text=config.item_text)  # fmt: skip

    def line(self, item_id: str) -> ItemLine:
        # newest keywords; the category for an item not textualized yet (textualize.texts.item_keywords)
        title, keywords = self.titles.get(item_id, item_id), list(self.keywords.get(item_id, []))
        detail = self.details.get(item_id, "")  # an item with no description keeps its keywords
        return ItemLine(item_id, title, [] if detail else keywords, detail=detail)

    def candidates(self, user: str) -> list[str]:
        """The protocol's stored candidates of an evaluated `user` for this part, positive first."""
        return [str(self.data.item_ids[i]) for i in self.data.parts[self.part].items[self._rows[user]]]

    def input_history(self, user: str) -> list[str]:
        """Item ids the model may see for `user`, oldest first (training, plus valid for the test part)."""
        if user in self.inputs:
            seq = self.inputs[user]
        elif user in self.data.sequences:  # a customer outside the evaluated users: training items only
            seq = self.data.sequences[user]
        else:
            raise KeyError(
                f"Unknown customer '{user}': no training history in {self.protocol_id}. Pick one from the list."
            )
        return [self.data.item_ids[i] for i in seq]

    def prepare_similar(self, users: list[str], cuts: dict[str, int] | None = None) -> None:
        """Compute similar customers for many users in one pass (cached); `cuts` as in `context`."""
        cuts = cuts or {}
        todo = [u for u in users if (u, cuts.get(u)) not in self._similar_cache and u in self.data.sequences]
        if self.sasrec is None or not todo:
            return
        from mmrec_core.models.similar_users import similar_user_context

        queries = {u: self.data.sequences[u][: cuts[u]] for u in todo if u in cuts}
        table = similar_user_context(self.sasrec, self.data, todo, self.n_similar, queries)
        for user in todo:
            self._similar_cache[(user, cuts.get(user))] = []
        for row in table.itertuples():
            base = self.line(row.next_item)
            self._similar_cache[(row.user_id, cuts.get(row.user_id))].append(
                SimilarLine(
                    base.item_id, base.title, base.keywords, row.similar_user, float(row.cosine), detail=base.detail
                )
            )

    def _similar(self, user: str, cut: int | None) -> list[SimilarLine]:
        if self.sasrec is None or self.n_similar == 0:
            return []
        self.prepare_similar([user], {user: cut} if cut is not None else None)
        return self._similar_cache.get((user, cut), [])

    def context(self, user: str, cut: int | None = None) -> UserContext:
        """What the model is told about `user`; with `cut`, as if only their first `cut` training items existed.

        A cut context (a training example whose target is training item `cut`) takes the summary of the
        last profile block that ends before the target and similar customers found from that prefix.
        """
        if cut is not None:
            return self._cut_context(user, cut)
        bought = self.input_history(user)
        notes = []
        profile = self.profiles.get(user, "") if self.use_profile else ""
        if not self.use_profile:
            notes.append("profile left out (the profile setting is off)")
        elif not profile:
            notes.append("no current profile (build profiles for this protocol)")
        similar: list[SimilarLine] = []
        if self.n_similar > 0:
            if self.sasrec is None:
                notes.append(f"no similar customers: {self.similar_note}")
            else:
                similar = self._similar(user, None)
        history = [self.line(i) for i in bought[-self.n_history :]] if self.n_history > 0 else []
        return UserContext(user, profile, history, similar, bought, notes, self.domain)

    def _cut_context(self, user: str, cut: int) -> UserContext:
        seq = self.data.sequences.get(user, [])
        if not 1 <= cut < len(seq) + 1:
            raise ValueError(f"cut must be within 1..{len(seq)} for '{user}'.")
        bought = [str(self.data.item_ids[i]) for i in seq[:cut]]
        chain = self.chains.get(user, []) if self.use_profile else []
        profile = next((text for end, text in reversed(chain) if end <= cut), "")
        similar = self._similar(user, cut)
        history = [self.line(i) for i in bought[-self.n_history :]] if self.n_history > 0 else []
        return UserContext(user, profile, history, similar, bought, [], self.domain)

    def provenance(self) -> dict:
        return {
            "part": self.part,
            "n_history": self.n_history,
            "n_similar": self.n_similar,
            "sasrec_run": self.sasrec_run,  # the run of `similar_model` (the key predates content-SASRec)
            **({"similar_model": self.sasrec_method} if self.sasrec_method not in ("", "sasrec") else {}),
            "profiles": len(self.profiles),
            "domain": self.domain.name,
            # the ablations, only when set: a run without one keeps the provenance (and stored scores) it had
            **({} if self.use_profile else {"profile": False}),
            **({} if self.item_text == "keywords" else {"item_text": self.item_text}),
        }
