"""The schema: every table, in versioned migrations applied in order when a file is opened.

A file written by an older version is upgraded in place (each step in its own transaction); a file
from a newer version is refused (see `database.Store`). Add a migration, never edit an applied one.
"""

from __future__ import annotations

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
    (
        7,
        "grounding: each stored text's claims, marked supported by the catalog, by the image, or unsupported",
        """
        ALTER TABLE descriptions ADD COLUMN grounding JSON;  -- {"version", "claims": [{kind, text, support, ...}]}
        ALTER TABLE keywords ADD COLUMN grounding JSON;
        ALTER TABLE profiles ADD COLUMN grounding JSON;
        ALTER TABLE llm_scores ADD COLUMN grounding JSON;    -- of the rationale, where one was written
        CREATE TABLE item_splits (            -- items held out from describer/classifier training, drawn once
            dataset VARCHAR NOT NULL, split_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
            part VARCHAR NOT NULL,            -- 'train' | 'test'
            PRIMARY KEY (dataset, split_id, item_id)
        );
        """,
    ),
    (
        8,
        "explanations: counterfactual attribution per customer and candidate, named what-if scenarios",
        f"""
        CREATE TABLE attributions (           -- a candidate's yes/no score with one context piece left out
            dataset VARCHAR NOT NULL, protocol_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,         -- the candidate
            piece_kind VARCHAR NOT NULL,      -- 'purchase' | 'similar' | 'profile' | 'image keywords' | ...
            piece_key VARCHAR NOT NULL,       -- the purchase's or similar item's id, the sentence number
            piece_text VARCHAR NOT NULL,      -- what the prompt showed
            score DOUBLE NOT NULL, score_without DOUBLE NOT NULL,
            rank INTEGER NOT NULL, rank_without INTEGER NOT NULL,  -- among the customer's candidates
            {_PROVENANCE}
        );
        CREATE TABLE scenarios (              -- what-if edits saved by name; never a customer's real profile
            dataset VARCHAR NOT NULL, protocol_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            edits JSON NOT NULL,              -- the profile text, purchases removed/added, keywords changed
            results JSON NOT NULL,            -- per candidate: score and rank before and after
            {_PROVENANCE},
            PRIMARY KEY (dataset, protocol_id, user_id, name)
        );
        """,
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]

# Tables whose rows belong to one data set: removed together when a data set is replaced.
DATASET_TABLES = (
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
    "item_splits",
    "attributions",
    "scenarios",
)
