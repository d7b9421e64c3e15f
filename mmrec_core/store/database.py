"""The DuckDB store: one connection, cursors per thread, transactions, migrations.

All SQL lives in this package: `Store` gathers the named queries of each table group (one module
each). One `Store` (one DuckDB connection) per process; each thread gets its own
cursor via `Store.cursor()`. Writes that must be all-or-nothing go through `Store.transaction()`.

Schema versions are applied in order by `MIGRATIONS`; a file written by an older version is
upgraded in place when opened (each step in its own transaction), a file from a newer version is
refused with a clear message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from mmrec_core.store.artifacts import ArtifactQueries
from mmrec_core.store.catalog import CatalogQueries
from mmrec_core.store.graph import GraphQueries
from mmrec_core.store.jobs import JobQueries
from mmrec_core.store.protocols import ProtocolQueries
from mmrec_core.store.runs import RunQueries
from mmrec_core.store.schema import LATEST_VERSION, MIGRATIONS
from mmrec_core.store.stats import StatsQueries


class StoreError(RuntimeError):
    """A problem with the database file itself (locked, too new, unreadable)."""


class Store(CatalogQueries, ProtocolQueries, ArtifactQueries, GraphQueries, RunQueries, JobQueries, StatsQueries):
    """One DuckDB database file: open it once per process, take a cursor per thread."""

    def __init__(self, path: str | Path, *, upto: int = LATEST_VERSION):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"The database {self.path} is open in another process (the app or another `mmrec` "
                    "command). DuckDB allows one writer per file: stop that process, or point this one "
                    "at another data folder with MMREC_DATA_DIR."
                ) from exc
            raise StoreError(f"Cannot open the database {self.path}: {exc}") from exc
        self._local = threading.local()
        self._migrate(upto)

    # -- connection handling ----------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections must not be shared between threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._con.cursor()
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing: commit when the block ends, roll back (and re-raise) on any error."""
        cur = self.cursor()
        cur.begin()
        try:
            yield cur
        except BaseException:
            cur.rollback()
            raise
        cur.commit()

    def close(self) -> None:
        self._con.close()

    def sql_df(self, query: str, params: list | None = None) -> pd.DataFrame:
        return self.cursor().execute(query, params or []).df()

    def scalar(self, query: str, params: list | None = None):
        row = self.cursor().execute(query, params or []).fetchone()
        return None if row is None else row[0]

    # -- schema -----------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.scalar("SELECT coalesce(max(version), 0) FROM schema_version")

    def _migrate(self, upto: int) -> None:
        cur = self.cursor()
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, note VARCHAR, "
            "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
        )
        current = self.version
        if current > LATEST_VERSION:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this mmrec ({LATEST_VERSION}). "
                "Upgrade mmrec-studio, or use a different data folder."
            )
        for version, note, ddl in MIGRATIONS:
            if current < version <= upto:
                with self.transaction() as tx:
                    tx.execute(ddl)
                    tx.execute("INSERT INTO schema_version (version, note) VALUES (?, ?)", [version, note])
