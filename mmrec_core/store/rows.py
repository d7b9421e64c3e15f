"""Small write helpers shared by the query modules (frames in, rows out, inside the caller's transaction)."""

from __future__ import annotations

import duckdb
import pandas as pd


def replace_rows(tx: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame, key: tuple[str, ...]) -> None:
    """Insert `rows` into `table`, first deleting stored rows with the same `key` columns (upsert)."""
    cols, keys = ", ".join(rows.columns), ", ".join(key)
    tx.register("_rows", rows)
    tx.execute(f"DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} FROM _rows)")
    tx.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
    tx.unregister("_rows")


def insert_frame(tx: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Insert every row of `frame` into `table` (columns by name)."""
    cols = ", ".join(frame.columns)
    tx.register("_frame", frame)
    tx.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
    tx.unregister("_frame")
