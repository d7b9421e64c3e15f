"""What moves the LLM's score: each piece of context left out in turn, the yes/no scores recomputed.

A customer's prompt is a shared context (profile sentences, the last purchases, similar customers' next
items) followed by one yes/no question per candidate (`recommend.prompt`). Leaving out one context piece
changes the prefix only, so each such ablation costs one prefix pass plus one batch of candidates through
the shared-prefix scorer (`Engine.score_yes_no`), and gives every candidate's score without that piece.
A candidate's own keywords are split into those its catalog text names and those textualization read from
its picture ("image keywords"); leaving either out changes that candidate's question only, so all
candidates' variants go in one more batch behind the full prefix.

The effect of a piece on a candidate is score - score_without (positive: the piece pushes it up), with the
candidate's rank among the customer's candidates with and without it. Attributions are stored with their
provenance and an input hash (prompts, engine, model), so asking again for the same inputs reads them back.
Counterfactual scores are the model's own, not a claim about causes in the world; a piece whose removal
changes nothing may still be cited by a rationale (`explain.faithfulness` measures that).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance
from mmrec_core.recommend.context import ItemLine, UserContext
from mmrec_core.recommend.llm import LLMRecommender
from mmrec_core.recommend.prompt import RecPrompt, context_text, pointwise_suffix, profile_sentences
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.texts import catalog_entries, split_keywords

ATTRIBUTION_VERSION = "attribution-v1"
CONTEXT_KINDS = ("purchase", "similar customer", "profile sentence")
KEYWORD_KINDS = ("image keywords", "catalog keywords")
_NOT_SCORING = ("mode", "explain_top", "max_new_tokens", "constrained", "answer_constraint", "seed")


@dataclass(frozen=True)
class Piece:
    """One piece of what the prompt showed. `index` places it in the (trimmed) context."""

    kind: str  # one of CONTEXT_KINDS or KEYWORD_KINDS
    key: str  # the purchase's or similar customer's item id, the sentence number, the candidate's id
    text: str  # as the prompt shows it
    index: int = 0


@dataclass
class Ablation:
    """The prompt without one piece: `prefix + suffixes[i]` asks about candidate `order[i]`."""

    piece: Piece | None  # None: the full prompt
    prefix: str
    suffixes: list[str]
    order: list[str]


@dataclass
class Attribution:
    """One customer's candidates, each with the effect of every piece of context on its score."""

    user_id: str
    scores: dict[str, float]  # candidate -> score with the full prompt
    table: pd.DataFrame  # item_id, piece_kind, piece_key, piece_text, score, score_without, rank, rank_without
    provenance: Provenance
    key: str  # the input hash it is stored under
    seconds: float = 0.0
    stored: bool = False  # read back from the store rather than computed

    def for_item(self, item: str) -> pd.DataFrame:
        """One candidate's pieces, largest effect first, with an `effect` column (score - score_without)."""
        rows = self.table[self.table["item_id"] == item].copy()
        rows["effect"] = rows["score"] - rows["score_without"]
        return rows.reindex(rows["effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def rank_of(score: float, others: Sequence[float]) -> int:
    """1 + how many other candidates score strictly higher (ties share the better rank)."""
    return 1 + int(sum(o > score for o in others))


def describe(row, title: str = "", date: str = "") -> str:
    """One sentence for a piece's effect: 'without the purchase of Striped shirt (2020-03-02) this candidate
    falls from 0.71 to 0.52, rank 2 -> 7'. `row`: an `itertuples()` row or a Series (whose `.rank` is a method)."""
    if isinstance(row, pd.Series):
        row = SimpleNamespace(**row.to_dict())
    what = {
        "purchase": f"the purchase of {title or row.piece_key}" + (f" ({date})" if date else ""),
        "similar customer": f"the similar customer's purchase of {title or row.piece_key}",
        "profile sentence": f'the profile sentence "{row.piece_text}"',
        "image keywords": f"its image keywords ({row.piece_text})",
        "catalog keywords": f"its catalog keywords ({row.piece_text})",
    }.get(row.piece_kind, row.piece_text)
    verb = "falls" if row.score_without < row.score else "rises" if row.score_without > row.score else "stays"
    return (
        f"without {what} this candidate {verb} from {row.score:.3f} to {row.score_without:.3f}, "
        f"rank {row.rank} -> {row.rank_without}"
    )


def with_sentences(rows: pd.DataFrame, titles: dict[str, str], dates: dict[str, str]) -> pd.DataFrame:
    """`rows` (one candidate's pieces) with a `sentence` column: `describe` with the item titles and purchase days."""
    sentences = [
        describe(
            row,
            titles.get(row.piece_key, "") if row.piece_kind in ("purchase", "similar customer") else "",
            dates.get(row.piece_key, "") if row.piece_kind == "purchase" else "",
        )
        for row in rows.itertuples()
    ]
    return rows.assign(sentence=sentences)


def purchase_days(ws: Workspace, dataset: str, protocol_id: str, user: str, bought: list[str]) -> dict[str, str]:
    """item -> the day the customer bought it, among the purchases the model saw (`bought`, oldest first: the
    training history, plus the valid item for the test part). Dated by position, never by item, so a re-bought
    item never shows the day of a held-out target."""
    held = ws.store.held_out(protocol_id, user).set_index("part")["seq"].to_dict()
    rows = ws.store.user_purchases(dataset, user)
    hidden = {held.get("test")} | ({held.get("valid")} if len(rows) - len(held) == len(bought) else set())
    seen = rows[~rows["seq"].isin(hidden)]
    days = ["" if pd.isna(ts) else str(pd.Timestamp(ts).date()) for ts in seen["ts"]]
    return dict(zip(bought, days, strict=False))  # a later purchase of the same item overwrites: the newest day


def shown_context(ctx: UserContext, prompt: RecPrompt) -> UserContext:
    """`ctx` cut as the prompt cut it to fit its budget (oldest purchases, least similar customers, first
    profile sentences), so that only pieces the model actually read are left out in turn."""
    cut = prompt.trimmed
    history = ctx.history[cut.get("history", 0) :]
    similar = ctx.similar[: len(ctx.similar) - cut.get("similar", 0)]
    profile = " ".join(profile_sentences(ctx.profile)[cut.get("profile_sentences", 0) :])
    return replace(ctx, history=list(history), similar=list(similar), profile=profile)


def context_pieces(ctx: UserContext) -> list[Piece]:
    """Every piece of `ctx` that can be left out: purchases (newest first), similar customers, profile sentences."""
    pieces = [Piece("purchase", line.item_id, line.text(), i) for i, line in reversed(list(enumerate(ctx.history)))]
    pieces += [Piece("similar customer", line.item_id, line.text(), i) for i, line in enumerate(ctx.similar)]
    pieces += [Piece("profile sentence", str(i + 1), s, i) for i, s in enumerate(profile_sentences(ctx.profile))]
    return pieces


def without(ctx: UserContext, piece: Piece) -> UserContext:
    """`ctx` with one context piece left out (the others exactly as they were)."""
    if piece.kind == "purchase":
        return replace(ctx, history=[h for i, h in enumerate(ctx.history) if i != piece.index])
    if piece.kind == "similar customer":
        return replace(ctx, similar=[s for i, s in enumerate(ctx.similar) if i != piece.index])
    if piece.kind == "profile sentence":
        kept = [s for i, s in enumerate(profile_sentences(ctx.profile)) if i != piece.index]
        return replace(ctx, profile=" ".join(kept))
    raise ValueError(f"'{piece.kind}' is not a context piece; use one of {', '.join(CONTEXT_KINDS)}.")


class Attributor:
    """Counterfactual attribution with one pointwise recommender (its engine, adapter and prompt settings)."""

    def __init__(self, recommender: LLMRecommender) -> None:
        recommender = recommender.pointwise()  # attribution reads yes/no scores, whatever the page shows
        self.recommender, self.builder = recommender, recommender.builder
        self.catalog = catalog_entries(self.builder.ws.store, self.builder.dataset)

    def ablations(self, user: str, candidates: Sequence[str]) -> tuple[UserContext, RecPrompt, list[Ablation]]:
        """The customer's context, the full prompt, and one prompt per piece left out (the full one first)."""
        rec = self.recommender
        ctx, prompt = rec.prepare(user, candidates)
        shown = shown_context(ctx, prompt)
        clean = rec.clean
        # the full prefix rebuilt from the cut context must be the prompt's own, or the effects mean nothing
        rebuilt = context_text(shown, len(shown.history), len(shown.similar), 0, clean)
        if rebuilt != prompt.prefix:
            raise RuntimeError(f"The prompt for {user} could not be rebuilt piece by piece; attribution refused.")
        out = [Ablation(None, prompt.prefix, prompt.suffixes, prompt.order)]
        for piece in context_pieces(shown):
            less = without(shown, piece)
            prefix = context_text(less, len(less.history), len(less.similar), 0, clean)
            out.append(Ablation(piece, prefix, prompt.suffixes, prompt.order))
        if prompt.trimmed.get("truncated"):
            return ctx, prompt, out  # cut candidate texts: their keywords are not what the prompt showed
        for kind in KEYWORD_KINDS:
            for item in prompt.order:
                line = self.builder.line(item)
                image, catalog = split_keywords(line.keywords, self.catalog.get(item, ""))
                dropped, kept = (image, catalog) if kind == "image keywords" else (catalog, image)
                if dropped:
                    suffix = pointwise_suffix(ItemLine(item, line.title, kept), shown.domain, clean)
                    out.append(Ablation(Piece(kind, item, ", ".join(dropped)), prompt.prefix, [suffix], [item]))
        return ctx, prompt, out

    def key(self, prompt: RecPrompt) -> str:
        """What a stored attribution must match: the prompts, the engine, model, adapter and precision."""
        return input_hash([ATTRIBUTION_VERSION, self.recommender.system, prompt.prefix, prompt.suffixes,
                           self.provenance().columns()])  # fmt: skip

    def provenance(self) -> Provenance:
        """The engine's record, less the settings that cannot change a yes/no score (rationale length...)."""
        record = self.recommender.provenance()
        params = {k: v for k, v in record["params"].items() if k not in _NOT_SCORING}
        return Provenance.of({**record, "params": {**params, "attribution": ATTRIBUTION_VERSION}})

    def attribute(
        self, user: str, candidates: Sequence[str], progress: Progress | None = None, reuse: bool = True
    ) -> Attribution:
        """Every candidate's score with each piece left out; read back when stored for the same inputs."""
        start = time.perf_counter()
        store, b = self.builder.ws.store, self.builder
        ctx, prompt, ablations = self.ablations(user, list(dict.fromkeys(candidates)))
        key, prov = self.key(prompt), self.provenance()
        if reuse:
            stored = store.attribution(b.dataset, b.protocol_id, user, key)
            if not stored.empty:
                full = stored.drop_duplicates("item_id").set_index("item_id")["score"].to_dict()
                return Attribution(user, full, stored, prov, key, time.perf_counter() - start, stored=True)
        table, full = self._score(ablations, progress)
        store.write_attribution(b.dataset, b.protocol_id, user, table, prov, key)
        return Attribution(user, full, table, prov, key, time.perf_counter() - start)

    def _score(self, ablations: list[Ablation], progress: Progress | None) -> tuple[pd.DataFrame, dict[str, float]]:
        rec = self.recommender
        keyword_batches = [a for a in ablations if a.piece is not None and a.piece.kind in KEYWORD_KINDS]
        context = [a for a in ablations if a.piece is None or a.piece.kind in CONTEXT_KINDS]
        steps = len(context) + (1 if keyword_batches else 0)
        scored: list[dict[str, float]] = []
        for n, ab in enumerate(context):
            scored.append(rec.yes_no(ab.prefix, ab.suffixes, ab.order))
            if progress:
                progress(n + 1, steps, "full prompt" if ab.piece is None else f"without {ab.piece.kind}")
        full = scored[0]
        rank = {item: rank_of(score, [s for i, s in full.items() if i != item]) for item, score in full.items()}

        def row(item: str, piece: Piece, value: float, rank_without: int) -> dict:
            return {
                "item_id": item, "piece_kind": piece.kind, "piece_key": piece.key, "piece_text": piece.text,
                "score": full[item], "score_without": value, "rank": rank[item], "rank_without": rank_without,
            }  # fmt: skip

        rows = []
        for ab, scores in zip(context[1:], scored[1:], strict=True):
            for item in ab.order:
                others = [s for i, s in scores.items() if i != item]
                rows.append(row(item, ab.piece, scores[item], rank_of(scores[item], others)))
        if keyword_batches:  # every candidate's keyword variants behind the full prefix, in one batch
            suffixes = [a.suffixes[0] for a in keyword_batches]  # an item appears twice: a list, not `yes_no`
            raw = rec.engine.score_yes_no(context[0].prefix, suffixes, system=rec.system)
            for ab, value in zip(keyword_batches, np.asarray(raw, dtype=float).tolist(), strict=True):
                item = ab.order[0]
                others = [s for i, s in full.items() if i != item]
                rows.append(row(item, ab.piece, value, rank_of(value, others)))
            if progress:
                progress(steps, steps, "without keywords")
        return pd.DataFrame(rows), full
