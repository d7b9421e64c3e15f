"""The DuckDB store: schema, migrations and the named queries every stage uses.

All SQL lives here. One `Store` (one DuckDB connection) per process; each thread gets its own
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

# Provenance columns shared by every model-made artifact.
_PROVENANCE = """
    engine VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    prompt_version VARCHAR,
    params JSON,
    input_hash VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "data: data sets, images, items, users, interactions, protocols (splits + negatives)",
        """
        CREATE TABLE datasets (
            dataset VARCHAR PRIMARY KEY,
            format VARCHAR NOT NULL,
            source VARCHAR,
            fingerprint VARCHAR NOT NULL,     -- hash of the normalised items + interactions
            params JSON,
            n_raw_rows BIGINT,                -- interaction rows before collapsing same-day repeats
            ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE images (                 -- content-addressed: file is images/<sha[:2]>/<sha>.<ext>
            sha256 VARCHAR PRIMARY KEY,
            ext VARCHAR NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            n_bytes BIGINT NOT NULL,
            added_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE items (
            dataset VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            title VARCHAR,
            text VARCHAR,                     -- metadata rendered as one text (for embeddings/prompts)
            category VARCHAR,
            image_sha256 VARCHAR,
            attributes JSON,                  -- every source column, as given
            PRIMARY KEY (dataset, item_id)
        );
        CREATE TABLE users (
            dataset VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            attributes JSON,
            PRIMARY KEY (dataset, user_id)
        );
        CREATE TABLE interactions (
            dataset VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,             -- 0-based chronological position in the user's history
            item_id VARCHAR NOT NULL,
            ts TIMESTAMP,                     -- NULL where the source has order but no time
            n_rows INTEGER NOT NULL,          -- source rows collapsed into this one (same user/item/day)
            rating DOUBLE,
            extra JSON,
            PRIMARY KEY (dataset, user_id, seq)
        );
        CREATE TABLE protocols (
            protocol_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            split VARCHAR NOT NULL,           -- 'leave-one-out'
            min_history INTEGER NOT NULL,
            n_negatives INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            data_fingerprint VARCHAR NOT NULL,
            n_users INTEGER NOT NULL,         -- users with a valid and a test target
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        -- Held-out targets. Every interaction NOT listed here for a protocol is training data.
        CREATE TABLE splits (
            protocol_id VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            part VARCHAR NOT NULL,            -- 'valid' | 'test'
            seq INTEGER NOT NULL,
            item_id VARCHAR NOT NULL,
            is_repeat BOOLEAN NOT NULL,       -- the item already occurs earlier in the user's history
            PRIMARY KEY (protocol_id, user_id, part)
        );
        CREATE TABLE negatives (              -- drawn once with the protocol's seed, never re-drawn
            protocol_id VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            part VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            item_id VARCHAR NOT NULL,
            PRIMARY KEY (protocol_id, user_id, part, idx)
        );
        """,
    ),
    (
        2,
        "artifacts: descriptions, keywords, embeddings, profiles, graph edges, runs, metrics, jobs",
        f"""
        CREATE TABLE descriptions (
            dataset VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
            description VARCHAR NOT NULL, image_sha256 VARCHAR, {_PROVENANCE}
        );
        CREATE TABLE keywords (
            dataset VARCHAR NOT NULL, item_id VARCHAR NOT NULL, keywords VARCHAR[] NOT NULL,
            r_info DOUBLE, r_recon DOUBLE, r_len DOUBLE, reward DOUBLE, {_PROVENANCE}
        );
        CREATE TABLE embeddings (
            dataset VARCHAR NOT NULL, kind VARCHAR NOT NULL, key VARCHAR NOT NULL,
            vector FLOAT[] NOT NULL, {_PROVENANCE}
        );
        CREATE TABLE profiles (
            dataset VARCHAR NOT NULL, protocol_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
            block INTEGER NOT NULL, item_ids VARCHAR[] NOT NULL, summary VARCHAR NOT NULL,
            is_final BOOLEAN NOT NULL, flag VARCHAR, {_PROVENANCE}
        );
        CREATE TABLE graph_edges (
            dataset VARCHAR NOT NULL, graph_id VARCHAR NOT NULL, src VARCHAR NOT NULL, dst VARCHAR NOT NULL,
            weight DOUBLE NOT NULL, reason VARCHAR NOT NULL, {_PROVENANCE}
        );
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, protocol_id VARCHAR,
            kind VARCHAR NOT NULL, method VARCHAR NOT NULL, status VARCHAR NOT NULL,
            artifact_path VARCHAR, finished_at TIMESTAMP, {_PROVENANCE}
        );
        CREATE TABLE metrics (
            run_id VARCHAR NOT NULL, part VARCHAR NOT NULL, subset VARCHAR NOT NULL,
            name VARCHAR NOT NULL, value DOUBLE NOT NULL,
            PRIMARY KEY (run_id, part, subset, name)
        );
        CREATE TABLE jobs (
            job_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, status VARCHAR NOT NULL,
            done BIGINT NOT NULL DEFAULT 0, total BIGINT, message VARCHAR, error VARCHAR, params JSON,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp, updated_at TIMESTAMP
        );
        """,
    ),
    (
        3,
        "textualization evidence: visual facts beside descriptions, keyword facets beside keywords",
        """
        ALTER TABLE descriptions ADD COLUMN facts JSON;   -- [{kind, value, confidence, source, detail}]
        ALTER TABLE keywords ADD COLUMN facets JSON;      -- {"colour": [...], "material": [...], ...}
        """,
    ),
    (
        4,
        "profile chains: each block summary points at the block it continues",
        "ALTER TABLE profiles ADD COLUMN prev_hash VARCHAR;  -- input_hash of block k-1 ('' for block 1)",
    ),
    (
        5,
        "LLM recommender results per user (resumable evaluation, per-user comparison)",
        f"""
        CREATE TABLE llm_scores (
            dataset VARCHAR NOT NULL, protocol_id VARCHAR NOT NULL, part VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL, mode VARCHAR NOT NULL,  -- 'pointwise' | 'listwise'
            item_ids VARCHAR[] NOT NULL,      -- the stored candidates, positive first
            scores DOUBLE[] NOT NULL,         -- aligned with item_ids
            valid BOOLEAN NOT NULL,           -- listwise: the answer named only candidates
            answer VARCHAR,                   -- listwise: the model's raw output
            problem VARCHAR,                  -- listwise: why the answer is invalid
            prompt_tokens INTEGER, seconds DOUBLE NOT NULL, {_PROVENANCE}
        );
        """,
    ),
    (
        6,
        "per-user ranks of every evaluation run (intervals, paired tests, drill-down)",
        """
        CREATE TABLE user_ranks (             -- the positive's place among a user's candidates in one run
            run_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
            greater INTEGER NOT NULL,         -- candidates scored strictly above the positive
            ties INTEGER NOT NULL,            -- candidates scored equal to it (ranked by expectation)
            competitors INTEGER NOT NULL,     -- candidates besides the positive
            PRIMARY KEY (run_id, user_id)
        );
        """,
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]

# Tables whose rows belong to one data set: removed together when a data set is replaced.
_DATASET_TABLES = (
    "items",
    "users",
    "interactions",
    "descriptions",
    "keywords",
    "embeddings",
    "profiles",
    "graph_edges",
    "runs",
    "llm_scores",
)


def _replace_rows(tx: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame, key: tuple[str, ...]) -> None:
    """Insert `rows` into `table`, first deleting stored rows with the same `key` columns (upsert)."""
    cols, keys = ", ".join(rows.columns), ", ".join(key)
    tx.register("_rows", rows)
    tx.execute(f"DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} FROM _rows)")
    tx.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
    tx.unregister("_rows")


class StoreError(RuntimeError):
    """A problem with the database file itself (locked, too new, unreadable)."""


class Store:
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
            frame = frame.assign(dataset=dataset)
            tx.register("_frame", frame)
            cols = ", ".join(frame.columns)
            tx.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
            tx.unregister("_frame")

    def _delete_dataset(self, tx: duckdb.DuckDBPyConnection, dataset: str) -> None:
        protocols = "SELECT protocol_id FROM protocols WHERE dataset = ?"
        for table in ("metrics", "user_ranks"):
            tx.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE dataset = ?)", [dataset])
        for table in ("splits", "negatives"):
            tx.execute(f"DELETE FROM {table} WHERE protocol_id IN ({protocols})", [dataset])
        tx.execute("DELETE FROM protocols WHERE dataset = ?", [dataset])
        for table in _DATASET_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE dataset = ?", [dataset])
        tx.execute("DELETE FROM datasets WHERE dataset = ?", [dataset])

    def add_images(self, tx: duckdb.DuckDBPyConnection, images: pd.DataFrame) -> None:
        """Register content-addressed images (sha256, ext, width, height, n_bytes); known ones are kept."""
        if images.empty:
            return
        tx.register("_images", images)
        tx.execute(
            "INSERT INTO images (sha256, ext, width, height, n_bytes) "
            "SELECT DISTINCT sha256, ext, width, height, n_bytes FROM _images "
            "WHERE sha256 NOT IN (SELECT sha256 FROM images)"
        )
        tx.unregister("_images")

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

    def count(self, table: str, dataset: str) -> int:
        if table not in _DATASET_TABLES:
            raise ValueError(f"{table} is not a per-data-set table")
        return self.scalar(f"SELECT count(*) FROM {table} WHERE dataset = ?", [dataset])

    # -- items added after ingest (catalog uploads) --------------------------------------------------
    def add_items(self, tx: duckdb.DuckDBPyConnection, dataset: str, items: pd.DataFrame) -> None:
        """Insert new items (item_id, title, text, category, image_sha256, attributes) into a data set."""
        frame = items.assign(dataset=dataset)
        tx.register("_items", frame)
        cols = ", ".join(frame.columns)
        tx.execute(f"INSERT INTO items ({cols}) SELECT {cols} FROM _items")
        tx.unregister("_items")

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
            "SELECT i.item_id, i.title, i.text, i.category, i.image_sha256, im.ext FROM items i "
            "LEFT JOIN images im ON im.sha256 = i.image_sha256 WHERE i.dataset = ?"
        )
        params: list = [dataset]
        if item_ids is not None:
            query += " AND list_contains(?, i.item_id)"
            params.append(list(item_ids))
        return self.sql_df(query + " ORDER BY i.item_id", params)

    # -- textualization ---------------------------------------------------------------------------
    def keyword_hashes(self, dataset: str) -> set[str]:
        """input_hash of every stored keyword set: items whose inputs and provenance are unchanged are done."""
        rows = self.cursor().execute(
            "SELECT DISTINCT input_hash FROM keywords WHERE dataset = ? AND input_hash IS NOT NULL", [dataset]
        )
        return {r[0] for r in rows.fetchall()}

    def write_textualization(
        self, tx: duckdb.DuckDBPyConnection, descriptions: pd.DataFrame, keywords: pd.DataFrame
    ) -> None:
        """Store one batch of descriptions and keyword sets (same input_hash replaces, other versions stay)."""
        for table, frame in (("descriptions", descriptions), ("keywords", keywords)):
            if frame.empty:
                continue
            tx.register("_rows", frame)
            tx.execute(
                f"DELETE FROM {table} WHERE (dataset, item_id, input_hash) IN "
                "(SELECT dataset, item_id, input_hash FROM _rows)"
            )
            cols = ", ".join(frame.columns)
            tx.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
            tx.unregister("_rows")

    def latest_keywords(self, dataset: str) -> pd.DataFrame:
        """The newest keyword set (with rewards) and description of every textualized item."""
        return self.sql_df(
            "SELECT k.item_id, k.keywords, k.facets, k.r_info, k.r_recon, k.r_len, k.reward, "
            "d.description, k.engine, k.model, k.prompt_version, k.created_at FROM keywords k "
            "LEFT JOIN descriptions d ON d.dataset = k.dataset AND d.item_id = k.item_id "
            "AND d.input_hash = k.input_hash "
            "WHERE k.dataset = ? QUALIFY row_number() OVER (PARTITION BY k.item_id ORDER BY k.created_at DESC) = 1 "
            "ORDER BY k.item_id",
            [dataset],
        )

    def text_versions(self, dataset: str, item_id: str) -> pd.DataFrame:
        """Every stored description + keyword version of one item, newest first (for side-by-side views)."""
        return self.sql_df(
            "SELECT d.engine, d.model, d.prompt_version AS describe_prompt, k.prompt_version AS keyword_prompt, "
            "d.description, d.facts, k.keywords, k.facets, k.r_info, k.r_recon, k.r_len, k.reward, d.params, "
            "d.image_sha256, d.created_at FROM descriptions d LEFT JOIN keywords k ON k.dataset = d.dataset "
            "AND k.item_id = d.item_id AND k.input_hash = d.input_hash "
            "WHERE d.dataset = ? AND d.item_id = ? ORDER BY d.created_at DESC",
            [dataset, item_id],
        )

    # -- profiles ---------------------------------------------------------------------------------
    def profile_hashes(self, dataset: str, protocol_id: str) -> dict[str, str]:
        """input_hash -> summary of every stored block summary (a hash chains all earlier blocks)."""
        rows = self.cursor().execute(
            "SELECT input_hash, summary FROM profiles WHERE dataset = ? AND protocol_id = ?", [dataset, protocol_id]
        )
        return dict(rows.fetchall())

    def write_profile_blocks(self, tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
        _replace_rows(tx, "profiles", rows, ("dataset", "protocol_id", "user_id", "input_hash"))

    def mark_final_profiles(
        self, tx: duckdb.DuckDBPyConnection, dataset: str, protocol_id: str, final_hashes: dict[str, str]
    ) -> None:
        """Flag each user's last block summary as the profile (and un-flag older finals)."""
        frame = pd.DataFrame({"user_id": list(final_hashes), "input_hash": list(final_hashes.values())})
        tx.register("_final", frame)
        tx.execute(
            "UPDATE profiles p SET is_final = (p.input_hash = f.input_hash) FROM _final f "
            "WHERE p.dataset = ? AND p.protocol_id = ? AND p.user_id = f.user_id",
            [dataset, protocol_id],
        )
        tx.unregister("_final")

    def profile_blocks(self, dataset: str, protocol_id: str, user_id: str | None = None) -> pd.DataFrame:
        """Each user's current chain of block summaries, block 1 first (stale or other-engine rows left out)."""
        query = "SELECT * FROM profiles WHERE dataset = $d AND protocol_id = $p"
        params = {"d": dataset, "p": protocol_id}
        if user_id is not None:
            query += " AND user_id = $u"
            params["u"] = user_id
        rows = self.sql_df(query, params)
        chains = []
        for _, group in rows.groupby("user_id", sort=True):
            by_hash = {r["input_hash"]: r for r in group.to_dict("records")}
            final = [r for r in by_hash.values() if r["is_final"]]
            chain, row = [], final[0] if final else None
            while row is not None:  # walk back from the profile to block 1
                chain.append(row)
                row = by_hash.get(row["prev_hash"])
            chains.extend(reversed(chain))
        return pd.DataFrame(chains, columns=rows.columns)

    # -- embeddings -------------------------------------------------------------------------------
    def embedding_hashes(self, dataset: str, kind: str) -> set[str]:
        rows = (
            self.cursor()
            .execute("SELECT input_hash FROM embeddings WHERE dataset = ? AND kind = ?", [dataset, kind])
            .fetchall()
        )
        return {r[0] for r in rows}

    def write_embeddings(self, tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
        """Replace the (dataset, kind, key) vectors in `rows` (columns as the embeddings table)."""
        _replace_rows(tx, "embeddings", rows, ("dataset", "kind", "key"))

    def embeddings(self, dataset: str, kind: str) -> pd.DataFrame:
        return self.sql_df(
            "SELECT key, vector, model, input_hash FROM embeddings WHERE dataset = ? AND kind = ? ORDER BY key",
            [dataset, kind],
        )

    # -- LLM recommender results ------------------------------------------------------------------
    def write_llm_scores(self, tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
        """Replace the per-user rows with the same input hashes (columns as the llm_scores table)."""
        _replace_rows(tx, "llm_scores", rows, ("input_hash",))

    def llm_scores(self, dataset: str, protocol_id: str, mode: str, part: str = "test") -> pd.DataFrame:
        """Every stored per-user LLM result of a protocol part and mode, one row per input hash."""
        return self.sql_df(
            "SELECT * FROM llm_scores WHERE dataset = ? AND protocol_id = ? AND part = ? AND mode = ? "
            "QUALIFY row_number() OVER (PARTITION BY input_hash ORDER BY created_at DESC) = 1",
            [dataset, protocol_id, part, mode],
        )
