"""Build `sample_data/` (the app's default data set) from the H&M subset in ../shared/datasets/hm.

Keeps a dense core: articles bought by at least --min-item-users customers and customers with at
least --min-user-items purchases among those articles, iterated until both hold (a k-core), so
sequences stay dense after filtering. Source rows are copied as they are (same-day duplicates
included, so the importer's collapsing is exercised); images are downscaled to --max-side pixels.

    python scripts/make_sample_data.py --source ../shared/datasets/hm --out sample_data
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd
from PIL import Image

NOTICE = """\
MMRec Studio sample data
========================

A small real subset of the H&M Personalized Fashion Recommendations data (Kaggle competition
"H&M Personalized Fashion Recommendations", 2022, data by H&M Group), as kept in the public
repository hungle45/PSE-Recommendor-System, filtered to a dense core by
scripts/make_sample_data.py: {n_articles} articles, {n_customers} customers, {n_rows} purchase rows
({first} .. {last}). Images are downscaled to at most {max_side} px.

Terms: the competition data is for non-commercial research and education use only. Do not use
this sample for anything else. Article ids are zero-padded 10-digit strings and name the images.
"""


def dense_core(trans: pd.DataFrame, min_item_users: int, min_user_items: int) -> pd.DataFrame:
    """Rows of `trans` whose article and customer both survive the iterated thresholds."""
    core = trans.drop_duplicates(["customer_id", "article_id", "t_dat"])
    while True:
        size = len(core)
        buyers = core.groupby("article_id")["customer_id"].nunique()
        core = core[core["article_id"].isin(buyers[buyers >= min_item_users].index)]
        counts = core.groupby("customer_id").size()
        core = core[core["customer_id"].isin(counts[counts >= min_user_items].index)]
        if len(core) == size:
            break
    return trans[trans["customer_id"].isin(core["customer_id"]) & trans["article_id"].isin(core["article_id"])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=Path("../shared/datasets/hm"))
    ap.add_argument("--out", type=Path, default=Path("sample_data"))
    ap.add_argument("--min-item-users", type=int, default=3)
    ap.add_argument("--min-user-items", type=int, default=5)
    ap.add_argument("--max-side", type=int, default=256)
    args = ap.parse_args()

    trans = pd.read_csv(args.source / "transactions.csv", dtype=str, keep_default_na=False)
    articles = pd.read_csv(args.source / "articles.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(args.source / "customers.csv", dtype=str, keep_default_na=False)
    sample = dense_core(trans, args.min_item_users, args.min_user_items)

    if args.out.exists():
        shutil.rmtree(args.out)
    (args.out / "images").mkdir(parents=True)
    sample.to_csv(args.out / "transactions.csv", index=False)
    articles[articles["article_id"].isin(sample["article_id"])].to_csv(args.out / "articles.csv", index=False)
    customers[customers["customer_id"].isin(sample["customer_id"])].to_csv(args.out / "customers.csv", index=False)
    for article_id in sorted(sample["article_id"].unique()):
        src = args.source / "images" / f"{article_id}.jpg"
        if src.is_file():
            with Image.open(src) as img:
                img = img.convert("RGB")
                img.thumbnail((args.max_side, args.max_side))
                img.save(args.out / "images" / f"{article_id}.jpg", quality=85, optimize=True)
    (args.out / "NOTICE").write_text(NOTICE.format(
        n_articles=sample["article_id"].nunique(), n_customers=sample["customer_id"].nunique(),
        n_rows=len(sample), first=sample["t_dat"].min(), last=sample["t_dat"].max(), max_side=args.max_side))
    print(f"wrote {args.out}: {sample['article_id'].nunique()} articles, "
          f"{sample['customer_id'].nunique()} customers, {len(sample)} rows")


if __name__ == "__main__":
    main()
