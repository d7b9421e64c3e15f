"""`mmrec eval llm DATASET --backend ray`: bulk LLM scoring as a Ray Data job, groups of users per shard.

The driver builds every user's prompt as the single-process run does (`evaluate.llm.prepare_task`: the same
context, candidates, budget and storage key), so users already scored with the same inputs are read back and
only the others are shipped. The actors make the one model call (`recommend.llm.score_prompt`); the driver
turns what comes back into `llm_scores` rows and stores them in one transaction, then computes the metrics as
the single-process run does. A user whose scoring fails is recorded and left out; `FAILURES_IN_A_ROW` in one
shard stop the job (a broken engine), and a re-run resumes by shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.engines import Engine
from mmrec_core.evaluate.llm import (
    FAILURES_IN_A_ROW,
    ScoreLog,
    Scorer,
    ScoreTask,
    UserTasks,
    failure_reason,
    score_row,
    stored_rows,
)
from mmrec_core.recommend.llm import ListwiseAnswer, LLMRecommender, RecommendConfig, score_prompt
from mmrec_core.recommend.prompt import RecPrompt
from mmrec_core.scale.jobs import ScaleConfig, ShardJob, ShardWorker, require_ray, run_job
from mmrec_core.store.workspace import Workspace

USERS_PER_SHARD = 16


class ScoreWorker(ShardWorker):
    """Scores the candidates of a shard's users, one model call per user, as `LLMRecommender.recommend` does."""

    def setup(self, system: str, config: RecommendConfig) -> None:
        self.system, self.config = system, config

    def process(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        rows, failed, in_a_row = [], [], 0
        for task in frame.to_dict("records"):
            prompt = RecPrompt(task["prefix"], list(task["suffixes"]), list(task["order"]))
            start = time.perf_counter()
            try:
                scores, answer = score_prompt(self.engine, self.system, self.config, prompt, list(task["item_ids"]))
            except Exception as exc:  # one user's failure is recorded; several in a row: the engine is broken
                in_a_row += 1
                if in_a_row >= FAILURES_IN_A_ROW:
                    raise
                failed.append((task["user_id"], failure_reason(exc)))
                continue
            in_a_row = 0
            rows.append(
                {
                    "key": task["key"],
                    "scores": np.asarray(scores, dtype=np.float32).astype(float).tolist(),
                    "valid": answer.valid if answer else True,
                    "answer": answer.raw if answer else None,
                    "problem": answer.problem if answer else None,
                    "seconds": time.perf_counter() - start,
                }
            )
        return {"scores": pd.DataFrame(rows), "failed": pd.DataFrame(failed, columns=["id", "reason"])}


def score_users_on_ray(
    ws: Workspace,
    recommender: LLMRecommender,
    users: list[str],
    candidates_for: Callable[[str], list[str]],
    batch: int = 8,
    progress: Progress | None = None,
    log: ScoreLog | None = None,
    *,
    scale: ScaleConfig,
    make_engine: Callable[[], Engine] | None = None,
) -> tuple[pd.DataFrame, int]:
    """`evaluate.llm.score_users` with Ray actors: the same rows and return value (`batch` is not used: the rows
    are stored in one transaction once every shard is back)."""
    require_ray()  # before any work: without Ray, say how to install it
    builder, config = recommender.builder, recommender.config
    stored = ws.store.llm_scores(builder.dataset, builder.protocol_id, config.mode).set_index("input_hash")
    books = UserTasks(recommender, log)  # scoring failures are counted in a row within each shard, by its actor
    tasks: list[ScoreTask] = []
    for n, user in enumerate(users, start=1):
        task = books.prepare(user, candidates_for)
        if task is not None:
            books.done(task)
            if task.key not in stored.index:
                tasks.append(task)
        if progress and n % 50 == 0:
            progress(0, len(users), f"prompts for {n} of {len(users)} users")
    groups = [tasks[first : first + USERS_PER_SHARD] for first in range(0, len(tasks), USERS_PER_SHARD)]
    job = ShardJob.prepare(
        scale.jobs_dir(ws.settings.data_dir),
        f"score-{config.mode}",
        builder.dataset,
        {"scored_by": books.by, "protocol": builder.protocol_id},
        [[t.key for t in group] for group in groups],
        lambda i: pd.DataFrame([_shard_row(t) for t in groups[i]]),
    )
    make_engine = make_engine or partial(type(recommender.engine), recommender.engine.settings)
    params = {"system": recommender.system, "config": config}
    run_job(job, ScoreWorker, make_engine, scale, params, progress, unit="users")
    by_key = {t.key: t for t in tasks}
    rows = []
    for result in job.results("scores").to_dict("records"):
        task = by_key[result["key"]]
        answer = None
        if config.mode == "listwise":  # what the stored row needs of the answer (its ranking is in the scores)
            answer = ListwiseAnswer(bool(result["valid"]), [], "", result["problem"] or "", result["answer"] or "")
        rows.append(score_row(recommender, task, result["scores"], answer, result["seconds"]))
    if rows:
        with ws.store.transaction() as tx:  # every shard's users at once: all stored or none
            ws.store.write_llm_scores(tx, pd.DataFrame(rows))
    for user, reason in job.results("failed").itertuples(index=False, name=None):
        if log is None:
            raise RuntimeError(f"Scoring user {user} failed on a Ray worker: {reason}")
        log.failed.append((user, reason))
        books.hashes.pop(user, None)
    job.remove()
    return stored_rows(ws, recommender, users, books.hashes), len(rows)


def _shard_row(task: ScoreTask) -> dict:
    p = task.prompt
    return {"key": task.key, "user_id": task.user, "item_ids": task.items, "prefix": p.prefix,
            "suffixes": p.suffixes, "order": p.order}  # fmt: skip


def ray_scorer(scale: ScaleConfig, make_engine: Callable[[], Engine] | None = None) -> Scorer:
    """`evaluate_llm`'s scorer that runs on Ray."""
    return partial(score_users_on_ray, scale=scale, make_engine=make_engine)
