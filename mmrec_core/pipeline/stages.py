"""The whole pipeline of one data set in dependency order: what `mmrec pipeline` runs and the Overview shows.

Stages: textualize (items) -> profiles (users) -> graph (item graph and text vectors) -> models (the
trainable recommenders) -> eval (every model on the stored test candidates, and the two-stage protocol)
-> sft (optional, long: a LoRA adapter of the LLM). Each stage's own function skips what is already made
from the same inputs with the same settings (input hashes), so the pipeline can be stopped anywhere and
run again: it picks up where it was. `status` says for each stage whether it is done, stale (inputs or
settings changed since) or missing, and when and with what it was made.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.engines import Engine
from mmrec_core.scale.jobs import ScaleConfig
from mmrec_core.store.workspace import Workspace

STAGES = ("textualize", "profiles", "graph", "models", "eval", "sft")
OPTIONAL = ("sft",)  # run only when asked for: hours on a CPU
TRAINED = ("bprmf", "sasrec", "content-sasrec", "lightgcn")  # the models stage, cheap ones first
HELP = {
    "textualize": "item descriptions, keywords and their rewards",
    "profiles": "each customer's recurrent preference summary",
    "graph": "the refined item graph and item text vectors",
    "models": "BPR-MF, SASRec, content-SASRec and the item-graph LightGCN",
    "eval": "every model and the LLM on the test candidates; the two-stage protocol",
    "sft": "a LoRA adapter of the LLM on the task mix (optional)",
}


@dataclass
class StageStatus:
    stage: str
    state: str  # done | stale | missing | optional
    detail: str  # what exists, e.g. "562 of 562 items"
    made: str = ""  # when and with what (engine, model, version)


def _when(value) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _textualize_status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str) -> StageStatus:
    from mmrec_core.textualize.build import pending_items

    todo, total = pending_items(ws, engine, dataset)
    stored = ws.store.count("keywords", dataset, "item_id")
    state = "done" if todo == 0 else "stale" if stored else "missing"
    made = f"{_when(ws.store.newest_created('keywords', dataset))} with {engine.model_names().get('llm', '')}"
    return StageStatus("textualize", state, f"{total - todo} of {total} items up to date", made if stored else "")


def llm_subset(ws: Workspace, dataset: str, protocol_id: str, n: int | None) -> list[str] | None:
    """The test users the LLM stages cover (profiles, LLM eval) when `n` is given: the seeded draw `mmrec eval llm
    --users n` makes (`pick_users`), so profiles exist for exactly the users the LLM scores. None: every user."""
    if n is None:
        return None
    from mmrec_core.evaluate.llm import pick_users
    from mmrec_core.models.data import load_train_data

    return pick_users(load_train_data(ws.store, dataset, protocol_id).parts["test"].users, n)


def _profiles_status(
    ws: Workspace, engine: Engine, dataset: str, protocol_id: str, subset: list[str] | None = None
) -> StageStatus:
    from mmrec_core.data.splits import train_interactions
    from mmrec_core.profiles.prompts import PROFILE_FIRST

    blocks = ws.store.profile_blocks(dataset, protocol_id)
    final = blocks[blocks["is_final"]] if len(blocks) else blocks
    if subset is not None and len(final):
        final = final[final["user_id"].isin(subset)]
    users = train_interactions(ws.store, protocol_id)["user_id"].nunique() if subset is None else len(subset)
    current = final[final["prompt_version"] == PROFILE_FIRST.version] if len(final) else final
    newest_texts = ws.store.newest_created("keywords", dataset)
    fresh = len(current) == users and (newest_texts is None or current["created_at"].min() >= newest_texts)
    state = "done" if users and fresh else "stale" if len(final) else "missing"
    versions = ", ".join(sorted(final["prompt_version"].dropna().unique())) if len(final) else ""
    made = f"{_when(final['created_at'].max())}, {versions}" if len(final) else ""
    return StageStatus("profiles", state, f"{len(current)} of {users} customers ({PROFILE_FIRST.version})", made)


def _graph_status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str) -> StageStatus:
    from mmrec_core.graph.build import latest_graph_id

    graph_id = latest_graph_id(ws.store, dataset, protocol_id)
    made = ws.store.newest_created("graph_edges", dataset)
    texts = ws.store.newest_created("keywords", dataset)
    if graph_id is None:
        return StageStatus("graph", "missing", "no item graph")
    state = "done" if texts is None or made >= texts else "stale"
    return StageStatus("graph", state, graph_id, f"{_when(made)} with {engine.model_names().get('embedder', '')}")


def _model_inputs_time(ws: Workspace, dataset: str, protocol_id: str, method: str):
    """When the newest input a model reads besides the interactions was made (None: it reads none)."""
    vectors = {  # the embeddings each reads: item texts, photos (content-sasrec), profiles (lightgcn)
        "content-sasrec": ("item:text", "item:image"),
        "lightgcn": ("item:text", f"profile:{protocol_id}"),
    }
    tables = {"content-sasrec": ("embeddings",), "lightgcn": ("graph_edges", "embeddings", "profiles")}
    times = [ws.store.newest_created(t, dataset, kinds=vectors.get(method)) for t in tables.get(method, ())]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def trained_current(ws: Workspace, dataset: str, protocol_id: str, method: str) -> bool:
    """Whether `method` has a train run on the protocol with today's default settings, newer than its inputs."""
    from mmrec_core.models.registry import MODELS

    run = ws.store.latest_train_run(dataset, protocol_id, method)
    if run is None:
        return False
    config_type = MODELS[method][1]
    params, defaults = json.loads(run["params"] or "{}"), dataclasses.asdict(config_type())
    # a setting the run does not name came later: its field may say what runs did before it existed
    before = {f.name: f.metadata["before"] for f in dataclasses.fields(config_type) if "before" in f.metadata}
    same = all(params[k] == v if k in params else k in before and before[k] == v for k, v in defaults.items())
    inputs = _model_inputs_time(ws, dataset, protocol_id, method)
    return same and (inputs is None or run["finished_at"] >= inputs)


def _models_status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str) -> StageStatus:
    trained = [m for m in ws.store.trained_methods(dataset, protocol_id) if m in TRAINED]
    current = [m for m in TRAINED if trained_current(ws, dataset, protocol_id, m)]
    state = "done" if len(current) == len(TRAINED) else "stale" if trained else "missing"
    finished = [ws.store.latest_train_run(dataset, protocol_id, m)["finished_at"] for m in trained]
    made = _when(max(finished, default=None))
    return StageStatus("models", state, f"up to date: {', '.join(current) or 'none'}", made)


def _eval_status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, llm: bool = True) -> StageStatus:
    runs = ws.store.eval_runs(dataset, protocol_id)
    if runs.empty:
        return StageStatus("eval", "missing", "no eval runs")
    evaluated = runs.groupby("method")["finished_at"].max()
    # what `eval --all` runs: every trained model (each evaluated after its training), the training-free
    # baselines, and the zero-shot LLM (after the newest profiles, which its prompts read)
    inputs = {m: ws.store.latest_train_run(dataset, protocol_id, m) for m in TRAINED}
    wanted = {m: run["finished_at"] for m, run in inputs.items() if run is not None}
    wanted |= {"popularity": None, "repeat": None}
    if llm:
        wanted["llm-pointwise"] = ws.store.newest_created("profiles", dataset, protocol_id)
    behind = sorted(m for m, t in wanted.items() if m not in evaluated or (t is not None and evaluated[m] < t))
    detail = f"{runs['method'].nunique()} methods, {len(runs)} runs"
    detail += f"; to (re)evaluate: {', '.join(behind)}" if behind else ""
    return StageStatus("eval", "stale" if behind else "done", detail, _when(runs["finished_at"].max()))


def _sft_status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str) -> StageStatus:
    runs = ws.store.llm_train_runs(dataset)
    sft = runs[runs["method"] == "llm-sft"]
    if sft.empty:
        return StageStatus("sft", "optional", "no adapter (run with --with-sft)")
    return StageStatus("sft", "done", f"{len(sft)} adapter(s)", _when(sft["finished_at"].max()))


STATUS: dict[str, Callable[[Workspace, Engine, str, str], StageStatus]] = {
    "textualize": _textualize_status,
    "profiles": _profiles_status,
    "graph": _graph_status,
    "models": _models_status,
    "eval": _eval_status,
    "sft": _sft_status,
}


def status(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, llm_users: int | None = None) -> pd.DataFrame:
    """One row per stage: stage, state, detail, made, what it makes (`llm_users`: profiles of that subset only)."""
    subset = llm_subset(ws, dataset, protocol_id, llm_users)
    check = {**STATUS, "profiles": partial(_profiles_status, subset=subset)}
    rows = [dataclasses.asdict(check[s](ws, engine, dataset, protocol_id)) for s in STAGES]
    return pd.DataFrame(rows).assign(makes=[HELP[s] for s in STAGES])


def _run_models(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, progress: Progress | None) -> str:
    from mmrec_core.models.registry import train_model

    done = []
    for k, method in enumerate(TRAINED):
        if progress:
            progress(k, len(TRAINED), f"training {method}")
        if not trained_current(ws, dataset, protocol_id, method):
            train_model(ws, dataset, method, protocol_id)
            done.append(method)
    if progress:
        progress(len(TRAINED), len(TRAINED), "models trained")
    return f"trained {', '.join(done)}" if done else "every model up to date"


def _run_eval(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str,
    progress: Progress | None,
    llm: bool = True,
    llm_users: int | None = None,
    scale: ScaleConfig | None = None,
) -> str:
    from mmrec_core.engines import get_engine
    from mmrec_core.evaluate.eval_all import eval_all

    if _eval_status(ws, engine, dataset, protocol_id, llm).state == "done":
        return "every eval run up to date"

    def engine_for(adapter: str) -> Engine:  # zero-shot: the engine already loaded
        return get_engine(dataclasses.replace(engine.settings, adapter=adapter)) if adapter else engine

    scorer = None
    if scale and scale.backend == "ray":
        from mmrec_core.scale.scoring import ray_scorer

        scorer = ray_scorer(scale)
    runs = eval_all(ws, dataset, protocol_id, llm_users=llm_users, llm=llm, progress_for=lambda run: progress,
                    engine_for=engine_for, scorer=scorer)  # fmt: skip
    subset = f" (the LLM on {llm_users} seeded test users)" if llm and llm_users else ""
    return f"{len(runs)} eval runs" + ("" if llm else " (no LLM)") + subset


def _run_sft(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, progress: Progress | None) -> str:
    from mmrec_core.finetune.runs import train_config, train_llm

    if _sft_status(ws, engine, dataset, protocol_id).state == "done":
        return "an adapter exists"
    return f"adapter run {train_llm(ws, engine, 'sft', dataset, protocol_id, train_config('sft'), progress)}"


def _run_stage(
    stage: str,
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str,
    progress,
    llm: bool,
    llm_users=None,
    scale: ScaleConfig | None = None,
) -> str:
    if stage == "textualize" and scale and scale.backend == "ray":
        from mmrec_core.scale.textualize import textualize_on_ray

        return str(textualize_on_ray(ws, engine, dataset, None, None, scale, progress))
    if stage == "textualize":
        from mmrec_core.textualize.build import textualize

        return str(textualize(ws, engine, dataset, None, None, progress))
    if stage == "profiles":
        from mmrec_core.profiles.build import ProfileConfig, build_profiles

        config = ProfileConfig(users=llm_subset(ws, dataset, protocol_id, llm_users))
        return str(build_profiles(ws, engine, dataset, protocol_id, config, progress))
    if stage == "graph":
        from mmrec_core.graph.build import build_item_graph

        return str(build_item_graph(ws, engine, dataset, protocol_id, None, progress))
    if stage == "eval":
        return _run_eval(ws, engine, dataset, protocol_id, progress, llm, llm_users, scale)
    run = {"models": _run_models, "sft": _run_sft}[stage]
    return run(ws, engine, dataset, protocol_id, progress)


def select(start: str | None = None, until: str | None = None, with_sft: bool = False) -> list[str]:
    """The stages from `start` through `until` in order; the optional ones only when asked for."""
    for name in (start, until):
        if name is not None and name not in STAGES:
            raise ValueError(f"Unknown stage '{name}'; the stages are {', '.join(STAGES)}.")
    first, last = STAGES.index(start or STAGES[0]), STAGES.index(until or STAGES[-1])
    if first > last:
        raise ValueError(f"--from {start} comes after --until {until}; the order is {' -> '.join(STAGES)}.")
    asked = {until, start}
    return [s for s in STAGES[first : last + 1] if s not in OPTIONAL or with_sft or s in asked]


# What each stage's work is counted in, and how its time grows with that count: the cost table projects
# 10x and 100x from the measured rate with this exponent (the graph compares every item with every other).
WORK = {
    "textualize": ("items", 1),
    "profiles": ("block summaries", 1),
    "graph": ("items", 2),
    "models": ("training interactions", 1),
    "eval": ("test users", 1),
    "sft": ("adapters", 1),
}


def _work_done(ws: Workspace, stage: str, dataset: str, protocol_id: str) -> int:
    """A running count of the stage's work: its rows made so far, or the data's size for a whole build."""
    if stage == "textualize":
        return ws.store.count("keywords", dataset)  # one row per item textualized (again, when stale)
    if stage == "profiles":
        return ws.store.count("profiles", dataset)  # one row per block summary
    if stage == "graph":
        return ws.store.count("items", dataset)
    if stage == "models":
        from mmrec_core.data.splits import train_interactions

        return len(train_interactions(ws.store, protocol_id))
    if stage == "eval":
        protocols = ws.store.protocols(dataset).set_index("protocol_id")
        return int(protocols.at[protocol_id, "n_users"])
    return 1


def record_stage_cost(
    ws: Workspace, dataset: str, protocol_id: str, stage: str, summary: str, wall: float, cpu: float, work: int
) -> str:
    """A run of kind 'stage': the stage's wall and CPU seconds and how much work it did (the report's cost table)."""
    unit, exponent = WORK[stage]
    metrics = pd.DataFrame({"part": "all", "subset": "cost", "name": ["wall_s", "cpu_s", "work"],
                            "value": [wall, cpu, float(work)]})  # fmt: skip
    params = {"summary": summary, "unit": unit, "exponent": exponent}
    return ws.store.record_run(dataset, protocol_id, "stage", stage, params, None, metrics)


def run_pipeline(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str,
    stages: list[str],
    progress_for: Callable[[str], Progress | None] = lambda stage: None,
    done: Callable[[str, str, float], None] = lambda stage, summary, seconds: None,
    llm: bool = True,
    llm_users: int | None = None,
    scale: ScaleConfig | None = None,
) -> list[tuple[str, str, float]]:
    """Run `stages` in order (each skips what it already made); returns (stage, summary, seconds) per stage.

    `llm=False` leaves the LLM out of the eval stage (its scoring of every test user is the longest part).
    `llm_users=n`: profiles and the LLM's eval cover a seeded subset of n test users (`llm_subset`), the other
    models every user; the report shows every model on that subset too (a large catalog: MicroLens-50k).
    `scale`: with backend ray, textualization and the LLM's scoring run as Ray jobs (`scale/`).
    """
    out = []
    for stage in stages:
        # rows counted before and after for the stages that make rows; a whole build's work is the data's size,
        # unless its status says it was up to date (then it did nothing)
        counted = stage in ("textualize", "profiles")
        before = _work_done(ws, stage, dataset, protocol_id) if counted else 0
        up_to_date = not counted and STATUS[stage](ws, engine, dataset, protocol_id).state == "done"
        start, cpu = time.perf_counter(), time.process_time()  # process time: every thread of this process
        summary = _run_stage(stage, ws, engine, dataset, protocol_id, progress_for(stage), llm, llm_users, scale)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        work = 0 if up_to_date else _work_done(ws, stage, dataset, protocol_id) - before
        if work > 0:  # a stage that found everything up to date says nothing about its cost
            record_stage_cost(ws, dataset, protocol_id, stage, summary, wall, cpu, work)
        out.append((stage, summary, wall))
        done(*out[-1])
    return out


PIPELINE_JOB = "pipeline"


def start_pipeline(ws: Workspace, engine: Engine, dataset: str, protocol_id: str, stages: list[str]) -> str:
    """`run_pipeline` as a background job (the Overview's button); its progress names the running stage."""
    from mmrec_core.core import jobs

    def work(progress: Progress) -> str:
        def progress_for(stage: str) -> Progress:
            k = stages.index(stage) + 1
            return lambda done, total, message="": progress(done, total, f"[{k}/{len(stages)}] {stage}: {message}")

        out = run_pipeline(ws, engine, dataset, protocol_id, stages, progress_for)
        return "; ".join(f"{stage} ({seconds:.0f} s): {summary}" for stage, summary, seconds in out)

    return jobs.start_job(ws.store, PIPELINE_JOB, {"dataset": dataset, "protocol_id": protocol_id}, work)
