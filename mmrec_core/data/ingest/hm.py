"""H&M Personalized Fashion Recommendations layout: articles.csv, transactions.csv,
customers.csv (optional) and images/<article_id>.jpg (optional per article)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
    RawDataset,
    attributes_json,
    parse_timestamps,
    read_table,
    require_file,
    require_values,
)

# The attribute columns rendered into an article's text, in reading order.
_TEXT_COLUMNS = ("product_type_name", "product_group_name", "colour_group_name", "graphical_appearance_name",
                 "index_name", "section_name", "garment_group_name", "detail_desc")


def _article_id(values: pd.Series) -> pd.Series:
    """Article ids are 10-digit zero-padded strings (they name the image files); restore lost padding."""
    values = values.str.strip()
    return values.where(~values.str.fullmatch(r"\d{1,9}"), values.str.zfill(10))


def _article_text(row: dict) -> str:
    parts = [f"{row['prod_name']}."]
    parts += [f"{col.removesuffix('_name').replace('_', ' ')}: {row[col]}." for col in _TEXT_COLUMNS
              if row.get(col, "").strip() and col != "detail_desc"]
    if row.get("detail_desc", "").strip():
        parts.append(row["detail_desc"].strip())
    return " ".join(parts)


def read_hm(folder: Path) -> RawDataset:
    articles_file = require_file(folder, "articles.csv")
    trans_file = require_file(folder, "transactions.csv")
    articles = read_table(articles_file, ["article_id", "prod_name", "product_type_name"])
    require_values(articles, articles_file, ["article_id"])
    articles["article_id"] = _article_id(articles["article_id"])
    image_dir = folder / "images"
    items = pd.DataFrame({
        "item_id": articles["article_id"],
        "title": articles["prod_name"],
        "text": [_article_text(r) for r in articles.to_dict(orient="records")],
        "category": articles["product_type_name"],
        "attributes": attributes_json(articles),
        "image_path": [p if p.is_file() else None for p in (image_dir / f"{a}.jpg" for a in articles["article_id"])],
    })

    trans = read_table(trans_file, ["t_dat", "customer_id", "article_id"])
    require_values(trans, trans_file, ["t_dat", "customer_id", "article_id"])
    extra_cols = [c for c in trans.columns if c not in ("t_dat", "customer_id", "article_id")]
    interactions = pd.DataFrame({
        "user_id": trans["customer_id"].str.strip(),
        "item_id": _article_id(trans["article_id"]),
        "ts": parse_timestamps(trans["t_dat"], trans_file, "t_dat"),
        "rating": None,
        "extra": [json.dumps(r) for r in trans[extra_cols].to_dict(orient="records")],
        "_file": str(trans_file),
        "_row": range(1, len(trans) + 1),
        "_order": range(len(trans)),
        "_item_column": "article_id",
    })

    users = pd.DataFrame({"user_id": interactions["user_id"].unique()})
    customers_file = folder / "customers.csv"
    if customers_file.is_file():
        customers = read_table(customers_file, ["customer_id"])
        customers = customers.drop_duplicates("customer_id").set_index("customer_id", drop=False)
        attrs = dict(zip(customers.index, attributes_json(customers), strict=True))
        users["attributes"] = users["user_id"].map(attrs)
    else:
        users["attributes"] = None
    return RawDataset("hm", folder, items, interactions, users)
