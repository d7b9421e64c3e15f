"""Named queries on runs (train and eval), their metrics and per-user ranks (mixed into `Store`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.provenance import Provenance
from mmrec_core.store.rows import insert_frame

RANK_COLUMNS = ["greater", "ties", "competitors"]  # a user's positive among their candidates in one run
LLM_TRAIN_METHODS = ("llm-sft", "llm-grpo", "llm-keywords", "llm-describer")


class RunQueries:
    """Runs, metrics and user_ranks; uses the `Store` connection."""

    def record_run(
        self,
        dataset: str,
        protocol_id: str | None,
        kind: str,
        method: str,
        params: dict,
        artifact: Path | None,
        metrics: pd.DataFrame | None = None,
        ranks: pd.DataFrame | None = None,
        provenance: Provenance | None = None,
    ) -> str:
        """Store a run, its metrics and (eval runs) each user's rank counts (user_id + RANK_COLUMNS) at once.

        `provenance` names the engine and model that made the run; without it the run is a torch
        model of this project (popularity, SASRec, LightGCN) and the model is the method.
        """
        prov = provenance or Provenance("torch", method)
        run_id = f"{kind}-{method}-{uuid.uuid4().hex[:10]}"
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO runs (run_id, dataset, protocol_id, kind, method, status, artifact_path, finished_at, "
                "engine, model, prompt_version, params, input_hash) "
                "VALUES (?, ?, ?, ?, ?, 'done', ?, current_timestamp, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    dataset,
                    protocol_id,
                    kind,
                    method,
                    str(artifact) if artifact else None,
                    prov.engine,
                    prov.model,
                    prov.prompt_version,
                    json.dumps(params, default=str),
                    input_hash([protocol_id, method, params]),
                ],
            )
            if metrics is not None:
                columns = ["run_id", "part", "subset", "name", "value"]
                insert_frame(tx, "metrics", metrics.assign(run_id=run_id)[columns])
            if ranks is not None:
                insert_frame(tx, "user_ranks", ranks[["user_id", *RANK_COLUMNS]].assign(run_id=run_id))
        return run_id

    def run(self, run_id: str) -> dict:
        """One run's row (params still JSON text); KeyError naming the run if there is none."""
        rows = self.sql_df("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if rows.empty:
            raise KeyError(f"Unknown run '{run_id}'.")
        return rows.iloc[0].to_dict()

    def runs_by_id(self, run_ids: list[str]) -> pd.DataFrame:
        return self.sql_df("SELECT * FROM runs WHERE list_contains(?, run_id)", [list(run_ids)])

    def latest_train_run(self, dataset: str, protocol_id: str, method: str) -> dict | None:
        """The newest 'train' run of `method` on this protocol (run_id, artifact_path, ...), or None."""
        rows = self.sql_df(
            "SELECT * FROM runs WHERE dataset = ? AND protocol_id = ? AND kind = 'train' AND method = ? "
            "ORDER BY finished_at DESC LIMIT 1",
            [dataset, protocol_id, method],
        )
        return None if rows.empty else rows.iloc[0].to_dict()

    def train_runs(self, dataset: str, protocol_id: str) -> pd.DataFrame:
        """Every 'train' run of a protocol, newest first: run_id, method, artifact_path, params."""
        return self.sql_df(
            "SELECT run_id, method, artifact_path, params FROM runs WHERE dataset = ? AND protocol_id = ? "
            "AND kind = 'train' ORDER BY finished_at DESC",
            [dataset, protocol_id],
        )

    def trained_methods(self, dataset: str, protocol_id: str) -> list[str]:
        rows = self.sql_df(
            "SELECT DISTINCT method FROM runs WHERE dataset = ? AND protocol_id = ? AND kind = 'train' ORDER BY method",
            [dataset, protocol_id],
        )
        return rows["method"].tolist()

    def llm_train_runs(self, dataset: str) -> pd.DataFrame:
        """Finished LLM training runs of a data set, newest first: run_id, method, adapter, params, finished_at."""
        return self.sql_df(
            "SELECT run_id, method, artifact_path AS adapter, params, finished_at FROM runs "
            "WHERE dataset = ? AND kind = 'train' AND list_contains(?, method) ORDER BY finished_at DESC",
            [dataset, list(LLM_TRAIN_METHODS)],
        )

    def eval_runs(self, dataset: str, protocol_id: str) -> pd.DataFrame:
        """Eval runs of a protocol, newest first: run_id, method, params, finished_at, n_ranks, seconds_per_user."""
        return self.sql_df(
            "SELECT r.run_id, r.method, r.params, r.finished_at, "
            "  (SELECT count(*) FROM user_ranks u WHERE u.run_id = r.run_id) AS n_ranks, "
            "  (SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.part = 'test' AND m.subset = 'all' "
            "   AND m.name = 'seconds_per_user') AS seconds_per_user "
            "FROM runs r WHERE r.dataset = ? AND r.protocol_id = ? AND r.kind = 'eval' ORDER BY r.finished_at DESC",
            [dataset, protocol_id],
        )

    def eval_runs_version(self, dataset: str, protocol_id: str) -> str:
        """Changes whenever an eval run of the protocol is added (a cache key)."""
        n, last = (
            self.cursor()
            .execute(
                "SELECT count(*), max(finished_at) FROM runs WHERE dataset = ? AND protocol_id = ? AND kind = 'eval'",
                [dataset, protocol_id],
            )
            .fetchone()
        )
        return f"{n}|{last}"

    def imports(self, dataset: str) -> pd.DataFrame:
        """The data set's imports (`mmrec import`), newest first: run_id, finished_at, params (manifest summary)."""
        return self.sql_df(
            "SELECT run_id, finished_at, params FROM runs WHERE dataset = ? AND kind = 'import' "
            "ORDER BY finished_at DESC",
            [dataset],
        )

    def runs_of_kind(self, dataset: str, protocol_id: str, kind: str) -> pd.DataFrame:
        """Finished runs of one kind (e.g. 'rationales') on a protocol, newest first: run_id, method, params."""
        return self.sql_df(
            "SELECT run_id, method, params, finished_at FROM runs WHERE dataset = ? AND protocol_id = ? AND kind = ? "
            "ORDER BY finished_at DESC",
            [dataset, protocol_id, kind],
        )

    def run_metrics(self, run_ids: list[str], part: str = "test") -> pd.DataFrame:
        """The metrics rows of runs for one part ('test'; a stage's cost: 'all'): run_id, subset, name, value."""
        return self.sql_df(
            "SELECT run_id, subset, name, value FROM metrics WHERE part = ? AND list_contains(?, run_id)",
            [part, list(run_ids)],
        )

    def user_ranks(self, run_id: str) -> pd.DataFrame:
        return self.sql_df(
            "SELECT user_id, greater, ties, competitors FROM user_ranks WHERE run_id = ? ORDER BY user_id", [run_id]
        )
