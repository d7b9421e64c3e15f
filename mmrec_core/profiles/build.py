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

import pandas as pd

from mmrec_core.core import jobs
from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.prompts import Domain, domain_for
from mmrec_core.core.provenance import Provenance
from mmrec_core.data.splits import train_interactions
from mmrec_core.engines import Engine, GenerationOptions
from mmrec_core.grounding.claims import Evidence, check
from mmrec_core.profiles.prompts import PROFILE_FIRST, PROFILE_UPDATE
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.texts import item_evidence, item_lines

PROFILES_JOB = "profiles"


@dataclass
class ProfileConfig:
    max_new_tokens: int = field(default=72, metadata={"help": "Generation budget per block summary."})
    batch_size: int = field(default=32, metadata={"help": "Users summarised together in one generate() call."})
    users: list[str] | None = field(default=None, metadata={"help": "Only these users (default: all).", "cli": False})


@dataclass
class ProfileReport:
    users: int = 0
    blocks_done: int = 0
    blocks_reused: int = 0
    flagged: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"profiles for {self.users} users: {self.blocks_done} block summaries written, "
            f"{self.blocks_reused} reused, {self.flagged} flagged, {self.seconds:.1f} s"
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


def _prompt(summary: str | None, item_ids: list[str], texts: dict[str, str], domain: Domain) -> str:
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
    texts = item_lines(ws.store, dataset)
    evidence = item_evidence(ws.store, dataset)
    b = engine.settings.profile_block
    options = GenerationOptions(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    params = {**engine.provenance("llm", PROFILE_FIRST.version, **options.as_params()), "block": b}
    params["domain"] = domain.name
    stored = ws.store.profile_hashes(dataset, protocol_id)
    histories = {u: g["item_id"].tolist() for u, g in train.groupby("user_id", sort=True)}
    blocks = {u: [h[i : i + b] for i in range(0, len(h), b)] for u, h in histories.items()}
    state = {u: {"summary": None, "hash": "", "k": 0} for u in blocks}
    report = ProfileReport(users=len(blocks))
    start, total = time.perf_counter(), sum(len(v) for v in blocks.values())
    finished = 0
    while any(s["k"] < len(blocks[u]) for u, s in state.items()):
        todo = []
        for user, s in state.items():
            if s["k"] >= len(blocks[user]):
                continue
            ids = blocks[user][s["k"]]
            h = _block_hash(s["hash"], ids, texts, params)
            if h in stored:  # this block (and everything before it) is unchanged: reuse it
                s.update(summary=stored[h], hash=h, k=s["k"] + 1)
                report.blocks_reused += 1
                finished += 1
            else:
                todo.append((user, ids, h))
        for first in range(0, len(todo), config.batch_size):
            batch = todo[first : first + config.batch_size]
            rows = _summarise(engine, batch, state, texts, domain, options, dataset, protocol_id, params, report)
            for row in rows:  # a summary may say what the items it has covered so far support
                covered = histories[row["user_id"]][: row["block"] * b]
                row["grounding"] = check(row["summary"], Evidence.union(evidence[i] for i in covered)).to_json()
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


def _summarise(engine: Engine, todo, state, texts, domain, options, dataset, protocol_id, params, report) -> list[dict]:
    """One generate() call for a batch of (user, block items, hash); retries degenerate ones once."""
    prompts = [_prompt(state[u]["summary"], ids, texts, domain) for u, ids, _ in todo]
    system = PROFILE_FIRST.system_for(domain)  # both templates share it: every block of a step goes in one batch
    outputs = engine.generate(prompts, options, system=system)
    rows = []
    for (user, ids, h), prompt, summary in zip(todo, prompts, outputs, strict=True):
        reason = degenerate_reason(summary, prompt)
        if reason:  # one retry with sampling, seeded by the block so a re-run repeats it
            retry = GenerationOptions(
                max_new_tokens=options.max_new_tokens,
                do_sample=True,
                temperature=0.8,
                repetition_penalty=1.1,
                seed=int(h[:8], 16),
            )
            summary = engine.generate([prompt], retry, system=system)[0]
            reason = degenerate_reason(summary, prompt)
        flag = None
        if reason:
            previous = state[user]["summary"]
            flag = f"degenerate generation ({reason}); " + ("kept the previous summary" if previous else "no summary")
            summary = previous or ""
            report.flagged += 1
        prev_hash = state[user]["hash"]
        state[user].update(summary=summary, hash=h, k=state[user]["k"] + 1)
        report.blocks_done += 1
        rows.append(
            {
                "dataset": dataset,
                "protocol_id": protocol_id,
                "user_id": user,
                "block": state[user]["k"],
                "item_ids": ids,
                "summary": summary,
                "is_final": False,
                "flag": flag,
                "engine": params["engine"],
                "model": params["model"],
                "prompt_version": params["prompt_version"],
                "params": json.dumps({**params["params"], "block": params["block"]}),
                "input_hash": h,
                "prev_hash": prev_hash,
            }
        )
    return rows
