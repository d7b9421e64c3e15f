"""H&M Personalized Fashion Recommendations layout: articles.csv, transactions.csv,
customers.csv (optional) and images/<article_id>.jpg (optional per article)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
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

# The attribute columns rendered into an article's text, in reading order.
_TEXT_COLUMNS = (
    "product_type_name",
    "product_group_name",
    "colour_group_name",
    "graphical_appearance_name",
    "index_name",
    "section_name",
    "garment_group_name",
    "detail_desc",
)


def _article_id(values: pd.Series) -> pd.Series:
    """Article ids are 10-digit zero-padded strings (they name the image files); restore lost padding."""
    values = values.str.strip()
    return values.where(~values.str.fullmatch(r"\d{1,9}"), values.str.zfill(10))


def _article_text(row: dict) -> str:
    parts = [f"{row['prod_name']}."]
    parts += [
        f"{col.removesuffix('_name').replace('_', ' ')}: {row[col]}."
        for col in _TEXT_COLUMNS
        if row.get(col, "").strip() and col != "detail_desc"
    ]
    if row.get("detail_desc", "").strip():
        parts.append(row["detail_desc"].strip())
    return " ".join(parts)


def _images(folder: Path, articles_file: Path, article_ids: pd.Series) -> tuple[list[Path | None], dict[str, str]]:
    """Each article's `images/<article_id>.jpg` if present, confined to `folder`; outside ones are refused.

    An article id such as `../../x` or a symlink out of the folder would otherwise read any file.
    """
    paths: list[Path | None] = []
    refused: dict[str, str] = {}
    for row, article in enumerate(article_ids, start=1):
        given = f"images/{article}.jpg"
        path = confine(folder, folder / given)
        if path is None:
            refused[article] = outside_message(articles_file, row, "article_id", article, given, folder)
        paths.append(path if path is not None and path.is_file() else None)
    return paths, refused


def read_hm(folder: Path) -> RawDataset:
    folder = folder.resolve()  # image paths are confined to the resolved folder
    articles_file = require_file(folder, "articles.csv")
    trans_file = require_file(folder, "transactions.csv")
    articles = read_table(articles_file, ["article_id", "prod_name", "product_type_name"])
    require_values(articles, articles_file, ["article_id"])
    articles["article_id"] = _article_id(articles["article_id"])
    image_paths, refused = _images(folder, articles_file, articles["article_id"])
    items = pd.DataFrame(
        {
            "item_id": articles["article_id"],
            "title": articles["prod_name"],
            "text": [_article_text(r) for r in articles.to_dict(orient="records")],
            "category": articles["product_type_name"],
            "attributes": attributes_json(articles),
            "image_path": image_paths,
        }
    )

    trans = read_table(trans_file, ["t_dat", "customer_id", "article_id"])
    require_values(trans, trans_file, ["t_dat", "customer_id", "article_id"])
    extra_cols = [c for c in trans.columns if c not in ("t_dat", "customer_id", "article_id")]
    interactions = interaction_frame(
        trans_file,
        trans["customer_id"].str.strip(),
        _article_id(trans["article_id"]),
        ts=parse_timestamps(trans["t_dat"], trans_file, "t_dat"),
        extra=[json.dumps(r) for r in trans[extra_cols].to_dict(orient="records")],
        item_column="article_id",
        exact_dup=trans.duplicated().to_numpy(),  # identical in every source column
    )

    users = pd.DataFrame({"user_id": interactions["user_id"].unique()})
    customers_file = folder / "customers.csv"
    if customers_file.is_file():
        customers = read_table(customers_file, ["customer_id"], allow_empty=True)
        customers = customers.drop_duplicates("customer_id").set_index("customer_id", drop=False)
        attrs = dict(zip(customers.index, attributes_json(customers), strict=True))
        users["attributes"] = users["user_id"].map(attrs)
    else:
        users["attributes"] = None
    return RawDataset(
        "hm", folder, items, interactions, users, items_file=articles_file, item_column="article_id", refused=refused
    )
