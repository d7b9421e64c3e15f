"""Data set statistics and pipeline status: what `mmrec info` prints and the Overview page shows."""

from __future__ import annotations

import pandas as pd

from .store import Store


def dataset_summary(store: Store, dataset: str) -> dict:
    """Headline counts for one data set (raises KeyError naming the known ones if it is unknown)."""
    info = store.require_dataset(dataset)
    row = store.sql_df(
        """SELECT
             (SELECT count(*) FROM items WHERE dataset = $d) AS items,
             (SELECT count(*) FROM items WHERE dataset = $d AND image_sha256 IS NOT NULL) AS items_with_images,
             (SELECT count(DISTINCT user_id) FROM interactions WHERE dataset = $d) AS users,
             (SELECT count(*) FROM interactions WHERE dataset = $d) AS interactions,
             (SELECT count(DISTINCT item_id) FROM interactions WHERE dataset = $d) AS items_interacted,
             (SELECT min(ts) FROM interactions WHERE dataset = $d) AS first_ts,
             (SELECT max(ts) FROM interactions WHERE dataset = $d) AS last_ts""",
        {"d": dataset},
    ).iloc[0].to_dict()
    lengths = sequence_lengths(store, dataset)
    summary = {
        "dataset": dataset,
        "format": info["format"],
        "source": info["source"],
        "ingested_at": info["ingested_at"],
        "source_rows": int(info["n_raw_rows"]),
        **{k: (int(v) if isinstance(v, int | float) and not pd.isna(v) else v) for k, v in row.items()},
        "seq_len_min": int(lengths.min()) if len(lengths) else 0,
        "seq_len_median": float(lengths.median()) if len(lengths) else 0.0,
        "seq_len_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "seq_len_max": int(lengths.max()) if len(lengths) else 0,
        "density": row["interactions"] / max(1, row["users"] * row["items"]),
    }
    summary["protocols"] = protocol_summaries(store, dataset).to_dict(orient="records")
    return summary


def sequence_lengths(store: Store, dataset: str) -> pd.Series:
    return store.sql_df(
        "SELECT count(*) AS n FROM interactions WHERE dataset = ? GROUP BY user_id", [dataset]
    )["n"]


def category_counts(store: Store, dataset: str, top: int = 20) -> pd.DataFrame:
    """Interactions and items per item category (top categories by interactions)."""
    return store.sql_df(
        """SELECT coalesce(it.category, '(none)') AS category, count(*) AS interactions,
                  count(DISTINCT it.item_id) AS items
           FROM interactions i JOIN items it USING (dataset, item_id)
           WHERE i.dataset = ? GROUP BY 1 ORDER BY interactions DESC LIMIT ?""",
        [dataset, top],
    )


def protocol_summaries(store: Store, dataset: str) -> pd.DataFrame:
    """Each stored protocol with its evaluated users and the share of repeat test targets."""
    return store.sql_df(
        """SELECT p.protocol_id, p.n_negatives, p.seed, p.min_history, p.n_users AS evaluated_users,
                  avg(CASE WHEN s.part = 'test' THEN s.is_repeat::INT END) AS test_repeat_share
           FROM protocols p LEFT JOIN splits s USING (protocol_id)
           WHERE p.dataset = ? GROUP BY ALL ORDER BY p.protocol_id""",
        [dataset],
    )


def sample_items_with_images(store: Store, dataset: str, n: int = 12) -> pd.DataFrame:
    """The most-interacted items that have an image (for thumbnails)."""
    return store.sql_df(
        """SELECT it.item_id, it.title, it.category, it.image_sha256, im.ext, count(*) AS interactions
           FROM items it JOIN images im ON im.sha256 = it.image_sha256
           JOIN interactions i USING (dataset, item_id)
           WHERE it.dataset = ? GROUP BY ALL ORDER BY interactions DESC, it.item_id LIMIT ?""",
        [dataset, n],
    )


# Pipeline stages in order, with the table that shows each one's progress.
STAGES = [
    ("Data ingested", "interactions", "interactions"),
    ("Item descriptions", "descriptions", "items described"),
    ("Item keywords", "keywords", "items with keywords"),
    ("Embeddings", "embeddings", "vectors"),
    ("User profiles", "profiles", "users profiled"),
    ("Item graph", "graph_edges", "edges"),
    ("Runs (training / evaluation)", "runs", "runs"),
]


def pipeline_status(store: Store, dataset: str) -> pd.DataFrame:
    """One row per pipeline stage: how much of it exists for this data set."""
    distinct = {"descriptions": "item_id", "keywords": "item_id", "profiles": "user_id"}
    rows = []
    for stage, table, unit in STAGES:
        col = distinct.get(table)
        expr = f"count(DISTINCT {col})" if col else "count(*)"
        n = store.scalar(f"SELECT {expr} FROM {table} WHERE dataset = ?", [dataset])
        rows.append({"stage": stage, "count": int(n), "unit": unit, "done": n > 0})
    return pd.DataFrame(rows)
