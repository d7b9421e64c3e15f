"""`mmrec eval llm`: the LLM recommender on a protocol's stored test candidates, beside the other models.

Every evaluated user (or a seeded subset, stated as such) is scored with the candidates stored in the
protocol (1 positive + n negatives, never re-drawn). Each user's scores are stored in `llm_scores`
with an input hash over the exact prompt, the candidates and the engine's provenance, in batches of
users per transaction: an interrupted run resumes where it stopped, and a re-run with the same
inputs only reads. Metrics come from the stored scores (HR@K, NDCG@K, MRR, AUC; listwise adds the
invalid-answer rate), seconds per user from the time each user took. The same users' candidates are
then scored by popularity, SASRec and the item-graph model where trained, for a fair comparison.

A user who cannot be scored (whatever the reason) is recorded with the reason and left out; the run goes
on. Its metrics then cover fewer users than asked for, which the run states (`failed_users` in its params,
`LLMEvalResult.failed`), and such a run counts as a subset: the leaderboard lists it apart. Only when
several users in a row fail (a broken engine, not one odd user) does the run stop; finished batches stay
stored and a re-run resumes there. Candidates whose text alone is over the prompt budget are cut to fit
(`recommend.prompt.fit_candidates`) and recorded (`truncated_items`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance, code_version
from mmrec_core.data.metrics import metrics_from_counts, sampled_ranks, summarize
from mmrec_core.engines.protocol import Engine
from mmrec_core.evaluate.offline import SAMPLED_KS, candidates_hash, metric_rows, ranking_metrics
from mmrec_core.models.data import load_train_data
from mmrec_core.models.registry import MODELS, TRAINING_FREE, load_trained
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import ListwiseAnswer, LLMRecommender, RecommendConfig, score_prompt
from mmrec_core.recommend.prompt import RecPrompt
from mmrec_core.store.runs import RANK_COLUMNS
from mmrec_core.store.workspace import Workspace, default_protocol

COMPARE_COLUMNS = ["HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR", "AUC"]
FAILURES_IN_A_ROW = 5  # this many users failing one after another: the engine is broken, stop (a re-run resumes)
FAILURES_STORED = 5  # failure reasons kept in a run's params (the count is always complete)


@dataclass
class ScoreLog:
    """What `score_users` could not do as asked: users it skipped and items whose text it cut."""

    failed: list[tuple[str, str]] = field(default_factory=list)  # (user id, reason), in scoring order
    truncated: dict[str, list[str]] = field(default_factory=dict)  # user id -> candidates cut to fit the budget

    def params(self) -> dict:
        """The part of a run's params that states it (empty when nothing failed or was cut)."""
        out: dict = {}
        if self.failed:
            out["failed_users"] = len(self.failed)
            out["failures"] = [{"user_id": u, "reason": r} for u, r in self.failed[:FAILURES_STORED]]
        if self.truncated:
            items = sorted({i for cut in self.truncated.values() for i in cut})
            out["truncated_items"] = items[:20]
            out["truncated_users"] = len(self.truncated)
        return out


# (ws, recommender, users, candidates_for, batch, progress, log) -> (stored rows, users scored now): `score_users`
Scorer = Callable[..., tuple[pd.DataFrame, int]]


@dataclass
class LLMEvalResult:
    run_id: str
    table: pd.DataFrame  # summarize(): rows all / no_repeat / repeat
    compare: pd.DataFrame  # the LLM and the other models on the same users and candidates
    per_user: pd.DataFrame  # user_id, metrics, valid, seconds (users that were scored)
    scored: int  # users scored by this call
    reused: int  # users read back from earlier (resumed) runs
    failed: list[tuple[str, str]] = field(default_factory=list)  # (user id, reason): left out of the metrics
    truncated: dict[str, list[str]] = field(default_factory=dict)  # user id -> candidates whose text was cut


def pick_users(users: list[str], n: int | None, seed: int = 0) -> list[str]:
    """All users, or a seeded random subset of n (in the protocol's order)."""
    if n is None or n >= len(users):
        return list(users)
    if n < 1:
        raise ValueError("--users must be at least 1.")
    keep = set(np.random.default_rng(seed).choice(len(users), size=n, replace=False).tolist())
    return [u for i, u in enumerate(users) if i in keep]


def evaluate_llm(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: RecommendConfig | None = None,
    n_users: int | None = None,
    batch: int = 8,
    progress: Progress | None = None,
    scorer: Scorer | None = None,
) -> LLMEvalResult:
    """Score the test candidates of all (or `n_users` seeded) evaluated users; record an eval run.

    `scorer`: who scores the users (default `score_users`, in this process; `scale.scoring.ray_scorer` on Ray).
    """
    config = config or RecommendConfig()
    protocol_id = default_protocol(ws, dataset, protocol_id)
    data = load_train_data(ws.store, dataset, protocol_id)
    builder = ContextBuilder.for_config(ws, dataset, protocol_id, config, data=data)
    if config.n_similar > 0 and builder.sasrec is None:
        raise KeyError(f"{builder.similar_note} (or leave similar customers out with --similar-users 0)")
    recommender = LLMRecommender(engine, builder, config)
    provenance = recommender.provenance()
    cand = data.parts["test"]
    asked = pick_users(cand.users, n_users)
    row_of = {u: r for r, u in enumerate(cand.users)}
    builder.prepare_similar(asked)
    log = ScoreLog()
    rows, scored = (scorer or score_users)(ws, recommender, asked, builder.candidates, batch, progress, log)
    failed = {u for u, _ in log.failed}
    users = [u for u in asked if u not in failed]  # the metrics cover these, and say so
    if not users:
        reasons = "; ".join(f"user {u}: {r}" for u, r in log.failed[:3])
        raise RuntimeError(f"No user could be scored ({len(log.failed)} failed), so no run is recorded: {reasons}")
    per_user = _per_user_metrics(rows)
    repeat = np.asarray([cand.is_repeat[row_of[u]] for u in users])
    cold = np.asarray([cand.is_cold[row_of[u]] for u in users])
    metrics = per_user.drop(columns=["user_id", "valid", "seconds", "prompt_tokens", *RANK_COLUMNS])
    table = summarize(metrics, repeat, cold)
    table["invalid_rate"] = 1.0 - per_user["valid"].mean() if config.mode == "listwise" else np.nan
    table["seconds_per_user"] = per_user["seconds"].mean()
    params = {
        "users": len(users),
        "subset": len(users) < len(cand.users),  # failed users make a subset too: ranked apart, never hidden
        "candidates_hash": candidates_hash(data, users),
        **log.params(),
    }
    run_id = _record(ws, dataset, protocol_id, config.mode, {**provenance, "run": params}, table, per_user)
    compare = compare_models(ws, data, users, table, config.mode)
    return LLMEvalResult(run_id, table, compare, per_user, scored, len(users) - scored, log.failed, log.truncated)


def failure_reason(exc: Exception) -> str:
    """One line on why a user failed: the exception's type and message, cut short."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class ScoreTask:
    """One user's prompt, ready to score: what a worker needs, and the key its scores are stored under."""

    user: str
    items: list[str]  # the candidates, in the protocol's order (the scores align with it)
    prompt: RecPrompt
    key: str  # input hash over the exact texts the model reads, the candidates and the provenance
    seconds: float  # assembling the prompt took this long (counted in the user's time)


def scored_by(recommender: LLMRecommender) -> dict:
    """The provenance scores depend on: how many rationales a run writes never changes a score, so runs that
    differ only there share their scores."""
    provenance = recommender.provenance()
    return {**provenance, "params": {k: v for k, v in provenance["params"].items() if k != "explain_top"}}


def prepare_task(recommender: LLMRecommender, user: str, items: list[str], by: dict) -> ScoreTask:
    """The user's prompt for `items` and its storage key (`by`: `scored_by(recommender)`)."""
    start = time.perf_counter()
    _, prompt = recommender.prepare(user, items)
    texts = [recommender.render(prompt.full(i)) for i in range(len(prompt.suffixes))]
    return ScoreTask(user, items, prompt, input_hash(texts, items, by), time.perf_counter() - start)


def score_row(
    recommender: LLMRecommender, task: ScoreTask, scores, answer: ListwiseAnswer | None, seconds: float
) -> dict:
    """The `llm_scores` row of a scored task (`seconds`: the model's time; the prompt's assembly is added)."""
    builder, config = recommender.builder, recommender.config
    return {
        "dataset": builder.dataset,
        "protocol_id": builder.protocol_id,
        "part": "test",
        "user_id": task.user,
        "mode": config.mode,
        "item_ids": task.items,
        "scores": np.asarray(scores, dtype=np.float32).astype(float).tolist(),
        "valid": answer.valid if answer else True,
        "answer": answer.raw if answer else None,
        "problem": answer.problem if answer else None,
        "prompt_tokens": recommender.count(task.prompt.full(0)),
        "seconds": task.seconds + seconds,
        **Provenance.of(recommender.provenance()).columns(),
        "input_hash": task.key,
    }


@dataclass
class UserTasks:
    """Prepares each user's `ScoreTask` and keeps the books both scorers share: the key each user's scores are
    stored under (`hashes`), the candidates cut to fit (`log.truncated`), and failures.

    A failure is recorded in `log` and the user left out (without a log it is raised); `FAILURES_IN_A_ROW`
    failures one after another raise (the engine, not a user, is broken): a success is reported with `done`.
    """

    recommender: LLMRecommender
    log: ScoreLog | None
    hashes: dict[str, str] = field(default_factory=dict)
    in_a_row: int = 0

    def __post_init__(self) -> None:
        self.by = scored_by(self.recommender)
        builder = self.recommender.builder
        self.where = f"{builder.dataset} / {builder.protocol_id}"

    def prepare(self, user: str, candidates_for: Callable[[str], list[str]]) -> ScoreTask | None:
        """The user's task, or None if building its prompt failed (recorded)."""
        try:
            return prepare_task(self.recommender, user, candidates_for(user), self.by)
        except Exception as exc:  # one user's failure (a prompt, the engine, an answer) must not end the run
            self.failed(user, exc)
            return None

    def done(self, task: ScoreTask) -> None:
        self.in_a_row = 0
        self.hashes[task.user] = task.key
        if task.prompt.trimmed.get("truncated") and self.log is not None:
            self.log.truncated[task.user] = list(task.prompt.trimmed["truncated"])

    def failed(self, user: str, exc: Exception) -> None:
        self.in_a_row += 1
        exc.add_note(f"while scoring user {user} of {self.where}")
        if self.log is None:
            raise exc
        self.log.failed.append((user, failure_reason(exc)))
        if self.in_a_row >= FAILURES_IN_A_ROW:
            exc.add_note(
                f"{self.in_a_row} users in a row failed: the engine looks broken, so the run stops here; the "
                "finished batches are stored, and a re-run resumes after them."
            )
            raise exc


def score_users(
    ws: Workspace,
    recommender: LLMRecommender,
    users: list[str],
    candidates_for: Callable[[str], list[str]],
    batch: int = 8,
    progress: Progress | None = None,
    log: ScoreLog | None = None,
) -> tuple[pd.DataFrame, int]:
    """The LLM's scores of `candidates_for(user)` for every user, stored in `llm_scores` in batches (one
    transaction each) and read back where the same prompt, candidates and provenance were scored before.

    With `log`, a user whose scoring fails is recorded there (user, reason) and left out, and candidates cut to
    fit the prompt budget are noted; `FAILURES_IN_A_ROW` failures one after another still stop the run (the
    engine, not a user, is broken). Without `log`, the first failure stops it, naming the user.

    Returns the stored rows of the users scored, in `users` order, and how many users this call scored.
    `scale.scoring.score_users_on_ray` does the same with Ray workers.
    """
    builder, config = recommender.builder, recommender.config
    stored = ws.store.llm_scores(builder.dataset, builder.protocol_id, config.mode).set_index("input_hash")
    tasks = UserTasks(recommender, log)
    pending: list[dict] = []
    scored = 0
    for n, user in enumerate(users, start=1):
        task = tasks.prepare(user, candidates_for)
        if task is not None and task.key in stored.index:
            tasks.done(task)
        elif task is not None:
            try:
                start = time.perf_counter()
                scores, answer = score_prompt(recommender.engine, recommender.system, config, task.prompt, task.items)
                pending.append(score_row(recommender, task, scores, answer, time.perf_counter() - start))
            except Exception as exc:
                tasks.failed(user, exc)
            else:
                tasks.done(task)
                scored += 1
        if len(pending) >= batch or (pending and n == len(users)):
            with ws.store.transaction() as tx:  # a batch of users is stored whole or not at all
                ws.store.write_llm_scores(tx, pd.DataFrame(pending))
            pending = []
        if progress:
            failed = f", {len(log.failed)} failed" if log and log.failed else ""
            progress(n, len(users), f"{scored} scored, {len(tasks.hashes) - scored} reused{failed}")
    return stored_rows(ws, recommender, users, tasks.hashes), scored


def stored_rows(ws: Workspace, recommender: LLMRecommender, users: list[str], hashes: dict[str, str]) -> pd.DataFrame:
    """The stored rows of `users` that were scored (`hashes`: user -> key), in `users` order."""
    config, builder = recommender.config, recommender.builder
    rows = ws.store.llm_scores(builder.dataset, builder.protocol_id, config.mode).set_index("input_hash")
    return rows.loc[[hashes[u] for u in users if u in hashes]]


def _per_user_metrics(rows: pd.DataFrame) -> pd.DataFrame:
    ranks = sampled_ranks(np.stack([np.asarray(s) for s in rows["scores"]]))
    per_user = pd.concat([metrics_from_counts(*ranks.T.to_numpy(), ks=SAMPLED_KS), ranks], axis=1)
    return per_user.assign(
        user_id=rows["user_id"].to_numpy(),
        valid=rows["valid"].to_numpy(),
        seconds=rows["seconds"].to_numpy(),
        prompt_tokens=rows["prompt_tokens"].to_numpy(),
    )


def _record(ws: Workspace, dataset: str, protocol_id: str, mode: str, provenance: dict, table, per_user) -> str:
    params = {
        **provenance["params"],
        "engine": provenance["engine"],
        "model": provenance["model"],
        "prompt_version": provenance["prompt_version"],
        **provenance["run"],
        "mean_prompt_tokens": float(per_user["prompt_tokens"].mean()),
        "code_version": code_version(),
    }
    metrics = metric_rows(table)
    prov = Provenance(provenance["engine"], provenance["model"], provenance["prompt_version"])
    return ws.store.record_run(dataset, protocol_id, "eval", f"llm-{mode}", params, None, metrics, per_user, prov)


def compare_models(ws: Workspace, data, users: list[str], llm_table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The LLM's figures beside every trained model (popularity fitted on the spot) on the same users.

    A model's seconds per user include scoring the whole catalog (its full-ranking metrics), an upper bound.
    """
    rows = {f"LLM {mode}": llm_table.loc["all", [*COMPARE_COLUMNS, "seconds_per_user"]]}
    cand = data.parts["test"]
    keep = np.isin(np.asarray(cand.users, dtype=object), np.asarray(users, dtype=object))
    for method in MODELS:
        try:
            model, _ = load_trained(ws, data.dataset, method, data.protocol_id)
        except KeyError:
            if method not in TRAINING_FREE:
                continue
            model = MODELS[method][0](MODELS[method][1]())
            model.fit(data)
        start = time.perf_counter()
        per_user = ranking_metrics(model, data, "test")  # every user, stored candidates and the full catalog
        seconds = (time.perf_counter() - start) / len(cand.users)
        rows[method] = pd.concat([per_user.loc[keep, COMPARE_COLUMNS].mean(), pd.Series({"seconds_per_user": seconds})])
    out = pd.DataFrame(rows).T[[*COMPARE_COLUMNS, "seconds_per_user"]]
    out["users"] = len(users)
    return out
