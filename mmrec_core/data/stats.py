"""Data set statistics: what `mmrec info` prints and the Overview page shows."""

from __future__ import annotations

import pandas as pd

from mmrec_core.store.database import Store


def dataset_summary(store: Store, dataset: str) -> dict:
    """Headline counts for one data set (raises KeyError naming the known ones if it is unknown)."""
    info = store.require_dataset(dataset)
    row = store.dataset_counts(dataset)
    lengths = store.sequence_lengths(dataset)
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
    summary["protocols"] = store.protocol_summaries(dataset).to_dict(orient="records")
    return summary
