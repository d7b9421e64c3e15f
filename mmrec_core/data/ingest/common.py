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
from mmrec_core.store.images import BadImageError, ImageInfo, ImageStore, inspect_image, read_image_file


class IngestError(ValueError):
    """Bad input, named precisely: which file, which row (1-based, header excluded), which column."""

    def __init__(
        self, file: str | Path, problem: str, *, row: int | None = None, column: str | None = None, hint: str = ""
    ):
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
    items_file: Path | None = None  # the file the item rows come from (named in duplicate-id errors)
    item_column: str = "item_id"  # that file's id column, as its header spells it
    # Items refused one by one (item id -> why); write_raw_dataset drops them and their interactions.
    refused: dict[str, str] = field(default_factory=dict)


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
    n_duplicate_rows: int = 0  # source rows identical to an earlier row (user, item, time and every other field)
    duplicates_merged: bool = True  # False without timestamps: source order is the sequence, nothing merges
    skipped: list[str] = field(default_factory=list)  # one message per refused item
    n_skipped_rows: int = 0  # interaction rows dropped with those items

    # The summary lists this many refused items; the rest are counted.
    SHOW_SKIPPED = 10

    def __str__(self) -> str:
        text = (
            f"{self.dataset}: {self.status} - {self.n_items:,} items ({self.n_images:,} with images), "
            f"{self.n_users:,} users, {self.n_interactions:,} interactions "
            f"({self.n_raw_rows:,} source rows); protocol {self.protocol_id}"
        )
        if self.n_duplicate_rows:
            text += (
                f"; {self.n_duplicate_rows:,} exact duplicate source rows merged into the interaction they repeat"
                if self.duplicates_merged
                else f"; {self.n_duplicate_rows:,} exact duplicate source rows kept as separate interactions "
                "(no timestamps: the file order is the sequence)"
            )
        if self.skipped:
            text += f"\nskipped {len(self.skipped):,} item(s) and their {self.n_skipped_rows:,} interaction row(s):"
            text += "".join(f"\n  {m}" for m in self.skipped[: self.SHOW_SKIPPED])
            if len(self.skipped) > self.SHOW_SKIPPED:
                text += f"\n  ... and {len(self.skipped) - self.SHOW_SKIPPED:,} more"
        return text


# -- reading ----------------------------------------------------------------------------------------
def require_file(folder: Path, *names: str) -> Path:
    """The first of `names` present in `folder`, or an error listing what was expected."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise IngestError(
        folder,
        f"expected {' or '.join(names)} here, found none.",
        hint="Check the path and the format name (`mmrec ingest --help`).",
    )


def read_table(
    path: Path,
    required: list[str],
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    header: bool = True,
    names: list[str] | None = None,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file as strings, checking the delimiter, required columns and (unless
    `allow_empty`, for optional side tables) that there is at least one data row."""
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise IngestError(path, f"not a readable Parquet file ({exc}).") from exc
        df = df.astype({c: "string" for c in df.columns if df[c].dtype == object})
    else:
        try:
            df = pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                encoding=encoding,
                header=0 if header else None,
                names=names,
                quoting=csv.QUOTE_MINIMAL,
            )
        except pd.errors.ParserError as exc:
            raise IngestError(
                path,
                f"broken {_sep_name(sep)}-separated file: {exc}.",
                hint="Every row needs the same number of fields; check quoting.",
            ) from exc
        except UnicodeDecodeError as exc:
            raise IngestError(path, f"not {encoding} text ({exc}).") from exc
        except pd.errors.EmptyDataError as exc:
            raise IngestError(path, "the file is empty.") from exc
        if len(df.columns) == 1 and len(required) > 1:
            guess = _guess_separator(path, encoding)
            if guess and guess != sep:
                raise IngestError(
                    path,
                    f"the file is {_sep_name(guess)}-separated; expected {_sep_name(sep)}-separated.",
                    hint="Convert the delimiter.",
                )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise IngestError(path, f"missing column(s) {missing}; found {list(df.columns)}.", column=missing[0])
    if df.empty and not allow_empty:
        # Said here, by file: otherwise an empty table surfaces later as a misleading protocol error.
        raise IngestError(
            path,
            "the file has no data rows" + (" (only a header)." if header else "."),
            hint="Add the rows to load, or point the command at the right file.",
        )
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
        raise IngestError(
            file, f"'{values.iloc[row]}' is not a date/time or Unix timestamp.", row=row + 1, column=column
        )
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
        raise IngestError(
            bad["_file"],
            f"item '{bad['item_id']}' is not in the item table.",
            row=int(bad["_row"]),
            column=bad.get("_item_column", "item_id"),
            hint=f"({int(unknown.sum())} such rows.) Add the item or remove the rows.",
        )
    ids = raw.items["item_id"]
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        # Rows are positions in the item file (1-based, header excluded): readers keep every source row.
        rows = pd.Series(np.arange(1, len(ids) + 1), index=ids.index)[repeated].groupby(ids[repeated], sort=False)
        first_id, first_rows = next(iter(rows))
        dup_ids = list(rows.groups)
        others = (
            ""
            if len(dup_ids) == 1
            else (
                f" {len(dup_ids):,} ids are repeated in all, the first: "
                + ", ".join(f"'{i}' (rows {_rows_text(r)})" for i, r in list(rows)[:5])
                + "."
            )
        )
        raise IngestError(
            raw.items_file or raw.source,
            f"item id '{first_id}' appears {len(first_rows)} times, in rows {_rows_text(first_rows)} "
            f"(header excluded).{others}",
            column=raw.item_column,
            hint="Item ids must be unique: remove or merge the repeated rows.",
        )


def _rows_text(rows: pd.Series, limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows.iloc[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def interaction_frame(
    file: Path,
    user_id: pd.Series,
    item_id: pd.Series,
    *,
    ts: pd.Series | object = pd.NaT,
    rating: pd.Series | None = None,
    extra: list | None = None,
    rows: pd.Series | None = None,
    item_column: str | None = None,
    exact_dup: np.ndarray | None = None,
) -> pd.DataFrame:
    """The interactions table every reader returns (see `RawDataset.interactions`), with the bookkeeping that
    error messages and the merge need: the source file, its 1-based row (default: one row per interaction),
    the source order, the item id's column name where it is not `item_id`, and exact-duplicate flags."""
    columns = {
        "user_id": user_id,
        "item_id": item_id,
        "ts": ts,
        "rating": rating,
        "extra": extra,
        "_file": str(file),
        "_row": range(1, len(user_id) + 1) if rows is None else rows,
        "_order": range(len(user_id)),
    }
    if item_column is not None:
        columns["_item_column"] = item_column
    if exact_dup is not None:
        columns["_exact_dup"] = exact_dup
    return pd.DataFrame(columns)


# -- image paths ------------------------------------------------------------------------------------
def confine(folder: Path, path: Path) -> Path | None:
    """`path` fully resolved (symlinks followed), or None when it lies outside `folder`.

    The answer never depends on whether an outside file exists, so the message built from it
    cannot be used to probe the machine's files.
    """
    try:
        root, target = folder.resolve(), path.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop or a NUL byte: refused like an outside path
        return None
    return target if target.is_relative_to(root) else None


def outside_message(file: Path, row: int, column: str, item_id: str, given: str, folder: Path) -> str:
    """The one message for an image path outside the data set folder (existing file or not)."""
    return (
        f"{file}, row {row}, column '{column}': item '{item_id}' skipped: its image path '{given}' is outside "
        f"the data set folder {folder}. Copy the image into that folder and give its path relative to it "
        "(a symlink that points outside is refused too)."
    )


def drop_refused(raw: RawDataset) -> int:
    """Remove refused items and their interactions from `raw`; returns how many interaction rows went."""
    if not raw.refused:
        return 0
    gone = raw.interactions["item_id"].isin(raw.refused.keys())
    if gone.all():
        first = next(iter(raw.refused.values()))
        raise IngestError(
            raw.interactions["_file"].iloc[0],
            f"no interactions left: every row is with one of the "
            f"{len(raw.refused):,} skipped items. The first: {first}",
        )
    raw.items = raw.items[~raw.items["item_id"].isin(raw.refused.keys())].reset_index(drop=True)
    raw.interactions = raw.interactions[~gone].reset_index(drop=True)
    return int(gone.sum())


def exact_duplicates(inter: pd.DataFrame) -> int:
    """Source rows identical to an earlier one in every field kept (user, item, time, rating, extra)."""
    exact = inter.get("_exact_dup")
    if exact is not None:  # the reader compared the source rows themselves (all columns)
        return int(exact.sum())
    cols = [c for c in ("user_id", "item_id", "ts", "rating", "extra") if c in inter.columns]
    return int(inter[cols].astype(str).duplicated().sum())


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
            return inspect_image(read_image_file(p), str(p))  # an oversized file is refused unread
        except BadImageError as exc:
            raise IngestError(p, str(exc).split(": ", 1)[1]) from exc

    n = sum(p is not None for p in paths)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(
            tqdm(
                pool.map(one, paths), total=len(paths), desc="checking images", disable=n == 0, unit="img", leave=False
            )
        )


def write_raw_dataset(
    store: Store,
    image_store: ImageStore,
    raw: RawDataset,
    dataset: str,
    *,
    replace: bool = False,
    protocol_args: dict | None = None,
) -> IngestReport:
    """Validate, normalise and write a data set atomically; re-ingesting identical data is a no-op."""
    from mmrec_core.data.splits import (
        create_protocol,  # late import: splits imports store only, but keep the graph flat
    )

    check_item_ids(raw)
    n_skipped_rows = drop_refused(raw)
    timed = bool(raw.interactions["ts"].notna().all())
    n_duplicates = exact_duplicates(raw.interactions)
    inter = collapse_interactions(raw.interactions)
    infos = inspect_images(list(raw.items["image_path"]))
    items = raw.items.drop(columns=["image_path"]).assign(image_sha256=[i.sha256 if i else None for i in infos])
    users = raw.users
    if users.empty:
        users = pd.DataFrame({"user_id": inter["user_id"].unique(), "attributes": None})
    fp = fingerprint(items.sort_values("item_id"), inter.drop(columns=["extra"]), users.sort_values("user_id"))

    existing = store.dataset_info(dataset)
    report = IngestReport(
        dataset,
        "unchanged",
        len(items),
        len(users),
        len(inter),
        len(raw.interactions),
        sum(i is not None for i in infos),
        n_duplicate_rows=n_duplicates,
        duplicates_merged=timed,
        skipped=list(raw.refused.values()),
        n_skipped_rows=n_skipped_rows,
    )
    if existing is not None and existing["fingerprint"] == fp:
        stored = store.protocols(dataset)["protocol_id"]
        report.protocol_id = stored.min() if len(stored) else None
        return report
    if existing is not None and not replace:
        raise IngestError(
            raw.source,
            f"data set '{dataset}' already exists with different content.",
            hint="Pass --replace to overwrite it (its splits, negatives and artifacts are "
            "deleted), or --name to load this as a new data set.",
        )

    images = pd.DataFrame(
        [vars(i) for i in infos if i is not None], columns=["sha256", "ext", "width", "height", "n_bytes"]
    )
    meta = {
        "dataset": dataset,
        "format": raw.format,
        "source": str(raw.source),
        "fingerprint": fp,
        "params": json.dumps(raw.params),
        "n_raw_rows": len(raw.interactions),
    }
    written: list[Path] = []
    try:
        with store.transaction() as tx:
            store.write_dataset(tx, meta, items, users, inter)
            store.add_images(tx, images)
            for path, info in zip(raw.items["image_path"], infos, strict=True):
                if info is not None:
                    target, new = image_store.put(read_image_file(path), info)
                    if new:
                        written.append(target)
            report.protocol_id = create_protocol(store, dataset, tx=tx, **(protocol_args or {}))
    except BaseException:
        # the rows are rolled back: remove their new files, unless an upload committed a row for one meanwhile
        with image_store.write_lock():
            image_store.discard(written, store.image_keys([i.sha256 for i in infos if i is not None]))
        raise
    report.status = "ingested"
    return report
