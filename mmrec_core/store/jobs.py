"""Named queries on the jobs table: what background work reports (mixed into `Store`)."""

from __future__ import annotations

import json

import pandas as pd

# Columns a running job may update (its progress and result); anything else is refused.
_JOB_FIELDS = ("status", "done", "total", "message", "error")


class JobQueries:
    """Background jobs; uses the `Store` connection."""

    def insert_job(self, job_id: str, kind: str, params: dict) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (job_id, kind, status, params, updated_at) "
                "VALUES (?, ?, 'running', ?, current_timestamp)",
                [job_id, kind, json.dumps(params, default=str)],
            )

    def update_job(self, job_id: str, **values) -> None:
        bad = set(values) - set(_JOB_FIELDS)
        if bad:
            raise ValueError(f"Not a job field: {sorted(bad)}.")
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.transaction() as tx:
            tx.execute(
                f"UPDATE jobs SET {assignments}, updated_at = current_timestamp WHERE job_id = ?",
                [*values.values(), job_id],
            )

    def job_rows(self, job_id: str) -> pd.DataFrame:
        return self.sql_df("SELECT * FROM jobs WHERE job_id = ?", [job_id])

    def recent_job_rows(self, kind: str | None, limit: int) -> pd.DataFrame:
        return self.sql_df(
            "SELECT * FROM jobs WHERE ? IS NULL OR kind = ? ORDER BY created_at DESC, job_id LIMIT ?",
            [kind, kind, limit],
        )

    def mark_jobs_interrupted(self, live: list[str], error: str) -> int:
        """Jobs still 'running' whose id is not in `live` become 'interrupted'; returns how many."""
        with self.transaction() as tx:
            return tx.execute(
                "UPDATE jobs SET status = 'interrupted', error = ?, updated_at = current_timestamp "
                "WHERE status = 'running' AND NOT list_contains(?, job_id)",
                [error, live],
            ).fetchone()[0]
