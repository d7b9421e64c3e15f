"""The one reader of an item's text as every later stage sees it: catalog text fused with the newest
description and keywords (the graph embeds it, profiles and the recommender quote it)."""

from __future__ import annotations

from collections.abc import Sequence

from mmrec_core.store.database import Store


def item_text(title: str | None, text: str | None, description: str | None, keywords: Sequence[str] | None) -> str:
    """An item's fused text: title, catalog text, newest description and keywords (whatever exists)."""
    title, text, description = (v.strip() if isinstance(v, str) else "" for v in (title, text, description))
    parts = [] if text.startswith(title) else [title]  # catalog texts often open with the title
    parts += [text, description]
    if keywords is not None and len(keywords):
        parts.append("Keywords: " + ", ".join(keywords) + ".")
    return "\n".join(p for p in parts if p)


def fused_item_texts(store: Store, dataset: str) -> dict[str, str]:
    """item_id -> fused text for every item of a data set (catalog order)."""
    items = store.items(dataset)
    latest = store.latest_keywords(dataset).set_index("item_id")
    desc, kws = latest["description"].to_dict(), latest["keywords"].to_dict()
    return {
        row.item_id: item_text(row.title, row.text, desc.get(row.item_id), kws.get(row.item_id))
        for row in items.itertuples(index=False)
    }
