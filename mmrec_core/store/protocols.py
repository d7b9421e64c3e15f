"""Named queries on evaluation protocols: splits, stored negatives, training data (mixed into `Store`).

Training data of a protocol = every interaction that is not (and does not come after) one of its
valid/test targets; profiles, graphs and models read only that.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from mmrec_core.store.rows import insert_frame

# A user's training interactions: not a held-out target and before it.
_TRAIN = """
    FROM interactions i
    JOIN protocols p ON p.dataset = i.dataset AND p.protocol_id = $p
    ANTI JOIN splits s ON s.protocol_id = p.protocol_id AND s.user_id = i.user_id AND s.seq <= i.seq
"""


class ProtocolQueries:
    """Protocols, splits and negatives; uses the `Store` connection."""

    def protocols(self, dataset: str) -> pd.DataFrame:
        """The data set's protocols, oldest first."""
        return self.sql_df("SELECT * FROM protocols WHERE dataset = ? ORDER BY created_at, protocol_id", [dataset])

    def protocol_dataset(self, protocol_id: str) -> str | None:
        """The data set a protocol belongs to, or None if there is no such protocol."""
        return self.scalar("SELECT dataset FROM protocols WHERE protocol_id = ?", [protocol_id])

    def default_protocol(self, dataset: str, protocol_id: str | None = None) -> str:
        """`protocol_id` (checked to belong to `dataset`), else the data set's oldest protocol (made at ingest).

        Only reads. KeyError naming the command to run for an unknown data set or protocol.
        """
        self.require_dataset(dataset)
        if protocol_id:
            owner = self.protocol_dataset(protocol_id)
            if owner != dataset:
                where = f"belongs to data set '{owner}'" if owner else "does not exist"
                raise KeyError(f"Protocol '{protocol_id}' {where}; create one for '{dataset}' with `mmrec protocol`.")
            return protocol_id
        stored = self.protocols(dataset)["protocol_id"].tolist()
        if not stored:
            raise KeyError(
                f"Data set '{dataset}' has no evaluation protocol; create one with `mmrec protocol {dataset}`."
            )
        return stored[0]

    def write_protocol(
        self, tx: duckdb.DuckDBPyConnection, meta: dict, targets: pd.DataFrame, negatives: pd.DataFrame
    ) -> None:
        """Store a protocol row with its targets (splits) and negatives inside the caller's transaction."""
        tx.execute(
            "INSERT INTO protocols (protocol_id, dataset, split, min_history, n_negatives, seed, data_fingerprint, "
            "n_users) VALUES ($protocol_id, $dataset, 'leave-one-out', $min_history, $n_negatives, $seed, "
            "$data_fingerprint, $n_users)",
            meta,
        )
        for table, frame in (("splits", targets), ("negatives", negatives)):
            insert_frame(tx, table, frame.assign(protocol_id=meta["protocol_id"]))

    def train_interactions(self, protocol_id: str) -> pd.DataFrame:
        """All interactions that are not a valid/test target of this protocol (the only data models see)."""
        query = f"SELECT i.user_id, i.seq, i.item_id, i.ts {_TRAIN} ORDER BY i.user_id, i.seq"
        return self.sql_df(query, {"p": protocol_id})

    def user_train_history(self, protocol_id: str, user_id: str) -> pd.DataFrame:
        """One user's training interactions (seq, item_id, ts), oldest first."""
        return self.sql_df(
            f"SELECT i.seq, i.item_id, i.ts {_TRAIN} WHERE i.user_id = $u ORDER BY i.seq",
            {"p": protocol_id, "u": user_id},
        )

    def train_history_lengths(self, dataset: str, protocol_id: str, query: str = "", limit: int = 500) -> pd.DataFrame:
        """Users whose id contains `query`, longest training history first: user_id, history, held_out,
        has_profile, flagged (the final profile was flagged)."""
        return self.sql_df(
            f"""WITH train AS (SELECT i.user_id, count(*) AS history {_TRAIN} GROUP BY i.user_id),
            held AS (SELECT user_id, count(*) AS held_out FROM splits WHERE protocol_id = $p GROUP BY user_id),
            prof AS (
                SELECT user_id, bool_or(is_final) AS has_profile, bool_or(flag IS NOT NULL AND is_final) AS flagged
                FROM profiles WHERE dataset = $d AND protocol_id = $p GROUP BY user_id
            )
            SELECT t.user_id, t.history, coalesce(h.held_out, 0) AS held_out,
                   coalesce(pr.has_profile, FALSE) AS has_profile, coalesce(pr.flagged, FALSE) AS flagged
            FROM train t LEFT JOIN held h USING (user_id) LEFT JOIN prof pr USING (user_id)
            WHERE contains(lower(t.user_id), lower($q))
            ORDER BY t.history DESC, t.user_id LIMIT $limit""",
            {"d": dataset, "p": protocol_id, "q": query.strip(), "limit": limit},
        )

    def held_out(self, protocol_id: str, user_id: str | None = None) -> pd.DataFrame:
        """Valid/test targets (user_id, part, seq, item_id, is_repeat), of one user or all."""
        query = "SELECT user_id, part, seq, item_id, is_repeat FROM splits WHERE protocol_id = $p"
        params = {"p": protocol_id}
        if user_id is not None:
            query += " AND user_id = $u"
            params["u"] = user_id
        return self.sql_df(query + " ORDER BY user_id, seq", params)

    def test_targets(self, dataset: str, protocol_id: str) -> pd.DataFrame:
        """Each evaluated user's test item with its title, category (unknown when it has none) and whether it
        is cold (in no training interaction of the protocol)."""
        return self.sql_df(
            "SELECT s.user_id, s.item_id, it.title, coalesce(it.category, 'unknown') AS category, "
            f"s.item_id NOT IN (SELECT i.item_id {_TRAIN}) AS cold FROM splits s "
            "JOIN items it ON it.dataset = $d AND it.item_id = s.item_id WHERE s.protocol_id = $p AND s.part = 'test'",
            {"d": dataset, "p": protocol_id},
        )

    def evaluated_train_lengths(self, dataset: str, protocol_id: str) -> pd.Series:
        """Training interactions per evaluated user (held-out targets not counted), indexed by user_id."""
        return self.sql_df(
            "SELECT i.user_id, count(*) AS n FROM interactions i WHERE i.dataset = ? AND i.user_id IN "
            "(SELECT user_id FROM splits WHERE protocol_id = ? AND part = 'test') AND NOT EXISTS "
            "(SELECT 1 FROM splits s WHERE s.protocol_id = ? AND s.user_id = i.user_id AND s.seq = i.seq) "
            "GROUP BY i.user_id",
            [dataset, protocol_id, protocol_id],
        ).set_index("user_id")["n"]

    def candidates(self, protocol_id: str, part: str) -> pd.DataFrame:
        """Per evaluated user: the positive (is_positive, idx -1) and its stored negatives (idx 0..)."""
        return self.sql_df(
            """SELECT user_id, item_id, TRUE AS is_positive, -1 AS idx, is_repeat FROM splits
                 WHERE protocol_id = $p AND part = $part
               UNION ALL
               SELECT n.user_id, n.item_id, FALSE, n.idx, s.is_repeat FROM negatives n
                 JOIN splits s USING (protocol_id, user_id, part)
                 WHERE n.protocol_id = $p AND n.part = $part
               ORDER BY user_id, idx""",
            {"p": protocol_id, "part": part},
        )

    def repeat_share(self, protocol_id: str, part: str) -> float:
        return float(
            self.scalar(
                "SELECT coalesce(avg(is_repeat::INT), 0) FROM splits WHERE protocol_id = ? AND part = ?",
                [protocol_id, part],
            )
        )
