"""LoRA SFT of the describer on the catalog's own human descriptions (H&M's `detail_desc`).

Input: the fact sheet the builtin describer writes from (`engines.builtin.sheet_prompt`: the template
description and its fact lines, from the image's visual facts and every catalog field but detail_desc,
`textualize.quality.withheld_context`); output: the article's detail_desc. Only articles of the stored item
split's TRAIN part are used (`data.splits.item_split`), so `mmrec eval-descriptions` judges the adapter on
articles it never saw; `valid_items` more training-part articles give the valid loss every `eval_steps`.
The image facts of the chosen articles are computed once and kept in the run folder (`facts.json`), so a
resumed run reads no image twice. The adapter is saved in fp16 (a few MB) beside its metadata.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.core.prompts import domain_for
from mmrec_core.data.splits import item_split
from mmrec_core.engines.builtin import TUNED, sheet_prompt
from mmrec_core.engines.protocol import Engine
from mmrec_core.engines.vision import Fact
from mmrec_core.finetune.common import (
    ProgressCallback,
    RunLogCallback,
    load_policy,
    run_folder,
    save_adapter,
    train_or_resume,
    trainer_args,
)
from mmrec_core.finetune.configs import DescriberConfig
from mmrec_core.grounding.factsheet import build_sheet
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.quality import WITHHELD, withheld_context


def describer_folder(ws: Workspace, dataset: str, base: str, config: DescriberConfig) -> Path:
    """The run folder: keyed by the item split, not a protocol (no interactions are read)."""
    return run_folder(ws, "describer", dataset, "items", base, config.key())


def _facts(ws: Workspace, engine: Engine, rows: list[dict], path: Path, progress: Progress | None) -> list[list]:
    """Each row's visual facts, from `path` where an earlier start computed them."""
    cache = json.loads(path.read_text()) if path.is_file() else {}
    todo = [r for r in rows if r["item_id"] not in cache]
    categories = sorted({str(r.get("category") or "") for r in rows} - {""})
    for first in range(0, len(todo), 16):
        batch = todo[first : first + 16]
        found = engine.visual_facts([ws.images.open(r["image_sha256"], r["ext"]) for r in batch], categories)
        for r, facts in zip(batch, found or [[] for _ in batch], strict=True):
            cache[r["item_id"]] = [asdict(f) for f in facts]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(json.dumps(cache))
        path.with_suffix(".tmp").replace(path)
        if progress:
            progress(len(rows) - len(todo) + first + len(batch), len(rows), "image facts")
    return [[Fact(**f) for f in cache[r["item_id"]]] for r in rows]


def describer_examples(
    ws: Workspace, engine: Engine, dataset: str, config: DescriberConfig, folder: Path, progress: Progress | None = None
) -> tuple[str, pd.DataFrame]:
    """(split id, rows: item_id, part 'fit' | 'valid', prompt, completion) from training-part articles."""
    split_id, parts = item_split(ws.store, dataset)
    system = TUNED.system_for(domain_for(ws.store.require_dataset(dataset)["format"]))
    items = ws.store.items_with_images(dataset).dropna(subset=["image_sha256"])
    items["attributes"] = [json.loads(a) if a else {} for a in items["attributes"]]
    usable = [
        parts.get(i) == "train" and bool(str(a.get(WITHHELD) or "").strip())
        for i, a in zip(items["item_id"], items["attributes"], strict=True)
    ]
    train = items[usable]
    if train.empty:
        raise ValueError(
            f"Data set '{dataset}' has no training articles with a {WITHHELD}; the describer learns from H&M's "
            "human descriptions (ingest ../shared/datasets/hm)."
        )
    chosen = train.sample(n=min(config.n_items + config.valid_items, len(train)), random_state=config.seed)
    rows = chosen.to_dict("records")
    facts = _facts(ws, engine, rows, folder / "facts.json", progress)
    n_valid = min(config.valid_items, len(rows) // 2)
    examples = []
    for k, (row, found) in enumerate(zip(rows, facts, strict=True)):
        item = withheld_context(row)
        sheet = build_sheet(item.title, item.category, item.text, item.attributes, found)
        examples.append({
            "item_id": row["item_id"], "part": "valid" if k < n_valid else "fit",
            "prompt": [{"role": "system", "content": system}, {"role": "user", "content": sheet_prompt(sheet)}],
            "completion": [{"role": "assistant", "content": str(row["attributes"][WITHHELD]).strip()}],
        })  # fmt: skip
    return split_id, pd.DataFrame(examples)


def train_describer(
    ws: Workspace, engine: Engine, dataset: str, config: DescriberConfig | None = None, progress: Progress | None = None
) -> str:
    """Train (resumable), save the fp16 adapter with its metadata, record a 'train' run; returns the run id."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    config = config or DescriberConfig()
    base = engine.llm_source()
    folder = describer_folder(ws, dataset, base, config)
    start = time.perf_counter()
    split_id, examples = describer_examples(ws, engine, dataset, config, folder, progress)
    model, tokenizer = load_policy(base)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    args = SFTConfig(
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, config.max_steps // 20),
        max_length=config.max_length,
        gradient_checkpointing=False,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        **trainer_args(folder, config.eval_steps, config.seed, qlora=False),
    )
    data = {part: Dataset.from_pandas(frame[["prompt", "completion"]], preserve_index=False)
            for part, frame in examples.groupby("part")}  # fmt: skip
    log = RunLogCallback(folder)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["fit"],
        eval_dataset=data.get("valid"),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[ProgressCallback(progress), log],
    )
    train_or_resume(trainer, folder, log, "Describer SFT")
    log.write(trainer.state)
    best = folder / "adapter"
    trainer.model.half().save_pretrained(best)  # fp16: the shipped adapter stays a few MB
    history = trainer.state.log_history
    valid = [{"step": r["step"], "valid_loss": r["eval_loss"]} for r in history if "eval_loss" in r]
    meta = {
        "base_model": base,
        "engine": engine.provenance("llm", TUNED.version)["model"],
        "prompt_version": TUNED.version,
        "dataset": dataset,
        "item_split": split_id,
        "method": "describer-lora",
        "precision": "float16",
        "config": asdict(config),
        "data": {"fit": int((examples["part"] == "fit").sum()), "valid": int((examples["part"] == "valid").sum())},
        "valid": valid,
        "best_step": trainer.state.global_step,  # the last: the valid loss is logged, not used to pick
        "best_valid_loss": valid[-1]["valid_loss"] if valid else None,
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": trainer.state.global_step,
        "log": [r for r in history if "loss" in r or "eval_loss" in r],
    }
    return save_adapter(ws, dataset, None, "llm-describer", best, meta)
