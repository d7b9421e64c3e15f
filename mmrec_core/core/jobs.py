"""Background jobs: long work (textualization, training, evaluation) runs in a thread and reports to the DB.

Why: Streamlit reruns a page's script on every click, so work that takes minutes cannot live in a
script run. `start_job` runs the work in a daemon thread that never touches Streamlit; the work
reports through a `progress(done, total, message)` callback, which writes the `jobs` table. Pages
poll that table (a plain rerun shows the current state), the CLI and tests call `wait`.

Each thread uses its own DuckDB cursor (`Store.cursor()` is per thread). DuckDB lets only one
process open the file, so a row still 'running' that no thread of this process owns was left by a
process that died: it reads as 'interrupted' (and `mark_interrupted` writes that down).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from mmrec_core.core.progress import Progress


class Store(Protocol):
    """What the runner needs from storage (`store.Store` has it: `store/jobs.py`)."""

    def insert_job(self, job_id: str, kind: str, params: dict) -> None: ...
    def update_job(self, job_id: str, **values: Any) -> None: ...
    def job_rows(self, job_id: str) -> pd.DataFrame: ...
    def recent_job_rows(self, kind: str | None, limit: int) -> pd.DataFrame: ...
    def mark_jobs_interrupted(self, live: list[str], error: str) -> int: ...


INTERRUPTED = "The process running this job stopped before it finished; start it again (finished work is kept)."

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """Raised by work that stopped on request (e.g. a training run's Stop button): status 'stopped', not failed."""


_live: set[str] = set()  # ids of jobs whose thread runs in this process
_live_lock = threading.Lock()


def start_job(store: Store, kind: str, params: dict, work: Callable[[Progress], Any]) -> str:
    """Record a 'running' job, run `work(progress)` in a daemon thread, and return the job id at once."""
    job_id = f"{kind}-{uuid.uuid4().hex[:12]}"
    with _live_lock:  # live before its row exists, so no reader ever sees it 'running' without a thread
        _live.add(job_id)
    try:
        store.insert_job(job_id, kind, params)
    except BaseException:
        with _live_lock:
            _live.discard(job_id)
        raise
    threading.Thread(target=_run, args=(store, job_id, work), name=f"job-{job_id}", daemon=True).start()
    return job_id


def _run(store: Store, job_id: str, work: Callable[[Progress], Any]) -> None:
    def progress(done: int, total: int | None, message: str = "") -> None:
        store.update_job(job_id, done=done, total=total, message=message)

    try:
        try:
            result = work(progress)
        except JobStopped as exc:
            store.update_job(job_id, status="stopped", message=str(exc))
        except Exception as exc:  # any failure of the work is the job's result, shown to the user
            log.exception("job %s failed", job_id)
            store.update_job(job_id, status="failed", error=_one_line(exc))
        else:
            store.update_job(job_id, status="done", message=str(result))
    except Exception:  # the store itself went away (closed at shutdown): nothing left to report to
        log.exception("job %s could not record its result", job_id)
    finally:
        with _live_lock:
            _live.discard(job_id)


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError quotes its text
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first or type(exc).__name__


def _live_now() -> set[str]:
    # Taken BEFORE reading rows: a thread records its final status before leaving `_live`, so a job
    # missing from this snapshot but 'running' in rows read afterwards really has no thread.
    with _live_lock:
        return set(_live)


def _with_liveness(rows: pd.DataFrame, live: set[str]) -> pd.DataFrame:
    """Parse params, mark orphaned 'running' rows as interrupted, and add elapsed seconds and items/s."""
    rows = rows.copy()
    rows["params"] = [json.loads(p) if isinstance(p, str) else (p or {}) for p in rows["params"]]
    orphaned = (rows["status"] == "running") & ~rows["job_id"].isin(live)
    rows.loc[orphaned, "status"] = "interrupted"
    rows.loc[orphaned & rows["error"].isna(), "error"] = INTERRUPTED
    elapsed = (rows["updated_at"] - rows["created_at"]).dt.total_seconds()
    rows["elapsed_s"] = elapsed
    rows["items_per_s"] = (rows["done"] / elapsed).where(elapsed > 0, 0.0)
    return rows


def job(store: Store, job_id: str) -> dict:
    """One job's row: status (running, done, stopped, failed, interrupted), done, total, message, error, params."""
    live = _live_now()
    rows = store.job_rows(job_id)
    if rows.empty:
        raise KeyError(f"Unknown job '{job_id}'.")
    row = _with_liveness(rows, live).iloc[0].to_dict()
    # plain Python values: None (not NaN) where nothing was reported yet, counts as int
    row = {k: None if not isinstance(v, dict) and pd.isna(v) else v for k, v in row.items()}
    return {**row, "done": int(row["done"]), "total": None if row["total"] is None else int(row["total"])}


def wait(store: Store, job_id: str, timeout: float, poll: float = 0.1) -> dict:
    """Block until the job stops running (for tests and the CLI); TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (row := job(store, job_id))["status"] == "running":
        if time.monotonic() > deadline:
            raise TimeoutError(f"Job {job_id} still running after {timeout:g} s ({row['done']}/{row['total']}).")
        time.sleep(poll)
    return row


def recent_jobs(store: Store, kind: str | None = None, limit: int = 10) -> pd.DataFrame:
    """The newest jobs first (of one kind, or all), with params parsed into dicts."""
    live = _live_now()
    rows = store.recent_job_rows(kind, limit)
    return _with_liveness(rows, live)


def latest_job(store: Store, kind: str, **params: Any) -> dict | None:
    """The newest job of `kind` whose params include `params` (e.g. dataset="sample"), or None."""
    recent = recent_jobs(store, kind, limit=50)
    for job_id, job_params in zip(recent["job_id"], recent["params"], strict=True):
        if all(job_params.get(k) == v for k, v in params.items()):
            return job(store, job_id)
    return None


def mark_interrupted(store: Store) -> int:
    """Write 'interrupted' on jobs left 'running' by a process that died; returns how many. Safe at any time."""
    with _live_lock:
        live = sorted(_live)
    return store.mark_jobs_interrupted(live, INTERRUPTED)
