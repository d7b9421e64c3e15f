"""Named queries on what the stages make: descriptions, keywords, profiles, embeddings, LLM scores."""

from __future__ import annotations

import duckdb
import pandas as pd

from mmrec_core.store.rows import replace_rows


class ArtifactQueries:
    """Model-made artifacts with their provenance; uses the `Store` connection."""

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
            if not frame.empty:
                replace_rows(tx, table, frame, ("dataset", "item_id", "input_hash"))

    def textualized_count(self, dataset: str) -> int:
        """Items with at least one stored keyword set."""
        return int(self.scalar("SELECT count(DISTINCT item_id) FROM keywords WHERE dataset = ?", [dataset]))

    def latest_keywords(self, dataset: str) -> pd.DataFrame:
        """The newest keyword set (with rewards) and description of every textualized item."""
        return self.sql_df(
            "SELECT k.item_id, k.keywords, k.facets, k.r_info, k.r_recon, k.r_len, k.reward, "
            "d.description, d.grounding, k.grounding AS keyword_grounding, k.engine, k.model, k.prompt_version, "
            "k.created_at FROM keywords k "
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
            "d.grounding, k.grounding AS keyword_grounding, "
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
        replace_rows(tx, "profiles", rows, ("dataset", "protocol_id", "user_id", "input_hash"))

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

    def embedding_count(self, dataset: str, kind: str) -> int:
        return int(self.scalar("SELECT count(*) FROM embeddings WHERE dataset = ? AND kind = ?", [dataset, kind]))

    def write_embeddings(self, tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
        """Replace the (dataset, kind, key) vectors in `rows` (columns as the embeddings table)."""
        replace_rows(tx, "embeddings", rows, ("dataset", "kind", "key"))

    def embeddings(self, dataset: str, kind: str) -> pd.DataFrame:
        return self.sql_df(
            "SELECT key, vector, model, input_hash FROM embeddings WHERE dataset = ? AND kind = ? ORDER BY key",
            [dataset, kind],
        )

    # -- LLM recommender results ------------------------------------------------------------------
    def write_llm_scores(self, tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
        """Replace the per-user rows with the same input hashes (columns as the llm_scores table)."""
        replace_rows(tx, "llm_scores", rows, ("input_hash",))

    def llm_scores(self, dataset: str, protocol_id: str, mode: str, part: str = "test") -> pd.DataFrame:
        """Every stored per-user LLM result of a protocol part and mode, one row per input hash."""
        return self.sql_df(
            "SELECT * FROM llm_scores WHERE dataset = ? AND protocol_id = ? AND part = ? AND mode = ? "
            "QUALIFY row_number() OVER (PARTITION BY input_hash ORDER BY created_at DESC) = 1",
            [dataset, protocol_id, part, mode],
        )
