"""`mmrec eval --all`: every available model on one stored protocol, one eval run each.

Available means: popularity (fitted on the spot if needed), SASRec and the item-graph LightGCN where
trained on the protocol, the engine's LLM zero-shot, and the LLM with each finished adapter trained
on the protocol (SFT adapters score pointwise, GRPO adapters listwise, as they were trained), and
the two-stage whole-catalog protocol (the best trained model retrieves, the LLM zero-shot re-ranks
pointwise; all test users, so not with a user subset). LLM scores already stored for the same
inputs are read back, so a re-run only scores what is new. Each run stores its per-user ranks
(see `leaderboard`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmrec_core.core.progress import Progress
from mmrec_core.evaluate.leaderboard import run_label
from mmrec_core.evaluate.llm import Scorer
from mmrec_core.evaluate.offline import evaluate_model
from mmrec_core.evaluate.two_stage import TWO_STAGE_METHOD, evaluate_two_stage
from mmrec_core.models.data import load_train_data
from mmrec_core.models.registry import MODELS, TRAINING_FREE, load_trained
from mmrec_core.recommend.llm import MODES, RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol

ADAPTER_MODES = {"llm-sft": "pointwise", "llm-grpo": "listwise"}  # keyword adapters do not rank


@dataclass
class PlannedRun:
    """One model setting to evaluate."""

    label: str  # what the leaderboard calls it
    method: str  # popularity, sasrec, lightgcn, llm-pointwise, llm-listwise, two-stage
    adapter: str = ""  # LLM only: adapter folder ('' = zero-shot)


def plan(
    ws: Workspace,
    dataset: str,
    protocol_id: str,
    llm_modes: tuple[str, ...] = ("pointwise",),
    llm: bool = True,
    all_users: bool = True,
) -> list[PlannedRun]:
    """The model settings `eval --all` runs, in order (cheap ones first); `llm=False` leaves the LLM out,
    `all_users=False` (an LLM user subset) the two-stage protocol."""
    out = []
    for method in MODELS:
        try:
            load_trained(ws, dataset, method, protocol_id)
        except KeyError:
            if method not in TRAINING_FREE:  # popularity and repeat need no training run
                continue
        out.append(PlannedRun(run_label(method, {}), method))
    trained_any = any(run.method not in TRAINING_FREE for run in out)  # the two-stage needs a trained retriever
    if not llm:
        return out
    out += [PlannedRun(run_label(f"llm-{mode}", {}), f"llm-{mode}") for mode in llm_modes]
    trained = ws.store.train_runs(dataset, protocol_id).iloc[::-1]  # oldest first
    for row in trained[trained["method"].isin(list(ADAPTER_MODES))].itertuples():
        if Path(row.artifact_path).is_dir():
            method = f"llm-{ADAPTER_MODES[row.method]}"
            out.append(PlannedRun(run_label(method, {"adapter": row.artifact_path}), method, row.artifact_path))
    if trained_any and all_users and "pointwise" in llm_modes:
        out.append(PlannedRun(f"{TWO_STAGE_METHOD} (retrieve, llm-pointwise re-ranks)", TWO_STAGE_METHOD))
    return out


def eval_all(
    ws: Workspace,
    dataset: str,
    protocol_id: str | None = None,
    llm_modes: tuple[str, ...] = ("pointwise",),
    llm_users: int | None = None,
    llm: bool = True,
    progress_for: Callable[[PlannedRun], Progress | None] = lambda run: None,  # asked once per LLM run
    engine_for: Callable[[str], object] | None = None,
    scorer: Scorer | None = None,
) -> list[dict]:
    """Evaluate every planned model; returns one row per run: label, run_id, seconds (wall).

    `engine_for(adapter)` gives the LLM engine with that adapter ('' = none); by default the
    workspace's engine settings with the adapter replaced. `scorer`: who scores the LLM runs' users
    (`evaluate_llm`'s; default in this process).
    """
    from mmrec_core.engines import get_engine
    from mmrec_core.evaluate.llm import evaluate_llm

    unknown = set(llm_modes) - set(MODES)
    if unknown:
        raise ValueError(f"Unknown LLM mode(s) {', '.join(sorted(unknown))}; use {' or '.join(MODES)}.")
    engine_for = engine_for or (lambda adapter: get_engine(dataclasses.replace(ws.settings, adapter=adapter)))
    protocol_id = default_protocol(ws, dataset, protocol_id)
    data = load_train_data(ws.store, dataset, protocol_id)
    done = []
    for run in plan(ws, dataset, protocol_id, llm_modes, llm, llm_users is None):
        start = time.perf_counter()
        if run.method in MODELS:
            run_id, _ = evaluate_model(ws, dataset, run.method, protocol_id, data)
        elif run.method == TWO_STAGE_METHOD:
            rec_config = RecommendConfig(explain_top=0)
            result = evaluate_two_stage(ws, engine_for(""), dataset, protocol_id, None, rec_config, progress_for(run))
            run_id = result.run_id
        else:
            engine = engine_for(run.adapter)
            # no rationales (nothing here reads them), as `mmrec eval llm` runs it
            config = RecommendConfig(mode=run.method.removeprefix("llm-"), explain_top=0)
            result = evaluate_llm(
                ws, engine, dataset, protocol_id, config, llm_users, progress=progress_for(run), scorer=scorer
            )
            run_id = result.run_id
        done.append({"label": run.label, "run_id": run_id, "seconds": round(time.perf_counter() - start, 1)})
    return done
