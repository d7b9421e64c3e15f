"""Named queries on explanations: counterfactual attributions and saved what-if scenarios (mixed into `Store`).

Neither table is read by recommending or training: an attribution is a record of what moved a score, a
scenario a merchandiser's named experiment. Saving a scenario never touches the profiles table.
"""

from __future__ import annotations

import json

import pandas as pd

from mmrec_core.core.provenance import Provenance
from mmrec_core.store.rows import insert_frame

ATTRIBUTION_COLUMNS = [
    "item_id", "piece_kind", "piece_key", "piece_text", "score", "score_without", "rank", "rank_without",
]  # fmt: skip


class ExplanationQueries:
    """attributions and scenarios; uses the `Store` connection."""

    def write_attribution(
        self, dataset: str, protocol_id: str, user_id: str, rows: pd.DataFrame, provenance: Provenance, key: str
    ) -> None:
        """Replace the customer's attribution made with the same inputs (`key`) by `rows`, in one transaction."""
        frame = rows[ATTRIBUTION_COLUMNS].assign(
            dataset=dataset, protocol_id=protocol_id, user_id=user_id, input_hash=key, **provenance.columns()
        )
        with self.transaction() as tx:
            tx.execute(
                "DELETE FROM attributions WHERE dataset = ? AND protocol_id = ? AND user_id = ? AND input_hash = ?",
                [dataset, protocol_id, user_id, key],
            )
            insert_frame(tx, "attributions", frame)

    def attribution(self, dataset: str, protocol_id: str, user_id: str, key: str) -> pd.DataFrame:
        """A stored attribution made with the inputs `key` (empty when there is none), in stored order."""
        return self.sql_df(
            "SELECT * FROM attributions WHERE dataset = ? AND protocol_id = ? AND user_id = ? AND input_hash = ? "
            "ORDER BY item_id, abs(score - score_without) DESC",
            [dataset, protocol_id, user_id, key],
        )

    def save_scenario(
        self,
        dataset: str,
        protocol_id: str,
        user_id: str,
        name: str,
        edits: dict,
        results: list[dict],
        provenance: Provenance,
    ) -> None:
        """Store (or replace) a named what-if scenario of one customer."""
        with self.transaction() as tx:
            tx.execute(
                "DELETE FROM scenarios WHERE dataset = ? AND protocol_id = ? AND user_id = ? AND name = ?",
                [dataset, protocol_id, user_id, name],
            )
            cols = provenance.columns()
            tx.execute(
                "INSERT INTO scenarios (dataset, protocol_id, user_id, name, edits, results, engine, model, "
                "prompt_version, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [dataset, protocol_id, user_id, name, json.dumps(edits), json.dumps(results, default=float),
                 cols["engine"], cols["model"], cols["prompt_version"], cols["params"]],
            )  # fmt: skip

    def scenarios(self, dataset: str, protocol_id: str, user_id: str) -> pd.DataFrame:
        """A customer's saved scenarios, newest first (edits and results as JSON text)."""
        return self.sql_df(
            "SELECT name, edits, results, engine, model, params, created_at FROM scenarios "
            "WHERE dataset = ? AND protocol_id = ? AND user_id = ? ORDER BY created_at DESC",
            [dataset, protocol_id, user_id],
        )

    def user_purchases(self, dataset: str, user_id: str) -> pd.DataFrame:
        """A customer's interactions in order: seq, item_id, ts (NULL where the source has no time)."""
        return self.sql_df(
            "SELECT seq, item_id, ts FROM interactions WHERE dataset = ? AND user_id = ? ORDER BY seq",
            [dataset, user_id],
        )
