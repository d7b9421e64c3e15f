"""Rationale faithfulness: does a rationale cite what actually moved the model's score?

A rationale can be verifiable (it names real evidence, `evaluate.rationales`) and still not explain the
score: the model may rank an item for its catalog keywords and then write about a purchase whose removal
changes nothing. For each rationale the customer's context is attributed (`explain.attribution`: each piece
left out, the yes/no score recomputed) and compared with what the rationale cites:
- top_cited: the piece with the largest |effect| on that item (any of them, on a tie) is cited; undefined
  (NaN) when no piece moves the score;
- spearman: rank correlation between citation strength and |effect| over the item's pieces; NaN when either
  is constant (nothing or everything cited, or no effects);
- cited: how many pieces it cites; chance_top: cited / pieces, how often citing that many pieces at random
  would include the top one (the baseline top_cited must beat to mean anything).

Citation is a lexical proxy, not a reading of the text: no model judges what a rationale refers to.
- purchase / similar customer: 1.0 when the rationale names the item's title, else the share of its
  distinctive keywords it names (keywords made only of stopwords or words under 3 characters are ignored);
- profile sentence: the share of the sentence's content words (not stopwords, 3+ characters, a plural 's'
  dropped) the rationale uses, counted only when that is 2+ words or a share of 0.3+;
- image / catalog keywords (of the candidate itself): the share of those keywords it names.
A word shared by the candidate and a purchase ("wool") cites both: the proxy over-counts rather than misses.

Listwise rationales (the answer's reasoning for its first item) are compared with the same model's pointwise
yes/no attribution of that item, the only score with counterfactuals. Each evaluation is stored as a
'rationales' run (metrics part 'test', subset 'faithfulness'); `faithfulness_board` lists the newest per
model setting for the Evaluate page.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance, code_version
from mmrec_core.engines.protocol import Engine
from mmrec_core.evaluate.leaderboard import run_label
from mmrec_core.evaluate.rationales import sample_users
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.keywords import contains_term

RUN_KIND, SUBSET = "rationales", "faithfulness"
ADAPTER_METHODS = ("llm-sft", "llm-grpo")  # adapters that rank (keyword and describer adapters do not)
FIGURES = (
    "top piece cited", "top cited by chance", "spearman", "cites any piece", "top |effect|", "shown: top piece cited",
)  # fmt: skip
PROFILE_MIN_WORDS, PROFILE_MIN_SHARE = 2, 0.3
STOPWORDS = frozenset(
    "the and for with this that these those its it's their they them you your our are was were has have had "
    "but not all any can will would could should from into onto over under about also very more most much "
    "such than then there here which who whom what when where why how item items customer customers likes "
    "like liked buy buys bought shopper".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def content_words(text: str) -> list[str]:
    """The words that can carry a citation: lowercase, 3+ characters, no stopwords, a plural 's' dropped."""
    out = []
    for w in _WORD.findall(text.lower()):
        if len(w) < 3 or w in STOPWORDS:
            continue
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return list(dict.fromkeys(out))


def _keywords(text: str) -> list[str]:
    return [k.strip().lower() for k in text.split(",") if content_words(k)]


def _named_share(text: str, keywords: Sequence[str]) -> float:
    return sum(contains_term(text, k) for k in keywords) / len(keywords) if keywords else 0.0


def _item_keywords(piece_text: str, title: str) -> list[str]:
    """The keywords of an item line 'Title: kw1, kw2' (the title cut off as the prompt showed it)."""
    rest = piece_text[len(title) :] if title and piece_text.startswith(title) else piece_text.partition(":")[2]
    return _keywords(rest.lstrip(": "))


def citation_strength(rationale: str, kind: str, key: str, text: str, titles: Mapping[str, str]) -> float:
    """How strongly `rationale` cites one piece, in [0, 1] (the rule in the module docstring)."""
    lowered = " ".join(rationale.lower().split())
    if kind in ("purchase", "similar customer"):
        title = titles.get(key, "")
        if content_words(title) and contains_term(lowered, " ".join(title.lower().split())):
            return 1.0
        return _named_share(lowered, _item_keywords(text, title))
    if kind == "profile sentence":
        words = content_words(text)
        shared = len(set(words) & set(content_words(rationale)))
        share = shared / len(words) if words else 0.0
        return share if shared >= PROFILE_MIN_WORDS or (shared and share >= PROFILE_MIN_SHARE) else 0.0
    return _named_share(lowered, _keywords(text))  # a candidate's image or catalog keywords


def cited_pieces(rationale: str, pieces: pd.DataFrame, titles: Mapping[str, str]) -> list[float]:
    """Citation strength of each row of `pieces` (piece_kind, piece_key, piece_text), in row order."""
    return [
        citation_strength(rationale, row.piece_kind, str(row.piece_key), str(row.piece_text), titles)
        for row in pieces.itertuples()
    ]


def rationale_figures(strength: Sequence[float], effects: Sequence[float]) -> dict:
    """top_cited (1.0 / 0.0, NaN when no piece moves the score), spearman (NaN when undefined), cited (count)."""
    s, e = np.asarray(strength, dtype=float), np.abs(np.asarray(effects, dtype=float))
    top = float("nan")
    if len(e) and e.max() > 0:
        top = float((s[np.isclose(e, e.max())] > 0).any())
    rho = float("nan")
    if len(e) > 1 and np.ptp(s) > 0 and np.ptp(e) > 0:
        rho = float(spearmanr(s, e).statistic)
    # by chance: citing as many pieces as it does, at random, hits the top piece this often
    chance = float((s > 0).sum() / len(s)) if len(s) and top == top else float("nan")
    return {"top_cited": top, "chance_top": chance, "spearman": rho, "cited": int((s > 0).sum())}


def faithfulness_row(rationale: str, pieces: pd.DataFrame, titles: Mapping[str, str], shown: str = "") -> dict:
    """One rationale against its item's attribution (`Attribution.for_item`: largest |effect| first)."""
    strength = cited_pieces(rationale, pieces, titles)
    effects = pieces["effect"].to_numpy(dtype=float) if len(pieces) else np.zeros(0)
    row = {**rationale_figures(strength, effects), "pieces": len(pieces)}
    top = pieces.iloc[0] if len(pieces) else None
    row["top_piece"] = f"{top.piece_kind}: {top.piece_text}" if top is not None else ""
    row["top_effect"] = float(abs(top.effect)) if top is not None else float("nan")
    row["cites"] = "; ".join(
        f"{p.piece_kind}: {p.piece_text}" for p, s in zip(pieces.itertuples(), strength, strict=True) if s > 0
    )
    if shown:  # the text as the page shows it (after `recommend.rationale.settle`)
        row["shown_top_cited"] = rationale_figures(cited_pieces(shown, pieces, titles), effects)["top_cited"]
    return row


def summarize(table: pd.DataFrame, users: int, failed: int, seconds: float) -> dict:
    """The figures of one evaluation (means over the rationales where each is defined)."""
    summary: dict = {"users": users, "rationales": len(table), "failed users": failed}
    if table.empty:
        return {**summary, **{name: float("nan") for name in FIGURES}, "seconds per user": seconds}
    mean = lambda col: float(table[col].mean()) if col in table and table[col].notna().any() else float("nan")  # noqa: E731
    summary.update({
        "top piece cited": mean("top_cited"), "top cited by chance": mean("chance_top"), "spearman": mean("spearman"),
        "cites any piece": float((table["cited"] > 0).mean()), "top |effect|": mean("top_effect"),
        "shown: top piece cited": mean("shown_top_cited"), "seconds per user": seconds,
    })  # fmt: skip
    return summary


def evaluate_faithfulness(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    users: int = 20,
    config: RecommendConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    mode: str | None = None,
    written: pd.DataFrame | None = None,
    protocol_id: str | None = None,
) -> tuple[dict, pd.DataFrame]:
    """(summary, one row per rationale), stored as a 'rationales' run (its id in summary['run_id']).

    `mode` overrides `config.mode`. `written`: the table `evaluate_rationales` returned for the same users and
    settings (user_id, item_id, rationale, raw), so the rationales are not generated twice. A user whose scoring
    or attribution fails is left out and named in summary['failed'].
    """
    from mmrec_core.explain.attribution import Attributor
    from mmrec_core.recommend.context import ContextBuilder
    from mmrec_core.recommend.customer import score_customer, stored_candidates
    from mmrec_core.recommend.evidence import EvidenceFinder
    from mmrec_core.recommend.llm import LLMRecommender

    config = config or RecommendConfig()
    config = replace(config, mode=mode) if mode else config
    protocol_id = default_protocol(ws, dataset, protocol_id)
    builder = ContextBuilder.for_config(ws, dataset, protocol_id, config)
    recommender = LLMRecommender(engine, builder, config)
    attributor, titles = Attributor(recommender), builder.titles
    finder = EvidenceFinder(builder) if written is None else None
    chosen = sample_users(builder.data.parts["test"].users, users, seed)
    rows, failed, seconds = [], [], []
    for k, user in enumerate(chosen):
        start = time.perf_counter()
        try:
            candidates = stored_candidates(builder, user)
            if written is None:
                _, table = score_customer(recommender, finder, user, candidates)
                texts = [(r.item_id, r.written.raw, r.rationale) for r in table[table["rationale"] != ""].itertuples()]
            else:
                mine = written[written["user_id"].astype(str) == user] if len(written) else written  # none: no columns
                texts = [(r.item_id, r.raw, r.rationale) for r in mine.itertuples()]
            attribution = attributor.attribute(user, candidates) if texts else None
            for rank, (item, raw, shown) in enumerate(texts, start=1):
                figures = faithfulness_row(raw, attribution.for_item(item), titles, shown)
                rows.append({"user_id": user, "item_id": item, "rank": rank, "rationale": raw, **figures})
        except Exception as exc:  # one customer (a prompt, the engine, an answer) must never end the batch
            failed.append((user, f"{type(exc).__name__}: {exc}"))
        seconds.append(time.perf_counter() - start)
        if progress:
            progress(k + 1, len(chosen), f"{len(rows)} rationales")
    table = pd.DataFrame(rows)
    summary = summarize(table, len(chosen), len(failed), float(np.mean(seconds)) if seconds else 0.0)
    summary["run_id"] = _record(ws, dataset, protocol_id, recommender, summary, users, seed, failed)
    summary["failed"] = failed
    return summary, table


def adapter_method(ws: Workspace, dataset: str, adapter: str) -> str:
    """The run method for an engine with `adapter`: 'llm' (none), its training method, or 'llm-adapter'."""
    if not adapter:
        return "llm"
    trained = ws.store.llm_train_runs(dataset)
    match = trained[trained["adapter"].astype(str) == str(adapter)]
    return str(match["method"].iloc[0]) if len(match) else "llm-adapter"


def _record(ws, dataset, protocol_id, recommender, summary, users, seed, failed) -> str:
    prov = recommender.provenance()
    adapter = str(prov["params"].get("adapter") or getattr(recommender.engine.settings, "adapter", "") or "")
    config = recommender.config
    params = {
        **prov["params"], "engine": prov["engine"], "model": prov["model"], "prompt_version": prov["prompt_version"],
        "users": users, "seed": seed, "mode": config.mode, "adapter": adapter,
        "failed_users": [u for u, _ in failed], "code_version": code_version(),
    }  # fmt: skip
    names = [n for n in ("users", "rationales", "failed users", *FIGURES, "seconds per user")
             if np.isfinite(float(summary[n]))]  # fmt: skip
    metrics = pd.DataFrame(
        {"part": "test", "subset": SUBSET, "name": names, "value": [float(summary[n]) for n in names]}
    )
    method = adapter_method(ws, dataset, adapter)
    provenance = Provenance(prov["engine"], prov["model"], prov["prompt_version"])
    return ws.store.record_run(dataset, protocol_id, RUN_KIND, method, params, None, metrics, provenance=provenance)


def rationale_adapters(ws: Workspace, dataset: str) -> pd.DataFrame:
    """Finished adapters that rank (SFT, GRPO) of a data set, newest first: method, adapter."""
    from mmrec_core.finetune.runs import adapters

    trained = adapters(ws, dataset)
    return trained[trained["method"].isin(ADAPTER_METHODS)][["method", "adapter"]].reset_index(drop=True)


BOARD_COLUMNS = ["label", "method", "adapter", "mode", "users", "rationales", *FIGURES, "seconds per user", "run_id"]


def faithfulness_board(ws: Workspace, dataset: str, protocol_id: str) -> pd.DataFrame:
    """The newest 'rationales' run per (method, adapter, mode), with its figures; `label` as the leaderboard's."""
    runs = ws.store.runs_of_kind(dataset, protocol_id, RUN_KIND)
    if runs.empty:
        return pd.DataFrame(columns=BOARD_COLUMNS)
    params = [json.loads(p) for p in runs["params"]]
    runs["mode"] = [p.get("mode", "pointwise") for p in params]
    runs["adapter"] = [p.get("adapter") or "" for p in params]
    runs = runs.drop_duplicates(["method", "adapter", "mode"]).reset_index(drop=True)
    metrics = ws.store.run_metrics(list(runs["run_id"]))
    metrics = metrics[metrics["subset"] == SUBSET].pivot_table(index="run_id", columns="name", values="value")
    runs["label"] = [run_label(f"llm-{m}", {"adapter": a}) for m, a in zip(runs["mode"], runs["adapter"], strict=True)]
    table = runs.join(metrics, on="run_id").reindex(columns=BOARD_COLUMNS)
    table[["users", "rationales"]] = table[["users", "rationales"]].astype("Int64")
    return table.reset_index(drop=True)


def beside_accuracy(board: pd.DataFrame, ranked: pd.DataFrame, metric: str = "NDCG@5") -> pd.DataFrame:
    """`board` with the leaderboard's `metric` of the same setting (same label; for an adapter rated in another
    mode, the leaderboard row of that adapter) and which leaderboard row it came from ('ranked as')."""
    by_label = dict(zip(ranked["label"], ranked[metric], strict=True))
    out = board.copy()
    matches = []
    for row in board.itertuples():
        if row.label in by_label:
            matches.append(row.label)
            continue
        name = Path(row.adapter).parent.name if row.adapter else ""
        same = [lab for lab in by_label if name and lab.endswith(f" + {name}")]
        matches.append(same[0] if same else None)
    out.insert(1, metric, [by_label.get(m) if m else None for m in matches])
    out.insert(2, "ranked as", matches)
    return out
