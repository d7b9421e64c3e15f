"""Named queries on the stored item graphs (graph_edges; mixed into `Store`)."""

from __future__ import annotations

import pandas as pd

from mmrec_core.store.rows import insert_frame


class GraphQueries:
    """Item graph edges with their provenance; uses the `Store` connection."""

    def graph_input_hashes(self, dataset: str, graph_id: str) -> list[str]:
        """The distinct input hashes of a stored graph's rows (one, for a complete build)."""
        rows = self.sql_df(
            "SELECT DISTINCT input_hash FROM graph_edges WHERE dataset = ? AND graph_id = ?", [dataset, graph_id]
        )
        return rows["input_hash"].tolist()

    def write_graph(self, dataset: str, graph_id: str, rows: pd.DataFrame) -> None:
        """Replace one graph's edges in one transaction: the old version goes only if the new one is written."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM graph_edges WHERE dataset = ? AND graph_id = ?", [dataset, graph_id])
            insert_frame(tx, "graph_edges", rows)

    def stored_graphs(self, dataset: str) -> pd.DataFrame:
        """One row per stored graph of a data set: graph_id, edges, params (JSON), engine, model, created_at."""
        return self.sql_df(
            "SELECT graph_id, count(*) AS edges, any_value(params) AS params, any_value(engine) AS engine, "
            "any_value(model) AS model, max(created_at) AS created_at FROM graph_edges WHERE dataset = ? "
            "GROUP BY graph_id ORDER BY created_at DESC",
            [dataset],
        )

    def graph_edges(self, dataset: str, graph_id: str) -> pd.DataFrame:
        """The stored edges of one graph (src, dst, weight, reason and provenance), by src, dst."""
        return self.sql_df(
            "SELECT src, dst, weight, reason, engine, model, prompt_version, params, input_hash, created_at "
            "FROM graph_edges WHERE dataset = ? AND graph_id = ? ORDER BY src, dst",
            [dataset, graph_id],
        )
