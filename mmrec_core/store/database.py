"""The DuckDB store: one connection, cursors per thread, transactions, migrations.

All SQL lives in this package: `Store` gathers the named queries of each table group (one module
each). One `Store` (one DuckDB connection) per process; each thread gets its own
cursor via `Store.cursor()`. Writes that must be all-or-nothing go through `Store.transaction()`.

Schema versions are applied in order by `MIGRATIONS`; a file written by an older version is
upgraded in place when opened (each step in its own transaction), a file from a newer version is
refused with a clear message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from mmrec_core.store.artifacts import ArtifactQueries
from mmrec_core.store.catalog import CatalogQueries
from mmrec_core.store.explanations import ExplanationQueries
from mmrec_core.store.graph import GraphQueries
from mmrec_core.store.jobs import JobQueries
from mmrec_core.store.protocols import ProtocolQueries
from mmrec_core.store.runs import RunQueries
from mmrec_core.store.schema import LATEST_VERSION, MIGRATIONS
from mmrec_core.store.stats import StatsQueries


class StoreError(RuntimeError):
    """A problem with the database file itself (locked, too new, unreadable)."""


class StoreLockedError(StoreError):
    """The file is held by another process: DuckDB lets one process write a file, and none open it meanwhile."""


# How a caller may have chosen the data folder, and how to choose another one that way (lock messages).
FOLDER_ORIGINS = {
    "--data-dir": "pass another folder to --data-dir",
    "MMREC_DATA_DIR": "set MMREC_DATA_DIR to another folder",
    None: "use another data folder (MMREC_DATA_DIR for the app, --data-dir for `mmrec`)",
}


def lock_message(path: Path, detail: str, *, reading: bool = False, origin: str | None = None) -> str:
    """What to tell someone whose open of `path` met another process's lock.

    `reading`: the command only reads (another folder would not help it). `origin`: how the data folder
    was chosen ('--data-dir', 'MMREC_DATA_DIR' or None), so the advice names that same way.
    """
    pid = re.search(r"\(PID (\d+)\)", detail)  # DuckDB names the holder; pass it on so it can be found
    holder = f" (PID {pid.group(1)}: the app or an `mmrec` command)" if pid else " (the app or an `mmrec` command)"
    given = {
        "--data-dir": " (data folder given with --data-dir)",
        "MMREC_DATA_DIR": " (data folder from MMREC_DATA_DIR)",
    }.get(origin or "", "")
    head = f"The database {path}{given} is open in another process{holder}."
    if reading:
        return (
            f"{head} DuckDB lets no other process open a file while one holds it for writing, not even "
            "to read it: run this command again when that process has finished, or stop it (the app's "
            "Overview page shows the data sets' statistics meanwhile)."
        )
    return (
        f"{head} DuckDB allows one writing process per file: stop that process, or "
        f"{FOLDER_ORIGINS.get(origin, FOLDER_ORIGINS[None])}."
    )


class Store(
    CatalogQueries, ProtocolQueries, ArtifactQueries, GraphQueries, RunQueries, JobQueries, StatsQueries,
    ExplanationQueries,
):  # fmt: skip
    """One DuckDB database file: open it once per process, take a cursor per thread.

    `read_only=True` (commands that only read, such as `mmrec info`) opens an up-to-date existing file
    without the write lock, so several readers can share it; a missing file or one that needs a
    migration is opened for writing as usual. `origin` (how the data folder was chosen) only shapes
    the lock message.
    """

    def __init__(
        self, path: str | Path, *, upto: int = LATEST_VERSION, read_only: bool = False, origin: str | None = None
    ):
        self.path = Path(path)
        self.read_only = False
        self._local = threading.local()
        if read_only and self.path.is_file() and self._open_read_only(origin, upto):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = self._connect(origin, reading=read_only)
        self._migrate(upto)

    def _connect(self, origin: str | None, *, reading: bool, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(lock_message(self.path, str(exc), reading=reading, origin=origin)) from exc
            raise StoreError(f"Cannot open the database {self.path}: {exc}") from exc

    def _open_read_only(self, origin: str | None, upto: int) -> bool:
        """Open without the write lock if the file needs no migration; False (closed again) if it does."""
        con = self._connect(origin, reading=True, read_only=True)
        try:
            version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        except duckdb.CatalogException:
            version = 0  # not initialised yet: the writable open below creates the table
        if version > LATEST_VERSION:
            con.close()
            raise StoreError(self._too_new(version))
        if version < upto:
            con.close()
            return False
        self._con, self.read_only = con, True
        return True

    def _too_new(self, version: int) -> str:
        return (
            f"{self.path} has schema version {version}, newer than this mmrec ({LATEST_VERSION}). "
            "Upgrade mmrec-studio, or use a different data folder."
        )

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
            raise StoreError(self._too_new(current))
        for version, note, ddl in MIGRATIONS:
            if current < version <= upto:
                with self.transaction() as tx:
                    tx.execute(ddl)
                    tx.execute("INSERT INTO schema_version (version, note) VALUES (?, ?)", [version, note])
