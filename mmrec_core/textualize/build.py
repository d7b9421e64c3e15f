"""Stage 1, item textualization (MLLM-MSR, MLLMRec, MMSRARec): image -> description -> keywords -> rewards.

For every item: the engine describes its image with the catalog text as context; the description
fused with the catalog text is the item's source text; the LLM summarises it as a compact keyword
set (sorted into facets); the keyword set gets its summary-quality rewards. All of it is stored with
provenance and an input hash (image, text, engine, prompts, parameters), so a re-run skips items
whose inputs are unchanged and a crash loses at most the batch in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
from PIL import Image

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.prompts import PRODUCT, Domain, domain_for
from mmrec_core.engines import Engine, GenerationOptions
from mmrec_core.grounding.claims import catalog_evidence, catalog_texts, check
from mmrec_core.store.images import BadImageError
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.keywords import build_facets, parse_keywords
from mmrec_core.textualize.prompts import KEYWORDS, keyword_chat
from mmrec_core.textualize.rewards import keyword_rewards, reward_params
from mmrec_core.textualize.texts import fused_source, item_context


@dataclass
class TextualizeConfig:
    batch_size: int = field(default=32, metadata={"help": "Items per model batch (and per stored transaction)."})
    force: bool = field(default=False, metadata={"help": "Redo items even when their inputs are unchanged."})
    keyword_tokens: int = field(default=48, metadata={"help": "Generation budget for the keyword list."})
    serial_vision: bool = field(
        default=False,
        metadata={"help": "Read images in the LLM's thread (by default the next batch's are read beside the LLM)."},
    )


@dataclass
class TextualizeReport:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item_id, reason)
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        text = f"textualized {self.done} items ({self.items_per_second:.2f} items/s), skipped {self.skipped} unchanged"
        return text + (f", {len(self.failed)} failed" if self.failed else "")


def _input_hash(row: dict, params: dict) -> str:
    fields = [row["image_sha256"], row.get("title"), row.get("text"), row.get("category"), row.get("attributes")]
    return input_hash([*fields, params])


def run_params(engine: Engine, config: TextualizeConfig, domain: Domain = PRODUCT) -> dict:
    """Everything the stored outputs depend on besides the item itself."""
    return {
        "domain": domain.name,
        "describe": engine.provenance("vlm", engine.describe_version()),
        "keywords": engine.provenance("llm", KEYWORDS.version, max_new_tokens=config.keyword_tokens),
        "rewards": reward_params(engine.settings),
    }


def _todo(ws: Workspace, dataset: str, items: pd.DataFrame, params: dict, force: bool = False) -> list[dict]:
    """The items whose stored texts were not made from these inputs with these settings (all with `force`)."""
    items = items.assign(input_hash=[_input_hash(r, params) for r in items.to_dict("records")])
    done = set() if force else ws.store.keyword_hashes(dataset)
    return items[~items["input_hash"].isin(done)].to_dict("records")


def pending_items(
    ws: Workspace, engine: Engine, dataset: str, config: TextualizeConfig | None = None
) -> tuple[int, int]:
    """(items a `textualize` run would do now, items in all): what the pipeline status shows."""
    work = plan(ws, engine, dataset, None, config or TextualizeConfig())
    return len(work.todo), len(work.todo) + work.skipped


def _open_image(ws: Workspace, row: dict) -> Image.Image | None:
    return ws.images.open(row["image_sha256"], row["ext"]) if row.get("image_sha256") else None


@dataclass
class TextualizePlan:
    """What a run will do: the items to (re)make, in order, and everything their texts depend on."""

    todo: list[dict]  # item rows (with `input_hash`) whose stored texts are missing or stale
    skipped: int  # items whose stored texts were made from the same inputs
    categories: list[str]
    domain: Domain
    params: dict

    def chunks(self, size: int) -> list[list[dict]]:
        """The todo in model batches of `size` (the same batches whichever backend runs them)."""
        return [self.todo[first : first + size] for first in range(0, len(self.todo), size)]


def plan(
    ws: Workspace, engine: Engine, dataset: str, item_ids: list[str] | None, config: TextualizeConfig
) -> TextualizePlan:
    """The items of `dataset` (or `item_ids`) that are not done yet with these settings."""
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    items = ws.store.items_with_images(dataset, item_ids)
    if item_ids is not None and len(items) < len(set(item_ids)):
        missing = sorted(set(item_ids) - set(items["item_id"]))
        raise KeyError(f"Unknown item(s) {missing[:5]} in data set '{dataset}'.")
    categories = sorted(ws.store.items(dataset)["category"].dropna().unique())
    params = run_params(engine, config, domain)
    todo = _todo(ws, dataset, items, params, config.force)
    return TextualizePlan(todo, len(items) - len(todo), categories, domain, params)


def textualize(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    item_ids: list[str] | None = None,
    config: TextualizeConfig | None = None,
    progress: Progress | None = None,
) -> TextualizeReport:
    """Describe, summarise and score every item of `dataset` (or `item_ids`) that is not done yet."""
    config = config or TextualizeConfig()
    work = plan(ws, engine, dataset, item_ids, config)
    todo, categories = work.todo, work.categories
    report = TextualizeReport(skipped=work.skipped)
    start = time.perf_counter()
    if progress:
        progress(0, len(todo), f"{len(todo)} items to textualize, {report.skipped} unchanged")
    chunks = work.chunks(config.batch_size)
    load = partial(load_batch, partial(_open_image, ws), engine, categories)
    # the next batch's images are decoded and read (colours, OCR, labels) while the LLM writes this batch's text
    with ThreadPoolExecutor(max_workers=1) as pool:
        submit = _run_now if config.serial_vision else pool.submit
        pending = submit(load, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            batch, images, facts, failed = pending.result()
            pending = submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            report.failed.extend(failed)  # one bad image is reported and skipped, the run goes on
            if batch:
                rows = textualize_rows(engine, dataset, batch, images, facts, work, config)
                write_rows(ws, *rows)
                report.done += len(batch)
            report.seconds = time.perf_counter() - start
            if progress:
                finished = report.done + len(report.failed)
                progress(finished, len(todo), f"{report.items_per_second:.2f} items/s")
    report.seconds = time.perf_counter() - start
    return report


def _run_now(fn, *args) -> Future:
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def load_batch(open_image: Callable[[dict], Image.Image | None], engine: Engine, categories: list[str], rows):
    """The batch's decodable rows, their images (None: no image), the engine's visual facts, and failures."""
    batch, images, failed = [], [], []
    for row in rows:
        try:  # decoded here, so a broken file fails for its own item, not inside the model batch
            images.append(open_image(row))
            batch.append(row)
        except BadImageError as exc:
            failed.append((row["item_id"], str(exc)))
    shown = [image for image in images if image is not None]
    facts = engine.visual_facts(shown, categories) if shown else None
    return batch, images, facts, failed


def textualize_rows(
    engine: Engine, dataset: str, batch: list[dict], images, facts, work: TextualizePlan, config: TextualizeConfig
) -> tuple[list[dict], list[dict]]:
    """One model batch's description and keyword rows (what `write_rows` stores)."""
    categories, domain, params = work.categories, work.domain, work.params
    contexts = [item_context(r) for r in batch]
    with_image = [i for i, image in enumerate(images) if image is not None]
    descriptions = {i: None for i in range(len(batch))}
    if with_image:
        shown, known = [images[i] for i in with_image], [contexts[i] for i in with_image]
        made = engine.describe(shown, known, categories, domain=domain, facts=facts)
        descriptions.update(zip(with_image, made, strict=True))
    texts = [d.text if d else "" for d in descriptions.values()]
    sources = [fused_source(c, t) for c, t in zip(contexts, texts, strict=True)]
    answers = engine.generate(
        [keyword_chat(s, domain) for s in sources],
        GenerationOptions(max_new_tokens=config.keyword_tokens, batch_size=config.batch_size),
        system=KEYWORDS.system_for(domain),
    )
    budget = engine.settings.keyword_budget
    keyword_sets = [
        build_facets(parse_keywords(a, budget), s, categories, budget) for a, s in zip(answers, sources, strict=True)
    ]
    rewards = keyword_rewards(engine, [k for k, _ in keyword_sets], sources, engine.settings, domain)

    describe_prov, keyword_prov = params["describe"], params["keywords"]
    desc_rows, kw_rows = [], []
    for i, row in enumerate(batch):
        d = descriptions[i]
        facts = [f.__dict__ for f in d.facts] if d else []
        c = contexts[i]  # every stored text carries its claims, checked against this item's catalog and image
        evidence = catalog_evidence(catalog_texts(c.title, c.category, c.text, c.attributes))
        keywords, facets = keyword_sets[i]
        desc_rows.append(
            {
                "dataset": dataset,
                "item_id": row["item_id"],
                "description": texts[i] or sources[i],
                "image_sha256": row["image_sha256"],
                "facts": json.dumps(facts),
                "grounding": check(texts[i] or sources[i], evidence, facts).to_json(),
                "engine": describe_prov["engine"],
                "model": describe_prov["model"] if d else "(no image: catalog text)",
                "prompt_version": describe_prov["prompt_version"],
                "params": json.dumps(describe_prov["params"]),
                "input_hash": row["input_hash"],
            }
        )
        r = rewards[i]
        kw_rows.append(
            {
                "dataset": dataset,
                "item_id": row["item_id"],
                "keywords": keywords,
                "facets": json.dumps(facets),
                "grounding": check(", ".join(keywords), evidence, facts).to_json(),
                "r_info": r.r_info,
                "r_recon": r.r_recon,
                "r_len": r.r_len,
                "reward": r.reward,
                "engine": keyword_prov["engine"],
                "model": keyword_prov["model"],
                "prompt_version": keyword_prov["prompt_version"],
                "params": json.dumps({**keyword_prov["params"], **params["rewards"]}),
                "input_hash": row["input_hash"],
            }
        )
    return desc_rows, kw_rows


def write_rows(ws: Workspace, desc_rows: list[dict], kw_rows: list[dict]) -> None:
    """Store description and keyword rows in one transaction (all of them or none)."""
    with ws.store.transaction() as tx:
        ws.store.write_textualization(tx, pd.DataFrame(desc_rows), pd.DataFrame(kw_rows))
