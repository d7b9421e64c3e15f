"""Named queries on data sets, items, users and interactions (mixed into `Store`)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd

from mmrec_core.store.rows import insert_frame
from mmrec_core.store.schema import DATASET_TABLES

# Newest keyword set per item, joined to items and their image file's extension. Each search term must
# occur (case-insensitive) in the item id, title, category or keywords.
_SEARCH_SQL = """
WITH kw AS (
    SELECT item_id, keywords FROM keywords WHERE dataset = $dataset
    QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY created_at DESC) = 1
), found AS (
    SELECT i.item_id, i.title, i.category, i.image_sha256, im.ext, kw.keywords,
           lower(concat_ws(' ', i.item_id, i.title, i.category, array_to_string(kw.keywords, ' '))) AS haystack
    FROM items i LEFT JOIN images im ON im.sha256 = i.image_sha256 LEFT JOIN kw ON kw.item_id = i.item_id
    WHERE i.dataset = $dataset
)
SELECT item_id, title, category, image_sha256, ext, keywords, count(*) OVER () AS matches FROM found
WHERE len(list_filter($terms::VARCHAR[], lambda t: NOT contains(haystack, t))) = 0
ORDER BY item_id LIMIT $limit OFFSET $offset
"""

_UPLOAD_ATTEMPTS = 3  # a write-write conflict with a concurrent upload is retried (the rows are then found stored)


class WriteConflictError(RuntimeError):
    """A write that kept conflicting with another session's; nothing was stored."""


class CatalogQueries:
    """Data sets and their rows; uses the `Store` connection (`sql_df`, `scalar`, `cursor`)."""

    # -- data sets --------------------------------------------------------------------------------
    def datasets(self) -> pd.DataFrame:
        return self.sql_df("SELECT * FROM datasets ORDER BY dataset")

    def dataset_info(self, dataset: str) -> dict | None:
        df = self.sql_df("SELECT * FROM datasets WHERE dataset = ?", [dataset])
        return None if df.empty else df.iloc[0].to_dict()

    def require_dataset(self, dataset: str) -> dict:
        info = self.dataset_info(dataset)
        if info is None:
            known = ", ".join(self.datasets()["dataset"]) or "none yet"
            raise KeyError(f"Unknown data set '{dataset}' (known: {known}). Load it with `mmrec ingest`.")
        return info

    def write_dataset(
        self,
        tx: duckdb.DuckDBPyConnection,
        meta: dict,
        items: pd.DataFrame,
        users: pd.DataFrame,
        interactions: pd.DataFrame,
    ) -> None:
        """Replace one data set's rows (and everything derived from them) inside the caller's transaction."""
        dataset = meta["dataset"]
        self._delete_dataset(tx, dataset)
        tx.execute(
            "INSERT INTO datasets (dataset, format, source, fingerprint, params, n_raw_rows) "
            "VALUES ($dataset, $format, $source, $fingerprint, $params, $n_raw_rows)",
            meta,
        )
        for table, frame in (("items", items), ("users", users), ("interactions", interactions)):
            insert_frame(tx, table, frame.assign(dataset=dataset))

    def _delete_dataset(self, tx: duckdb.DuckDBPyConnection, dataset: str) -> None:
        protocols = "SELECT protocol_id FROM protocols WHERE dataset = ?"
        for table in ("metrics", "user_ranks"):
            tx.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE dataset = ?)", [dataset])
        for table in ("splits", "negatives"):
            tx.execute(f"DELETE FROM {table} WHERE protocol_id IN ({protocols})", [dataset])
        tx.execute("DELETE FROM protocols WHERE dataset = ?", [dataset])
        for table in DATASET_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE dataset = ?", [dataset])
        tx.execute("DELETE FROM datasets WHERE dataset = ?", [dataset])

    def add_images(self, tx: duckdb.DuckDBPyConnection, images: pd.DataFrame) -> None:
        """Register content-addressed images (sha256, ext, width, height, n_bytes); known ones are kept."""
        if images.empty:
            return
        tx.register("_images", images)
        # ON CONFLICT, not "WHERE NOT IN": a row another session committed meanwhile is not an error
        tx.execute(
            "INSERT INTO images (sha256, ext, width, height, n_bytes) "
            "SELECT DISTINCT sha256, ext, width, height, n_bytes FROM _images ON CONFLICT DO NOTHING"
        )
        tx.unregister("_images")

    def image_keys(self, sha256s: list[str] | None = None) -> set[tuple[str, str]]:
        """(sha256, ext) of the committed image rows (those among `sha256s`, or all): the files that must stay."""
        query, params = "SELECT sha256, ext FROM images", []
        if sha256s is not None:
            query += " WHERE list_contains(?, sha256)"
            params.append(list(sha256s))
        return {(sha, ext) for sha, ext in self.cursor().execute(query, params).fetchall()}

    # -- reads ------------------------------------------------------------------------------------
    def items(self, dataset: str) -> pd.DataFrame:
        return self.sql_df("SELECT * FROM items WHERE dataset = ? ORDER BY item_id", [dataset])

    def interactions(self, dataset: str) -> pd.DataFrame:
        return self.sql_df(
            "SELECT user_id, seq, item_id, ts, n_rows, rating FROM interactions "
            "WHERE dataset = ? ORDER BY user_id, seq",
            [dataset],
        )

    def users(self, dataset: str) -> pd.DataFrame:
        return self.sql_df("SELECT * FROM users WHERE dataset = ? ORDER BY user_id", [dataset])

    def count(self, table: str, dataset: str, distinct: str | None = None) -> int:
        """Rows of a per-data-set table, or its distinct `distinct` values (items described, users profiled)."""
        if table not in DATASET_TABLES:
            raise ValueError(f"{table} is not a per-data-set table")
        if distinct not in (None, "item_id", "user_id", "key"):
            raise ValueError(f"Cannot count distinct {distinct}")
        expr = f"count(DISTINCT {distinct})" if distinct else "count(*)"
        return int(self.scalar(f"SELECT {expr} FROM {table} WHERE dataset = ?", [dataset]))

    def item_ids(self, dataset: str) -> list[str]:
        """Every item id of a data set, sorted."""
        rows = self.sql_df("SELECT item_id FROM items WHERE dataset = ? ORDER BY item_id", [dataset])
        return rows["item_id"].tolist()

    def dataset_fingerprint(self, dataset: str) -> str | None:
        return self.scalar("SELECT fingerprint FROM datasets WHERE dataset = ?", [dataset])

    def has_user(self, dataset: str, user_id: str) -> bool:
        n = self.scalar("SELECT count(*) FROM interactions WHERE dataset = ? AND user_id = ?", [dataset, user_id])
        return bool(n)

    def search_items(self, dataset: str, terms: list[str], limit: int, offset: int) -> pd.DataFrame:
        """Items whose id, title, category or newest keywords contain every term (lower case)."""
        return self.sql_df(_SEARCH_SQL, {"dataset": dataset, "terms": terms, "limit": limit, "offset": offset})

    # -- items added after ingest (catalog uploads) --------------------------------------------------
    def add_items(self, tx: duckdb.DuckDBPyConnection, dataset: str, items: pd.DataFrame) -> None:
        """Insert new items (item_id, title, text, category, image_sha256, attributes) into a data set."""
        insert_frame(tx, "items", items.assign(dataset=dataset))

    def add_uploaded_items(
        self, dataset: str, images: pd.DataFrame, items: pd.DataFrame, write_files: Callable[[], None]
    ) -> list[str]:
        """Insert-or-get uploaded items and their images in one transaction; returns the item ids now stored.

        Rows already stored (an earlier upload, or another session that committed the same image first)
        are kept as they are. `write_files` runs inside the transaction, before the commit, so no row is
        committed without its file. When two sessions commit the same new rows at once DuckDB refuses the
        second commit; it is retried, and then finds the rows stored.
        """
        for attempt in range(1, _UPLOAD_ATTEMPTS + 1):
            try:
                with self.transaction() as tx:
                    self.add_images(tx, images)
                    frame = items.assign(dataset=dataset)
                    cols = ", ".join(frame.columns)
                    tx.register("_uploads", frame)
                    tx.execute(f"INSERT INTO items ({cols}) SELECT {cols} FROM _uploads ON CONFLICT DO NOTHING")
                    tx.unregister("_uploads")
                    write_files()
                break
            except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
                if attempt == _UPLOAD_ATTEMPTS:
                    raise WriteConflictError(
                        f"Another session kept writing the same items to '{dataset}' ({exc}); nothing was "
                        "stored by this upload. Try again."
                    ) from exc
        ids = list(items["item_id"])
        stored = set(self.items_with_images(dataset, ids)["item_id"])
        return [item_id for item_id in ids if item_id in stored]

    def item(self, dataset: str, item_id: str) -> dict:
        df = self.sql_df(
            "SELECT i.*, im.ext FROM items i LEFT JOIN images im ON im.sha256 = i.image_sha256 "
            "WHERE i.dataset = ? AND i.item_id = ?",
            [dataset, item_id],
        )
        if df.empty:
            raise KeyError(f"Unknown item '{item_id}' in data set '{dataset}'.")
        return df.iloc[0].to_dict()

    def items_with_images(self, dataset: str, item_ids: list[str] | None = None) -> pd.DataFrame:
        """Items with their image file's extension (NULL where the item has no image)."""
        query = (
            "SELECT i.item_id, i.title, i.text, i.category, i.image_sha256, im.ext, i.attributes FROM items i "
            "LEFT JOIN images im ON im.sha256 = i.image_sha256 WHERE i.dataset = ?"
        )
        params: list = [dataset]
        if item_ids is not None:
            query += " AND list_contains(?, i.item_id)"
            params.append(list(item_ids))
        return self.sql_df(query + " ORDER BY i.item_id", params)

    # -- item splits (describer and classifier training vs held-out items) --------------------------------
    def item_split(self, dataset: str, split_id: str) -> dict[str, str]:
        """item_id -> 'train' | 'test' of a stored item split (empty if it was never drawn)."""
        rows = self.cursor().execute(
            "SELECT item_id, part FROM item_splits WHERE dataset = ? AND split_id = ?", [dataset, split_id]
        )
        return dict(rows.fetchall())

    def write_item_split(self, tx: duckdb.DuckDBPyConnection, dataset: str, split_id: str, parts: dict) -> None:
        frame = pd.DataFrame({"item_id": list(parts), "part": list(parts.values())})
        frame.insert(0, "split_id", split_id)
        frame.insert(0, "dataset", dataset)
        insert_frame(tx, "item_splits", frame)
