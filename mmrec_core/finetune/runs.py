"""Training runs of the LLM as one API for the CLI and the Train page: configs, start, folders, adapters, curves.

`train_config` turns flat options (CLI flags, page fields) into a trainer's config, so the CLI and the
app train the same thing for the same settings and land in the same run folder (and resume each other).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec_core.core.options import build, defaults
from mmrec_core.core.progress import Progress
from mmrec_core.engines.protocol import Engine
from mmrec_core.finetune import LLM_METHODS
from mmrec_core.finetune.common import read_log, request_stop, run_folder
from mmrec_core.finetune.configs import TRAINERS, TrainConfig
from mmrec_core.store.workspace import Workspace, default_protocol

METHOD_NAMES = {"sft": "llm-sft", "grpo": "llm-grpo", "keywords": "llm-keywords", "describer": "llm-describer"}


def train_config(method: str, **options: Any) -> TrainConfig:
    """The run config of `method` from flat options (CLI flags, Train page fields; None = the default).

    Option names are `core.options` names (`lr`, `steps`, `examples`, ...; dashes or underscores).
    Given `lora_r` alone, `lora_alpha` follows as 2 x r (the usual scaling). An option the method
    does not have is an error, so a flag meant for another trainer never passes silently.
    """
    if method not in TRAINERS:
        raise ValueError(f"Unknown training method '{method}'; use one of {', '.join(LLM_METHODS)}.")
    given = {k.replace("_", "-"): v for k, v in options.items() if v is not None}
    if "lora-r" in given and "lora-alpha" not in given:
        given["lora-alpha"] = 2 * int(given["lora-r"])
    unknown = sorted(set(given) - set(defaults(TRAINERS[method])))
    if unknown:
        raise ValueError(f"{method} has no setting {', '.join('--' + u for u in unknown)}.")
    return build(TRAINERS[method], given)


def train_llm(
    ws: Workspace,
    engine: Engine,
    method: str,
    dataset: str,
    protocol_id: str | None,
    config: TrainConfig,
    progress: Progress | None = None,
) -> str:
    """Run one LLM trainer; returns the 'train' run id (raises JobStopped when stopped on request)."""
    from mmrec_core.finetune.describer import train_describer
    from mmrec_core.finetune.grpo import train_grpo
    from mmrec_core.finetune.keywords_rl import train_keywords
    from mmrec_core.finetune.sft import train_sft

    if method == "keywords":
        return train_keywords(ws, engine, dataset, config, progress)
    if method == "describer":
        return train_describer(ws, engine, dataset, config, progress)
    trainer = {"sft": train_sft, "grpo": train_grpo}[method]
    return trainer(ws, engine, dataset, protocol_id, config, progress)


def folder_of(
    ws: Workspace, engine: Engine, method: str, dataset: str, protocol_id: str | None, config: TrainConfig
) -> Path:
    """Where this run keeps checkpoints, the live log and the adapter (what Stop and the curves look at)."""
    from mmrec_core.finetune.describer import describer_folder
    from mmrec_core.finetune.keywords_rl import keywords_folder

    if method == "keywords":
        return keywords_folder(ws, dataset, engine.llm_source(), config)
    if method == "describer":
        return describer_folder(ws, dataset, engine.llm_source(), config)
    protocol_id = default_protocol(ws, dataset, protocol_id)
    return run_folder(ws, method, dataset, protocol_id, engine.llm_source(), config.key())


def start_training(
    ws: Workspace, engine: Engine, method: str, dataset: str, config: TrainConfig, protocol_id: str | None = None
) -> str:
    """Start `method` as a background job (jobs.py); returns the job id. Same settings again = resume."""
    from dataclasses import asdict

    from mmrec_core.core import jobs

    folder = folder_of(ws, engine, method, dataset, protocol_id, config)
    params = {"dataset": dataset, "method": method, "folder": str(folder), "config": asdict(config)}
    return jobs.start_job(
        ws.store, "train", params, lambda p: train_llm(ws, engine, method, dataset, protocol_id, config, p)
    )


def stop_training(folder: str | Path, finish: bool = False) -> None:
    """Ask the run in `folder` to save a checkpoint and stop at the end of its current step; with `finish`
    the run ends there for good and keeps its best adapter (when none is running: at its next start)."""
    request_stop(Path(folder), finish)


def has_checkpoint(folder: str | Path) -> bool:
    checkpoints = Path(folder) / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))


def adapters(ws: Workspace, dataset: str) -> pd.DataFrame:
    """Finished LLM training runs of a data set, newest first: run_id, method, adapter folder, best valid, time."""
    rows = ws.store.llm_train_runs(dataset)
    params = [json.loads(p) for p in rows.pop("params")]
    rows["steps"] = [p.get("steps") for p in params]
    rows["best"] = [p.get("best_valid_HR@5", p.get("best_valid_reward", p.get("best_valid_loss"))) for p in params]
    rows["seconds"] = [p.get("train_seconds") for p in params]
    on_disk = rows["adapter"].map(lambda a: Path(a).is_dir()).astype(bool)
    return rows.loc[on_disk].reset_index(drop=True)


def curves(folder: str | Path) -> pd.DataFrame:
    """The live log in long form (step, metric, value) for plotting; valid checks are metrics `valid_*`."""
    rows = [
        {"step": r["step"], "metric": k, "value": float(v)}
        for r in read_log(Path(folder))
        for k, v in r.items()
        if k != "step" and isinstance(v, int | float) and "step" in r
    ]
    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def warnings_of(folder: str | Path) -> list[str]:
    return [r["warning"] for r in read_log(Path(folder)) if "warning" in r]


def panel_of(metric: str) -> str | None:
    """Which chart a logged metric belongs on (None: not drawn, e.g. grad norms and clip ratios)."""
    if metric == "loss":
        return "loss"
    if metric == "reward" or (metric.startswith("rewards/") and metric.endswith("/mean")):
        return "rewards"
    if metric in ("completions/mean_length", "valid_answers"):
        return "completions"
    if metric.startswith("valid_"):
        return "valid"
    return None


def latest_training(ws: Workspace, dataset: str) -> dict | None:
    """The newest training job of a data set (any status) with its run `folder`, or None."""
    from mmrec_core.core import jobs

    job = jobs.latest_job(ws.store, "train", dataset=dataset)
    return None if job is None else {**job, "folder": job["params"]["folder"]}
