"""RecBole atomic files: `<name>.inter` and `<name>.item`, tab-separated with typed headers such as
`user_id:token  item_id:token  rating:float  timestamp:float`. The path is the folder or the
.inter file. Without a timestamp column, file order is the sequence order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
    IngestError,
    RawDataset,
    attributes_json,
    interaction_frame,
    parse_timestamps,
    read_table,
    require_values,
)

TITLE_FIELDS = ("movie_title", "title", "name", "item_name")
CATEGORY_FIELDS = ("class", "genre", "categories", "category")


def _atomic(path: Path, required: list[str]) -> pd.DataFrame:
    """Read an atomic file and drop the `:type` suffixes from its header."""
    df = read_table(path, [], sep="\t")
    if len(df.columns) == 1 and ":" not in df.columns[0] and len(required) > 1:
        raise IngestError(path, "expected a tab-separated RecBole atomic file with `field:type` headers.")
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise IngestError(path, f"missing column(s) {missing}; found {list(df.columns)}.", column=missing[0])
    require_values(df, path, required)
    return df


def _find(path: Path) -> tuple[Path, Path]:
    if path.is_file():
        inter = path
    else:
        found = sorted(path.glob("*.inter"))
        if len(found) != 1:
            raise IngestError(path, f"expected exactly one .inter file here, found {len(found)}.")
        inter = found[0]
    item = inter.with_suffix(".item")
    if not item.is_file():
        raise IngestError(item, "the .item file next to the .inter file is missing.")
    return inter, item


def read_recbole(path: Path) -> RawDataset:
    inter_file, item_file = _find(path)
    raw_items = _atomic(item_file, ["item_id"])
    title_col = next((c for c in TITLE_FIELDS if c in raw_items.columns), "item_id")
    cat_col = next((c for c in CATEGORY_FIELDS if c in raw_items.columns), None)
    category = raw_items[cat_col].str.split().str[0] if cat_col else None
    items = pd.DataFrame(
        {
            "item_id": raw_items["item_id"].str.strip(),
            "title": raw_items[title_col],
            "text": [
                ". ".join(f"{k.replace('_', ' ')}: {v}" for k, v in r.items() if k != "item_id" and v) + "."
                for r in raw_items.to_dict(orient="records")
            ],
            "category": category,
            "attributes": attributes_json(raw_items),
            "image_path": None,
        }
    )

    inter = _atomic(inter_file, ["user_id", "item_id"])
    has_time = "timestamp" in inter.columns
    rating = pd.to_numeric(inter["rating"], errors="coerce") if "rating" in inter.columns else None
    return RawDataset(
        "recbole",
        inter_file,
        items,
        interaction_frame(
            inter_file,
            inter["user_id"].str.strip(),
            inter["item_id"].str.strip(),
            ts=parse_timestamps(inter["timestamp"], inter_file, "timestamp") if has_time else pd.NaT,
            rating=rating,
        ),
        items_file=item_file,
    )
