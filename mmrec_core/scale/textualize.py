"""`mmrec textualize DATASET --backend ray`: stage 1 as a Ray Data job, one shard per model batch.

The driver plans the run exactly as `textualize.build.textualize` does (the same todo, cut into the same
model batches), writes each batch with its image bytes as a Parquet shard, and the actors describe, summarise
and score their shards with `textualize_rows`: so every item gets the texts the single-process run would
give it. The results are stored in one transaction at the end; an interrupted job resumes by shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.engines import Engine
from mmrec_core.scale.jobs import ScaleConfig, ShardJob, ShardWorker, require_ray, run_job
from mmrec_core.store.images import BadImageError, decode_stored_bytes
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.build import (
    TextualizeConfig,
    TextualizePlan,
    TextualizeReport,
    load_batch,
    plan,
    textualize_rows,
    write_rows,
)


class TextualizeWorker(ShardWorker):
    """Describes, summarises and scores one model batch of items per shard."""

    def setup(self, dataset: str, work: TextualizePlan, config: TextualizeConfig, limits) -> None:
        self.dataset, self.work, self.config, self.limits = dataset, work, config, limits

    def _open(self, row: dict):
        return decode_stored_bytes(row["image"], row["image_name"], self.limits) if row["image"] is not None else None

    def process(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        rows = frame.drop(columns=["key"]).to_dict("records")
        batch, images, facts, failed = load_batch(self._open, self.engine, self.work.categories, rows)
        made = textualize_rows(self.engine, self.dataset, batch, images, facts, self.work, self.config)
        desc, kw = made if batch else ([], [])
        return {
            "descriptions": pd.DataFrame(desc),
            "keywords": pd.DataFrame(kw),
            "failed": pd.DataFrame(failed, columns=["id", "reason"]),
        }


def textualize_on_ray(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    item_ids: list[str] | None = None,
    config: TextualizeConfig | None = None,
    scale: ScaleConfig | None = None,
    progress: Progress | None = None,
    make_engine: Callable[[], Engine] | None = None,
) -> TextualizeReport:
    """`textualize` with Ray actors, each with its own engine from `make_engine` (default: this engine's class with
    its settings; the class must be importable on every node)."""
    require_ray()  # before any work: without Ray, say how to install it
    config, scale = config or TextualizeConfig(), scale or ScaleConfig(backend="ray")
    work = plan(ws, engine, dataset, item_ids, config)
    report = TextualizeReport(skipped=work.skipped)
    start = time.perf_counter()
    chunks = []
    for chunk in work.chunks(config.batch_size):
        present = []
        for row in chunk:  # a missing file fails here, as it would when the local run opens it
            try:
                row["image_name"] = str(ws.images.stored_path(row["image_sha256"], row["ext"])) if row.get(
                    "image_sha256"
                ) else None  # fmt: skip
                present.append(row)
            except BadImageError as exc:
                report.failed.append((row["item_id"], str(exc)))
        if present:
            chunks.append(present)
    job = ShardJob.prepare(
        scale.jobs_dir(ws.settings.data_dir),
        "textualize",
        dataset,
        {"params": work.params, "batch_size": config.batch_size},
        [[r["input_hash"] for r in chunk] for chunk in chunks],
        partial(_shard, ws, chunks),
    )
    make_engine = make_engine or partial(type(engine), engine.settings)
    params = {"dataset": dataset, "work": replace(work, todo=[]), "config": config, "limits": ws.images.limits}
    run_job(job, TextualizeWorker, make_engine, scale, params, progress, unit="items")
    descriptions, keywords = job.results("descriptions"), job.results("keywords")
    if len(keywords):
        keywords["keywords"] = keywords["keywords"].map(list)
        write_rows(ws, descriptions, keywords)  # every shard's texts in one transaction
    report.failed.extend(job.results("failed").itertuples(index=False, name=None))
    report.done = len(keywords)
    report.seconds = time.perf_counter() - start
    job.remove()
    return report


def _shard(ws: Workspace, chunks: list[list[dict]], i: int) -> pd.DataFrame:
    """Shard i: its items' rows, keyed by input hash, with their images' bytes (checked at ingest; decoded by the
    worker, where a broken file fails for its own item)."""
    rows = [
        {**row, "key": row["input_hash"], "image": Path(row["image_name"]).read_bytes() if row["image_name"] else None}
        for row in chunks[i]
    ]
    return pd.DataFrame(rows)
