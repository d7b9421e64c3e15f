"""What every importer shares: reading tables with clear errors, normalising, and one atomic write.

An importer only turns its source layout into a `RawDataset` (items, users, interactions as data
frames in a common shape); `write_raw_dataset` validates it, collapses same-day repeats, copies
images into the content-addressed store and writes everything in ONE transaction.
"""

from __future__ import annotations

import csv
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmrec_core.store.database import Store
from mmrec_core.store.images import BadImageError, ImageInfo, ImageStore, inspect_image


class IngestError(ValueError):
    """Bad input, named precisely: which file, which row (1-based, header excluded), which column."""

    def __init__(self, file: str | Path, problem: str, *, row: int | None = None, column: str | None = None,
                 hint: str = ""):
        where = str(file)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}" + (f" {hint}" if hint else ""))
        self.file, self.row, self.column = str(file), row, column


@dataclass
class RawDataset:
    """A source turned into three frames with a common shape (see the column lists below)."""

    format: str
    source: Path
    items: pd.DataFrame  # item_id, title, text, category, attributes (JSON str), image_path (Path|None)
    interactions: pd.DataFrame  # user_id, item_id, ts (datetime|NaT), rating, extra, _file, _row, _order
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["user_id", "attributes"]))
    params: dict = field(default_factory=dict)


@dataclass
class IngestReport:
    dataset: str
    status: str  # 'ingested' | 'unchanged'
    n_items: int
    n_users: int
    n_interactions: int
    n_raw_rows: int
    n_images: int
    protocol_id: str | None = None

    def __str__(self) -> str:
        return (f"{self.dataset}: {self.status} - {self.n_items:,} items ({self.n_images:,} with images), "
                f"{self.n_users:,} users, {self.n_interactions:,} interactions "
                f"({self.n_raw_rows:,} source rows); protocol {self.protocol_id}")


# -- reading ----------------------------------------------------------------------------------------
def require_file(folder: Path, *names: str) -> Path:
    """The first of `names` present in `folder`, or an error listing what was expected."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise IngestError(folder, f"expected {' or '.join(names)} here, found none.",
                      hint="Check the path and the format name (`mmrec ingest --help`).")


def read_table(path: Path, required: list[str], *, sep: str = ",", encoding: str = "utf-8",
               header: bool = True, names: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file as strings, checking the delimiter and required columns."""
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise IngestError(path, f"not a readable Parquet file ({exc}).") from exc
        df = df.astype({c: "string" for c in df.columns if df[c].dtype == object})
    else:
        try:
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding,
                             header=0 if header else None, names=names, quoting=csv.QUOTE_MINIMAL)
        except pd.errors.ParserError as exc:
            raise IngestError(path, f"broken {_sep_name(sep)}-separated file: {exc}.",
                              hint="Every row needs the same number of fields; check quoting.") from exc
        except UnicodeDecodeError as exc:
            raise IngestError(path, f"not {encoding} text ({exc}).") from exc
        except pd.errors.EmptyDataError as exc:
            raise IngestError(path, "the file is empty.") from exc
        if len(df.columns) == 1 and len(required) > 1:
            guess = _guess_separator(path, encoding)
            if guess and guess != sep:
                raise IngestError(path, f"the file is {_sep_name(guess)}-separated; expected "
                                        f"{_sep_name(sep)}-separated.", hint="Convert the delimiter.")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise IngestError(path, f"missing column(s) {missing}; found {list(df.columns)}.",
                          column=missing[0])
    return df


def _sep_name(sep: str) -> str:
    return {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "space"}.get(sep, repr(sep))


def _guess_separator(path: Path, encoding: str) -> str | None:
    with open(path, encoding=encoding, errors="replace") as fh:
        head = fh.readline()
    counts = {s: head.count(s) for s in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def require_values(df: pd.DataFrame, file: Path, columns: list[str]) -> None:
    """Raise on the first empty value in `columns` (ids must never be blank)."""
    for col in columns:
        blank = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if blank.any():
            raise IngestError(file, "empty value.", row=int(np.argmax(blank.to_numpy())) + 1, column=col)


def parse_timestamps(values: pd.Series, file: Path, column: str) -> pd.Series:
    """Dates/datetimes as text, or Unix seconds; the first unparseable value is reported by row."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().mean() > 0.5:  # a numeric column: every value must be Unix seconds
        parsed, bad = pd.to_datetime(numeric, unit="s"), numeric.isna()
    else:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = parsed.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise IngestError(file, f"'{values.iloc[row]}' is not a date/time or Unix timestamp.",
                          row=row + 1, column=column)
    return parsed


def attributes_json(df: pd.DataFrame) -> list[str]:
    """Every source column of each row as a JSON object (kept verbatim in the attributes column)."""
    return [json.dumps(rec, ensure_ascii=False, default=str) for rec in df.to_dict(orient="records")]


# -- normalising ------------------------------------------------------------------------------------
def check_item_ids(raw: RawDataset) -> None:
    known = set(raw.items["item_id"])
    unknown = ~raw.interactions["item_id"].isin(known)
    if unknown.any():
        bad = raw.interactions[unknown].iloc[0]
        raise IngestError(bad["_file"], f"item '{bad['item_id']}' is not in the item table.",
                          row=int(bad["_row"]), column=bad.get("_item_column", "item_id"),
                          hint=f"({int(unknown.sum())} such rows.) Add the item or remove the rows.")
    dup = raw.items["item_id"].duplicated()
    if dup.any():
        raise IngestError(raw.source, f"item id '{raw.items['item_id'][dup].iloc[0]}' appears twice in the "
                                      "item table.", row=int(np.argmax(dup.to_numpy())) + 1, column="item_id")


def collapse_interactions(inter: pd.DataFrame) -> pd.DataFrame:
    """Chronological histories: one row per (user, item, day), in a canonical order.

    Several source rows for the same user, item and day (H&M: two sizes bought together) become
    one interaction with `n_rows` > 1; later repeats of the item stay as separate interactions.
    With timestamps, ties (same time) are broken by item id, so the order, and so the split,
    depends on the data alone, not on how the file happens to be sorted. Without timestamps,
    source order is the only order there is, and nothing collapses.
    """
    timed = inter["ts"].notna().all()
    keys = ["user_id", "ts", "item_id", "_order"] if timed else ["user_id", "_order"]
    inter = inter.sort_values(keys, kind="stable")
    group_key = inter["ts"].dt.floor("D") if timed else inter["_order"]
    grouped = inter.assign(_day=group_key).groupby(["user_id", "item_id", "_day"], sort=False)
    first = grouped.head(1).copy()  # keeps sort order: first occurrence in canonical order
    first["n_rows"] = grouped["_order"].transform("size").loc[first.index].astype("int32")
    first["seq"] = first.groupby("user_id").cumcount().astype("int32")
    return first[["user_id", "seq", "item_id", "ts", "n_rows", "rating", "extra"]].reset_index(drop=True)


def fingerprint(*frames: pd.DataFrame) -> str:
    """A stable hash of data frames' content (independent of the source file's row order)."""
    h = hashlib.sha256()
    for df in frames:
        h.update(",".join(df.columns).encode())
        h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


# -- images ---------------------------------------------------------------------------------------
def inspect_images(paths: list[Path | None]) -> list[ImageInfo | None]:
    """Decode every image (in threads: PIL releases the GIL); the first bad one is an IngestError."""
    def one(p: Path | None) -> ImageInfo | None:
        if p is None:
            return None
        try:
            return inspect_image(p.read_bytes(), str(p))
        except BadImageError as exc:
            raise IngestError(p, str(exc).split(": ", 1)[1]) from exc

    n = sum(p is not None for p in paths)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(tqdm(pool.map(one, paths), total=len(paths), desc="checking images",
                         disable=n == 0, unit="img", leave=False))


def write_raw_dataset(store: Store, image_store: ImageStore, raw: RawDataset, dataset: str, *,
                      replace: bool = False, protocol_args: dict | None = None) -> IngestReport:
    """Validate, normalise and write a data set atomically; re-ingesting identical data is a no-op."""
    from mmrec_core.data.splits import (
        create_protocol,  # late import: splits imports store only, but keep the graph flat
    )

    check_item_ids(raw)
    inter = collapse_interactions(raw.interactions)
    infos = inspect_images(list(raw.items["image_path"]))
    items = raw.items.drop(columns=["image_path"]).assign(
        image_sha256=[i.sha256 if i else None for i in infos])
    users = raw.users
    if users.empty:
        users = pd.DataFrame({"user_id": inter["user_id"].unique(), "attributes": None})
    fp = fingerprint(items.sort_values("item_id"), inter.drop(columns=["extra"]), users.sort_values("user_id"))

    existing = store.dataset_info(dataset)
    report = IngestReport(dataset, "unchanged", len(items), len(users), len(inter), len(raw.interactions),
                          sum(i is not None for i in infos))
    if existing is not None and existing["fingerprint"] == fp:
        stored = store.protocols(dataset)["protocol_id"]
        report.protocol_id = stored.min() if len(stored) else None
        return report
    if existing is not None and not replace:
        raise IngestError(raw.source, f"data set '{dataset}' already exists with different content.",
                          hint="Pass --replace to overwrite it (its splits, negatives and artifacts are "
                               "deleted), or --name to load this as a new data set.")

    images = pd.DataFrame([vars(i) for i in infos if i is not None],
                          columns=["sha256", "ext", "width", "height", "n_bytes"])
    meta = {"dataset": dataset, "format": raw.format, "source": str(raw.source), "fingerprint": fp,
            "params": json.dumps(raw.params), "n_raw_rows": len(raw.interactions)}
    written: list[Path] = []
    try:
        with store.transaction() as tx:
            store.write_dataset(tx, meta, items, users, inter)
            store.add_images(tx, images)
            for path, info in zip(raw.items["image_path"], infos, strict=True):
                if info is not None:
                    target, new = image_store.put(Path(path).read_bytes(), info)
                    if new:
                        written.append(target)
            report.protocol_id = create_protocol(store, dataset, tx=tx, **(protocol_args or {}))
    except BaseException:
        for target in written:  # the rows are rolled back; don't leave their new files behind
            target.unlink(missing_ok=True)
        raise
    report.status = "ingested"
    return report
