"""Stage 2, recurrent user preference summaries (MLLM-MSR section 3.2; MLLMRec's user profile).

A user's TRAINING history (never the valid/test targets: `splits.train_interactions`) is cut into
blocks of b items; summary_1 = LLM(block_1), summary_k = LLM(summary_{k-1}, block_k); the last
summary is the profile. Every block summary is stored with the item ids it covers and an input
hash chaining all earlier blocks, so a user whose history grew resumes from the last unchanged
block instead of starting over. A degenerate generation (empty, looping, echoing the prompt) is
retried once with sampling; if it is still degenerate the previous summary is carried forward and
the row is flagged, never silently used as the profile.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec_core.core import jobs
from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.prompts import Domain, domain_for
from mmrec_core.core.provenance import Provenance
from mmrec_core.data.splits import train_interactions
from mmrec_core.engines import Engine, GenerationOptions
from mmrec_core.grounding.claims import Evidence, check
from mmrec_core.profiles.prompts import PROFILE_FIRST, PROFILE_SCAFFOLD, PROFILE_UPDATE
from mmrec_core.profiles.specific import (
    blocks_of,
    catalog_terms,
    grounded,
    rarity,
    running_weights,
    scaffold,
    scaffold_sentence,
    twins,
    unit_rows,
    vague_reason,
)
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.texts import item_evidence, item_lines

PROFILES_JOB = "profiles"


@dataclass
class ProfileConfig:
    max_new_tokens: int = field(default=72, metadata={"help": "Generation budget per block summary."})
    batch_size: int = field(default=32, metadata={"help": "Users summarised together in one generate() call."})
    min_terms: int = field(
        default=3, metadata={"help": "Recurring attributes or keywords a block summary must name (else it is retried)."}
    )
    scaffold_size: int = field(default=6, metadata={"help": "How many recurring terms the retry prompt lists."})
    recent_titles: int = field(
        default=3,
        metadata={"help": "Latest purchases (whole history so far) the scaffold sentence names.", "range": (1, 20, 1)},
    )
    near: float = field(
        default=0.95, metadata={"help": "Cosine to another customer's summary at which a summary is retried."}
    )
    users: list[str] | None = field(default=None, metadata={"help": "Only these users (default: all).", "cli": False})

    def as_params(self) -> dict:
        return {"min_terms": self.min_terms, "scaffold_size": self.scaffold_size, "near": self.near,
                "recent_titles": self.recent_titles}  # fmt: skip


@dataclass
class ProfileReport:
    users: int = 0
    blocks_done: int = 0
    blocks_reused: int = 0
    flagged: int = 0
    retried: int = 0
    scaffolded: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"profiles for {self.users} users: {self.blocks_done} block summaries written, "
            f"{self.blocks_reused} reused, {self.retried} retried with the scaffold, {self.scaffolded} given "
            f"the scaffold sentence, {self.flagged} flagged, {self.seconds:.1f} s"
        )


def start_profiles(ws: Workspace, engine: Engine, dataset: str, protocol_id: str) -> str:
    """`build_profiles` for every user as a background job (`mmrec_core.jobs`); returns the job id."""
    ws.store.require_dataset(dataset)
    params = {"dataset": dataset, "protocol_id": protocol_id, "engine": engine.settings.engine}
    return jobs.start_job(
        ws.store,
        PROFILES_JOB,
        params,
        lambda progress: build_profiles(ws, engine, dataset, protocol_id, None, progress),
    )


def degenerate_reason(summary: str, prompt: str) -> str | None:
    """Why a generated summary is unusable, or None: empty, too short, looping, or echoing the prompt."""
    words = re.findall(r"\w+", summary.lower())
    if len(words) < 4:
        return "empty or too short"
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if trigrams and len(set(trigrams)) / len(trigrams) < 0.6:
        return "repetition"
    prompt_words = re.findall(r"\w+", prompt.lower())
    prompt_grams = {tuple(prompt_words[i : i + 5]) for i in range(len(prompt_words) - 4)}
    grams = [tuple(words[i : i + 5]) for i in range(len(words) - 4)]
    if grams and sum(g in prompt_grams for g in grams) / len(grams) > 0.6:
        return "echoes the prompt"
    return None


def _block_hash(previous: str, item_ids: list[str], texts: dict[str, str], params: dict) -> str:
    return input_hash([previous, item_ids, [texts[i] for i in item_ids], params])


def block_prompt(summary: str | None, item_ids: list[str], texts: dict[str, str], domain: Domain) -> str:
    """What the LLM is asked for a block: the first summary, or the update of `summary` (SFT asks the same)."""
    items = "\n".join(f"- {texts[i]}" for i in item_ids)
    if summary is None:
        return PROFILE_FIRST.format(domain, items=items)
    return PROFILE_UPDATE.format(domain, summary=summary, items=items)


def build_profiles(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: ProfileConfig | None = None,
    progress: Progress | None = None,
) -> ProfileReport:
    """Block summaries and the final profile for every user, from training interactions only."""
    config = config or ProfileConfig()
    protocol_id = default_protocol(ws, dataset, protocol_id)
    train = train_interactions(ws.store, protocol_id)
    if config.users is not None:
        unknown = sorted(set(config.users) - set(train["user_id"]))
        if unknown:
            raise KeyError(f"Unknown user(s) {unknown[:5]} in {protocol_id} (or no training history).")
        train = train[train["user_id"].isin(config.users)]
    b = engine.settings.profile_block
    options = GenerationOptions(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    params = {**engine.provenance("llm", PROFILE_FIRST.version, **options.as_params(), **config.as_params())}
    params |= {"block": b, "domain": domain.name}
    histories = {u: g["item_id"].tolist() for u, g in train.groupby("user_id", sort=True)}
    evidence = item_evidence(ws.store, dataset)
    terms = catalog_terms(ws.store, dataset, evidence)
    titles = ws.store.items(dataset).set_index("item_id")["title"].fillna("").astype(str).to_dict()
    writer = _Writer(
        engine, config, options, domain, item_lines(ws.store, dataset), evidence, terms, rarity(terms), titles
    )
    stored = ws.store.profile_hashes(dataset, protocol_id)
    blocks = {u: blocks_of(h, b) for u, h in histories.items()}
    state = {u: {"summary": None, "hash": "", "k": 0} for u in blocks}
    report = ProfileReport(users=len(blocks))
    start, total = time.perf_counter(), sum(len(v) for v in blocks.values())
    finished = 0
    while any(s["k"] < len(blocks[u]) for u, s in state.items()):
        todo, reused = [], []
        for user, s in state.items():
            if s["k"] >= len(blocks[user]):
                continue
            ids = blocks[user][s["k"]]
            h = _block_hash(s["hash"], ids, writer.texts, params)
            if h in stored:  # this block (and everything before it) is unchanged: reuse it
                s.update(summary=stored[h], hash=h, k=s["k"] + 1)
                reused.append((user, stored[h]))
                report.blocks_reused += 1
                finished += 1
            else:
                todo.append(_Block(user, ids, h, blocks[user][: s["k"] + 1], state[user]["summary"]))
        writer.accept(reused)  # a new summary must not read like these either
        for first in range(0, len(todo), config.batch_size):
            batch = todo[first : first + config.batch_size]
            writer.summarise(batch, report)
            rows = []
            for block in batch:
                prev_hash = state[block.user]["hash"]
                state[block.user].update(summary=block.summary, hash=block.hash, k=state[block.user]["k"] + 1)
                rows.append(_row(block, state[block.user]["k"], prev_hash, dataset, protocol_id, params))
            with ws.store.transaction() as tx:  # each batch on its own: a stopped run loses one batch at most
                ws.store.write_profile_blocks(tx, pd.DataFrame(rows))
            finished += len(batch)
            if progress:
                progress(finished, total, f"{report.blocks_done} block summaries written")
        if progress and not todo:
            progress(finished, total, f"{report.blocks_reused} block summaries reused")
    with ws.store.transaction() as tx:
        ws.store.mark_final_profiles(tx, dataset, protocol_id, {u: s["hash"] for u, s in state.items()})
    _embed_profiles(ws, engine, dataset, protocol_id, state)
    report.seconds = time.perf_counter() - start
    return report


def _embed_profiles(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, state: dict) -> None:
    """Sentence embeddings of the final profiles (for the graph model and retrieval); unchanged ones are kept."""
    kind = f"profile:{protocol_id}"
    done = ws.store.embedding_hashes(dataset, kind)
    todo = [(u, s) for u, s in state.items() if s["summary"] and s["hash"] not in done]
    if not todo:
        return
    vectors = engine.embed([s["summary"] for _, s in todo])
    prov = engine.provenance("embedder")
    rows = pd.DataFrame(
        {
            "dataset": dataset,
            "kind": kind,
            "key": [u for u, _ in todo],
            "vector": [v.tolist() for v in vectors],
            **Provenance.of(prov).columns(),
            "input_hash": [s["hash"] for _, s in todo],
        }
    )
    with ws.store.transaction() as tx:
        ws.store.write_embeddings(tx, rows)


@dataclass
class _Block:
    """One block summary to write: the user, the block's items, its chain hash, every block so far, the last summary."""

    user: str
    item_ids: list[str]
    hash: str
    covered: list[list[str]]
    previous: str | None
    summary: str = ""
    flag: str | None = None
    grounding: str = ""


@dataclass
class _Writer:
    """Writes block summaries in batches and holds them to `profiles.specific`'s checks."""

    engine: Engine
    config: ProfileConfig
    options: GenerationOptions
    domain: Domain
    texts: dict[str, str]
    evidence: dict[str, Evidence]
    terms: dict[str, list[str]]  # item_id -> what a summary could name about it (`specific.item_terms`)
    rarity: dict[str, float]
    titles: dict[str, str]
    vectors: list[np.ndarray] = field(default_factory=list)  # accepted summaries, to tell customers apart
    owners: list[str] = field(default_factory=list)

    def summarise(self, batch: list[_Block], report: ProfileReport) -> None:
        """Fill each block's summary, flag and grounding: write, check, retry with the scaffold, fall back.

        A degenerate generation, or a summary that reads like another customer's, is written again with the
        scaffold in the prompt; one that still fails, or that grounding leaves empty or naming too little of what
        recurs, gains the scaffold sentence.
        """
        system = PROFILE_FIRST.system_for(self.domain)  # all templates share it: a step's blocks go in one batch
        prompts = [block_prompt(b.previous, b.item_ids, self.texts, self.domain) for b in batch]
        evidence = [
            Evidence.union(self.evidence[i] for ids in b.covered for i in ids if i in self.evidence) for b in batch
        ]
        weights = [running_weights(b.covered, self.terms)[-1] for b in batch]
        terms = [scaffold(w, self.config.scaffold_size, self.rarity) for w in weights]
        raw = self.engine.generate(prompts, self.options, system=system)
        written = [grounded(t, e, list(w)) for t, e, w in zip(raw, evidence, weights, strict=True)]
        reasons = self._reasons(batch, prompts, raw, written)
        retry = [k for k, r in enumerate(reasons) if r]
        if retry:  # written again, greedy, with what recurs in the prompt
            again = GenerationOptions(max_new_tokens=self.options.max_new_tokens, batch_size=self.options.batch_size,
                                      repetition_penalty=1.1)  # fmt: skip
            scaffolded = [
                PROFILE_SCAFFOLD.format(self.domain, prompt=prompts[k], terms=", ".join(terms[k])) for k in retry
            ]
            for k, text in zip(retry, self.engine.generate(scaffolded, again, system=system), strict=True):
                raw[k], written[k] = text, grounded(text, evidence[k], list(weights[k]))
            report.retried += len(retry)
            reasons = self._reasons(batch, prompts, raw, written)
        for k, block in enumerate(batch):
            summary = written[k]
            reason = (
                reasons[k]
                or degenerate_reason(summary, prompts[k])
                or vague_reason(summary, terms[k], evidence[k], self.config.min_terms)
            )
            if reason and terms[k]:  # keep what is grounded and state what recurs
                keep = "" if degenerate_reason(summary, prompts[k]) else summary
                # the latest purchases of the whole history, not of this block alone: a short last block left
                # customers who share one recent item with the same sentence (3.4% near-identical on sample)
                bought = [i for ids in block.covered for i in ids][-self.config.recent_titles :]
                latest = [self.titles.get(i) or i for i in bought]
                summary = f"{keep} {scaffold_sentence(terms[k], self.domain.history, latest)}".strip()
                block.flag = f"scaffold sentence added ({reason})"
                report.scaffolded += 1
            elif reason:  # nothing recurs to say (an empty history): carry the last summary forward
                summary = block.previous or ""
                block.flag = f"degenerate generation ({reason}); " + (
                    "kept the previous summary" if block.previous else "no summary"
                )
                report.flagged += 1
            block.summary = summary
            block.grounding = check(summary, evidence[k]).to_json()
            report.blocks_done += 1
        self.accept([(b.user, b.summary) for b in batch])

    def _reasons(self, batch: list[_Block], prompts: list[str], raw: list[str], written: list[str]) -> list[str | None]:
        """Why each summary is written again, or None: a degenerate generation (empty, looping, echoing the
        prompt) or a grounded summary that reads like another customer's. One that grounding left empty or
        vague is not: it gains the scaffold sentence without a second generation."""
        vectors = unit_rows(self.engine.embed(written))
        others = np.stack(self.vectors) if self.vectors else np.zeros((0, vectors.shape[1]), dtype=vectors.dtype)
        alike = twins(vectors, [b.user for b in batch], others, self.owners, self.config.near)
        return [
            degenerate_reason(text, prompt) or ("reads like another customer's summary" if a and kept else None)
            for text, prompt, kept, a in zip(raw, prompts, written, alike, strict=True)
        ]

    def accept(self, summaries: list[tuple[str, str]]) -> None:
        """Remember (user, summary) pairs: later summaries of other customers are compared with them."""
        kept = [(u, t) for u, t in summaries if t]
        if kept:
            self.vectors += list(unit_rows(self.engine.embed([t for _, t in kept])))
            self.owners += [u for u, _ in kept]


def _row(block: _Block, k: int, prev_hash: str, dataset: str, protocol_id: str, params: dict) -> dict:
    return {
        "dataset": dataset,
        "protocol_id": protocol_id,
        "user_id": block.user,
        "block": k,
        "item_ids": block.item_ids,
        "summary": block.summary,
        "is_final": False,
        "flag": block.flag,
        "grounding": block.grounding,
        "engine": params["engine"],
        "model": params["model"],
        "prompt_version": params["prompt_version"],
        "params": json.dumps({**params["params"], "block": params["block"]}),
        "input_hash": block.hash,
        "prev_hash": prev_hash,
    }
