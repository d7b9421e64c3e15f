"""Named queries behind data set statistics and pipeline status (`mmrec info`, the Overview page)."""

from __future__ import annotations

import pandas as pd

_MADE_TABLES = ("descriptions", "keywords", "embeddings", "profiles", "graph_edges", "runs", "llm_scores")


class StatsQueries:
    """Counts and distributions of one data set; uses the `Store` connection."""

    def dataset_counts(self, dataset: str) -> dict:
        """items, items_with_images, users, interactions, items_interacted, first_ts, last_ts."""
        return (
            self.sql_df(
                """SELECT
                 (SELECT count(*) FROM items WHERE dataset = $d) AS items,
                 (SELECT count(*) FROM items WHERE dataset = $d AND image_sha256 IS NOT NULL) AS items_with_images,
                 (SELECT count(DISTINCT user_id) FROM interactions WHERE dataset = $d) AS users,
                 (SELECT count(*) FROM interactions WHERE dataset = $d) AS interactions,
                 (SELECT count(DISTINCT item_id) FROM interactions WHERE dataset = $d) AS items_interacted,
                 (SELECT min(ts) FROM interactions WHERE dataset = $d) AS first_ts,
                 (SELECT max(ts) FROM interactions WHERE dataset = $d) AS last_ts""",
                {"d": dataset},
            )
            .iloc[0]
            .to_dict()
        )

    def newest_created(
        self, table: str, dataset: str, protocol_id: str | None = None, kinds: tuple[str, ...] | None = None
    ):
        """When the data set's newest row of a model-made table was written (None: no rows); `kinds`: of
        the embeddings table, only vectors of these kinds."""
        if table not in _MADE_TABLES:
            raise ValueError(f"newest_created reads {', '.join(_MADE_TABLES)}, not '{table}'.")
        query, params = f"SELECT max(created_at) FROM {table} WHERE dataset = ?", [dataset]
        if protocol_id is not None and table in ("profiles", "runs", "llm_scores"):
            query, params = query + " AND protocol_id = ?", [*params, protocol_id]
        if kinds is not None and table == "embeddings":
            query, params = query + " AND list_contains(?, kind)", [*params, list(kinds)]
        return self.scalar(query, params)

    def sequence_lengths(self, dataset: str) -> pd.Series:
        """Interactions per user."""
        return self.sql_df("SELECT count(*) AS n FROM interactions WHERE dataset = ? GROUP BY user_id", [dataset])["n"]

    def category_counts(self, dataset: str, top: int = 20) -> pd.DataFrame:
        """Interactions and items per item category (top categories by interactions)."""
        return self.sql_df(
            """SELECT coalesce(it.category, '(none)') AS category, count(*) AS interactions,
                      count(DISTINCT it.item_id) AS items
               FROM interactions i JOIN items it USING (dataset, item_id)
               WHERE i.dataset = ? GROUP BY 1 ORDER BY interactions DESC LIMIT ?""",
            [dataset, top],
        )

    def protocol_summaries(self, dataset: str) -> pd.DataFrame:
        """Each stored protocol with its evaluated users, the share of repeat test targets and the share of
        cold ones (the test item occurs in no training interaction: an ID-only model cannot know it)."""
        return self.sql_df(
            """WITH trained AS (
                   SELECT DISTINCT p.protocol_id, i.item_id FROM interactions i
                   JOIN protocols p ON p.dataset = i.dataset
                   ANTI JOIN splits s ON s.protocol_id = p.protocol_id AND s.user_id = i.user_id AND s.seq <= i.seq
                   WHERE p.dataset = $d)
               SELECT p.protocol_id, p.n_negatives, p.seed, p.min_history, p.n_users AS evaluated_users,
                      avg(CASE WHEN s.part = 'test' THEN s.is_repeat::INT END) AS test_repeat_share,
                      avg(CASE WHEN s.part = 'test' THEN (t.item_id IS NULL)::INT END) AS test_cold_share
               FROM protocols p LEFT JOIN splits s USING (protocol_id)
               LEFT JOIN trained t ON t.protocol_id = s.protocol_id AND t.item_id = s.item_id
               WHERE p.dataset = $d GROUP BY ALL ORDER BY p.protocol_id""",
            {"d": dataset},
        )

    def sample_items_with_images(self, dataset: str, n: int = 12) -> pd.DataFrame:
        """The most-interacted items that have an image (for thumbnails)."""
        return self.sql_df(
            """SELECT it.item_id, it.title, it.category, it.image_sha256, im.ext, count(*) AS interactions
               FROM items it JOIN images im ON im.sha256 = it.image_sha256
               JOIN interactions i USING (dataset, item_id)
               WHERE it.dataset = ? GROUP BY ALL ORDER BY interactions DESC, it.item_id LIMIT ?""",
            [dataset, n],
        )
