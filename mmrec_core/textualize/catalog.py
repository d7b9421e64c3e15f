"""The catalog as an analyst sees it: search items, add items from uploaded images, one item's text versions.

Why a module of its own: the Catalog page and the CLI need the same three things (find items, add new
ones, show everything stored about one), and uploads must be all-or-nothing (a bad file in a batch
stores nothing: no item rows, no image rows, no image files), which is easy to get wrong in a page.
Textualizing items is `textualize.textualize`; `start_textualize` runs it as a background job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec_core.core import jobs
from mmrec_core.engines import Engine
from mmrec_core.grounding.claims import Grounding, catalog_texts, check
from mmrec_core.store.database import Store
from mmrec_core.store.images import BadImageError, ImageInfo, inspect_image
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.build import TextualizeConfig, textualize

UPLOAD_CATEGORY = "uploaded"
TEXTUALIZE_JOB = "textualize"


def search_items(store: Store, dataset: str, query: str = "", limit: int = 60, offset: int = 0) -> pd.DataFrame:
    """Items whose id, title, category or newest keywords contain every word of `query` (any case).

    Columns: item_id, title, category, image_sha256, ext, keywords (list, empty before textualization),
    matches (how many items match in all, for "showing 24 of 130").
    """
    store.require_dataset(dataset)
    terms = query.lower().split()
    rows = store.search_items(dataset, terms, limit, offset)
    rows["keywords"] = _lists(rows["keywords"])
    return rows


def textualized_counts(store: Store, dataset: str) -> dict[str, int]:
    """How many items the data set has, and how many of them have at least one keyword set."""
    return {
        "items": store.count("items", dataset),
        "textualized": store.textualized_count(dataset),
    }


def upload_id(info: ImageInfo) -> str:
    """Uploaded items are named by their image's content, so the same image always gets the same id."""
    return f"upload-{info.sha256[:12]}"


def add_uploads(
    ws: Workspace, dataset: str, uploads: list[tuple[str, bytes]], title: str = "", category: str = ""
) -> list[str]:
    """Add one item per uploaded image to `dataset`; returns their ids in upload order.

    The batch size and every file are checked first (too many files, a non-image, an oversize file or
    image: BadImageError naming it and the limit), then images and items are inserted-or-got in one
    transaction: on any error no row is stored. The title defaults to the file name without extension,
    the category to "uploaded". An image uploaded before (in this session or, at the same moment, in
    another one) keeps its item and its id is returned; nothing is duplicated.
    """
    ws.store.require_dataset(dataset)
    limits = ws.images.limits
    if len(uploads) > limits.max_upload_files:
        raise BadImageError(
            f"{len(uploads)} files in one upload is over the limit of {limits.max_upload_files} images per "
            "upload; add them in smaller batches."
        )
    checked = [(name, data, inspect_image(data, name, limits)) for name, data in uploads]  # raises before any write
    ids = [upload_id(info) for _, _, info in checked]
    new: dict[str, tuple[str, bytes, ImageInfo]] = {}
    for item_id, upload in zip(ids, checked, strict=True):
        new.setdefault(item_id, upload)  # the same image twice in one batch is one item
    items = pd.DataFrame([_item_row(item_id, name, info, title, category) for item_id, (name, _, info) in new.items()])
    images = pd.DataFrame([vars(info) for _, _, info in new.values()])
    written: list[Path] = []

    def write_files() -> None:  # in the transaction, before its commit: a committed row always has its file
        for _, data, info in new.values():
            target, fresh = ws.images.put(data, info)
            if fresh:
                written.append(target)

    # the lock keeps the clean-up below from racing another upload of the same image in this process
    with ws.images.write_lock():
        try:
            stored = ws.store.add_uploaded_items(dataset, images=images, items=items, write_files=write_files)
        except BaseException:
            # rows are rolled back; remove only the files this call created that no committed row references
            ws.images.discard(written, ws.store.image_keys([info.sha256 for _, _, info in new.values()]))
            raise
    missing = set(new) - set(stored)
    if missing:  # cannot happen short of a concurrent delete of the data set; say so rather than return stale ids
        raise KeyError(f"Uploaded item(s) {sorted(missing)} are not in data set '{dataset}' after storing them.")
    return ids


def _item_row(item_id: str, name: str, info: ImageInfo, title: str, category: str) -> dict:
    title = title.strip() or Path(name).stem
    category = category.strip() or UPLOAD_CATEGORY
    attributes = {"source": "upload", "file_name": name, "width": info.width, "height": info.height}
    return {
        "item_id": item_id,
        "title": title,
        "text": f"{title}. category: {category}",
        "category": category,
        "image_sha256": info.sha256,
        "attributes": json.dumps(attributes, ensure_ascii=False),
    }


def item_view(store: Store, dataset: str, item_id: str) -> dict:
    """Everything stored about one item: its row (attributes parsed), `versions` (every description and
    keyword set, newest first, facets parsed, each description's `grounding`) and `latest` (the newest
    version as a dict, or None)."""
    item = store.item(dataset, item_id)
    item["attributes"] = _parsed(item.get("attributes"))
    versions = store.text_versions(dataset, item_id)
    for column in ("facets", "facts", "params"):
        if column in versions:
            versions[column] = [_parsed(v) for v in versions[column]]
    if "keywords" in versions:
        versions["keywords"] = _lists(versions["keywords"])
    # texts stored before grounding existed are checked now, against the same catalog and image facts
    attributes = item["attributes"] if isinstance(item["attributes"], dict) else {}
    texts = catalog_texts(item.get("title") or "", item.get("category") or "", item.get("text") or "", attributes)
    versions["grounding"] = [
        Grounding.from_json(g) if isinstance(g, str) and g else check(d, texts, f or [])
        for g, d, f in zip(versions["grounding"], versions["description"], versions["facts"], strict=True)
    ]
    item["versions"] = versions
    item["latest"] = versions.iloc[0].to_dict() if len(versions) else None
    return item


def _lists(values: pd.Series) -> list[list[str]]:
    # DuckDB lists arrive as arrays or lists; a missing one (LEFT JOIN) as None or pd.NA
    return [list(v) if isinstance(v, list | tuple) or hasattr(v, "tolist") else [] for v in values]


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return {} if value is None else value


def start_textualize(
    ws: Workspace, engine: Engine, dataset: str, item_ids: list[str] | None = None, force: bool = False
) -> str:
    """Textualize `item_ids` (None: the whole data set) in a background job; returns the job id.

    Resumable: items whose inputs are unchanged are skipped by `textualize` itself unless `force`.
    """
    ws.store.require_dataset(dataset)
    params = {"dataset": dataset, "item_ids": item_ids, "force": force, "engine": engine.settings.engine}
    config = TextualizeConfig(force=force)
    return jobs.start_job(
        ws.store,
        TEXTUALIZE_JOB,
        params,
        lambda progress: textualize(ws, engine, dataset, item_ids=item_ids, config=config, progress=progress),
    )
