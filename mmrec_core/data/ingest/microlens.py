"""MicroLens layout: `*_pairs.tsv` (`user<TAB>item item ...`, chronological, no timestamps) and
`*_titles.csv` (`item,title`). No images: the covers are only served by the MicroLens host."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
    IngestError,
    RawDataset,
    attributes_json,
    interaction_frame,
    read_table,
    require_values,
)


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise IngestError(folder, f"expected exactly one file matching {pattern}, found {len(found)}.")
    return found[0]


def read_microlens(folder: Path) -> RawDataset:
    pairs_file = _one(folder, "*_pairs.tsv")
    titles_file = _one(folder, "*_titles.csv")
    titles = read_table(titles_file, ["item", "title"])
    require_values(titles, titles_file, ["item"])
    items = pd.DataFrame(
        {
            "item_id": titles["item"].str.strip(),
            "title": titles["title"],
            "text": titles["title"],
            "category": None,
            "attributes": attributes_json(titles),
            "image_path": None,
        }
    )

    lines = pd.read_csv(
        pairs_file,
        sep="\t",
        header=None,
        names=["user_id", "items"],
        dtype=str,
        keep_default_na=False,
        quoting=3,
        on_bad_lines="error",
        engine="c",
    )
    if lines.empty:
        raise IngestError(pairs_file, "the file is empty.")
    no_items = lines["items"].str.strip() == ""
    if no_items.any():
        row = int(no_items.to_numpy().argmax()) + 1
        raise IngestError(
            pairs_file,
            "no items after the user id (expected `user<TAB>item item ...`).",
            row=row,
            column="items",
            hint="Check that the user id is followed by a tab.",
        )
    require_values(lines, pairs_file, ["user_id"])
    seqs = lines.assign(_row=range(1, len(lines) + 1), item_id=lines["items"].str.split())
    inter = seqs.explode("item_id", ignore_index=True)
    return RawDataset(
        "microlens",
        folder,
        items,
        interaction_frame(
            pairs_file, inter["user_id"].str.strip(), inter["item_id"], rows=inter["_row"], item_column="items"
        ),
        items_file=titles_file,
        item_column="item",
    )
