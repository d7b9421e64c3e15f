"""Generic layout: `items.csv|parquet` (item_id; optional title, text, category, image = a path
relative to the folder), `interactions.csv|parquet` (user_id, item_id; optional timestamp, else
file order) and optional `users.csv|parquet` (user_id + any attributes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
    IngestError,
    RawDataset,
    attributes_json,
    confine,
    interaction_frame,
    outside_message,
    parse_timestamps,
    read_table,
    require_file,
    require_values,
)


def _optional(df: pd.DataFrame, column: str) -> pd.Series | None:
    return df[column].where(df[column] != "", None) if column in df.columns else None


def read_generic(folder: Path) -> RawDataset:
    folder = folder.resolve()  # image paths are confined to the resolved folder
    items_file = require_file(folder, "items.csv", "items.parquet")
    inter_file = require_file(folder, "interactions.csv", "interactions.parquet")
    raw = read_table(items_file, ["item_id"])
    require_values(raw, items_file, ["item_id"])
    images: list[Path | None] = []
    refused: dict[str, str] = {}
    cells = raw["image"] if "image" in raw.columns else [""] * len(raw)
    for row, (item_id, rel) in enumerate(zip(raw["item_id"].str.strip(), cells, strict=True), start=1):
        if rel is None or pd.isna(rel) or not str(rel).strip():
            images.append(None)
            continue
        given = str(rel).strip()
        # Confinement comes before any look at the file, so an outside path gets the same answer
        # whether or not something exists there (no probing of the machine's files).
        path = confine(folder, folder / given)
        if path is None:
            refused[item_id] = outside_message(items_file, row, "image", item_id, given, folder)
            images.append(None)
            continue
        if not path.is_file():
            raise IngestError(
                items_file,
                f"image file '{given}' does not exist (paths are relative to {folder}).",
                row=row,
                column="image",
            )
        images.append(path)
    title = _optional(raw, "title")
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"].str.strip(),
            "title": title if title is not None else raw["item_id"],
            "text": _optional(raw, "text") if "text" in raw.columns else title,
            "category": _optional(raw, "category"),
            "attributes": attributes_json(raw),
            "image_path": images,
        }
    )

    inter = read_table(inter_file, ["user_id", "item_id"])
    require_values(inter, inter_file, ["user_id", "item_id"])
    has_time = "timestamp" in inter.columns
    rating = pd.to_numeric(inter["rating"], errors="coerce") if "rating" in inter.columns else None
    interactions = interaction_frame(
        inter_file,
        inter["user_id"].str.strip(),
        inter["item_id"].str.strip(),
        ts=parse_timestamps(inter["timestamp"], inter_file, "timestamp") if has_time else pd.NaT,
        rating=rating,
        exact_dup=inter.duplicated().to_numpy(),  # identical in every source column
    )

    users = pd.DataFrame(columns=["user_id", "attributes"])
    users_file = next((folder / n for n in ("users.csv", "users.parquet") if (folder / n).is_file()), None)
    if users_file is not None:
        raw_users = read_table(users_file, ["user_id"], allow_empty=True)
        raw_users = raw_users.drop_duplicates("user_id").set_index("user_id", drop=False)
        known = dict(zip(raw_users.index, attributes_json(raw_users), strict=True))
        ids = interactions["user_id"].unique()
        users = pd.DataFrame({"user_id": ids, "attributes": [known.get(u) for u in ids]})
    return RawDataset("generic", folder, items, interactions, users, items_file=items_file, refused=refused)
