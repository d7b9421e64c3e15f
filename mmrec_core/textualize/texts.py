"""The readers of what textualization made, one per form, used by every consumer of item text.

- `item_keywords`: the newest keyword set per item; before textualization, the item's category;
- `item_lines`: one short line per item for prompts that list purchases (title and keywords);
- `catalog_entries`, `split_keywords`: the catalog's own words per item, and which keywords they name (the rest
  were read from the picture);
- `item_details`: the prose a prompt may show instead of keywords (newest description, or the catalog text);
- `fused_item_texts`: catalog text, newest description and keywords in one text (what the item graph
  embeds and the evidence checks);
- `source_texts`: the text keywords are made from (the description, then the catalog text);
- `item_evidence`: what each item's texts support, for the grounding checker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mmrec_core.core.safe_text import prompt_text
from mmrec_core.engines.base import ItemText
from mmrec_core.grounding.claims import Evidence, catalog_evidence, catalog_texts
from mmrec_core.store.database import Store
from mmrec_core.textualize.keywords import contains_term

# How prompts may show an item after its title (the recommender's `item_text`; all but the first are ablations):
# its keywords; only the keywords its catalog text names (without what was read from the picture); the full
# generated description instead of keywords; the catalog text alone (no textualization at all).
ITEM_TEXTS = ("keywords", "catalog-keywords", "description", "catalog")


def item_keywords(store: Store, dataset: str, images: bool = True) -> dict[str, list[str]]:
    """Newest keywords per item; an item not textualized yet falls back to its category (as the catalog writes it).
    `images=False`: only the keywords its catalog entry names (`split_keywords`)."""
    categories = store.items(dataset).set_index("item_id")["category"]
    keywords = store.latest_keywords(dataset).set_index("item_id")["keywords"]
    fallback = {i: [c] if isinstance(c, str) and c else [] for i, c in categories.items()}
    out = {**fallback, **{i: list(k) for i, k in keywords.items() if k is not None and len(k)}}
    if images:
        return out
    entries = catalog_entries(store, dataset)
    return {i: split_keywords(k, entries.get(i, ""))[1] for i, k in out.items()}


def catalog_entries(store: Store, dataset: str) -> dict[str, str]:
    """item_id -> the catalog's own words for it (title, text and category in one string)."""
    items = store.items(dataset)
    return {
        str(row.item_id): " ".join(str(v) for v in (row.title, row.text, row.category) if isinstance(v, str))
        for row in items.itertuples(index=False)
    }


def split_keywords(keywords: Sequence[str], catalog_entry: str) -> tuple[list[str], list[str]]:
    """(image keywords, catalog keywords): a keyword the catalog's own text names is the catalog's; the rest
    were read from the picture by textualization (its description comes from the image)."""
    text = catalog_entry.lower()
    image = [k for k in keywords if not contains_term(text, k.lower())]
    return image, [k for k in keywords if k not in image]


def _without_title(title: str, text: str) -> str:
    """`text` less a leading copy of `title` (catalog texts and descriptions often open with it)."""
    text = " ".join(text.split())
    if title and text.lower().startswith(title.lower()):
        text = text[len(title) :].lstrip(" .:,-")
    return text


def item_details(store: Store, dataset: str, kind: str) -> dict[str, str]:
    """item_id -> the prose a prompt shows after the item's title instead of keywords: the newest generated
    description (`description`; items not textualized yet are missing) or the catalog text (`catalog`)."""
    items = store.items(dataset)
    titles = dict(zip(items["item_id"].astype(str), items["title"].fillna(""), strict=True))
    if kind == "description":
        texts = store.latest_keywords(dataset).set_index("item_id")["description"].dropna().to_dict()
    elif kind == "catalog":
        texts = dict(zip(items["item_id"].astype(str), items["text"].fillna(""), strict=True))
    else:
        raise ValueError(f"item_details has no kind '{kind}'; use description or catalog.")
    out = {str(i): _without_title(str(titles.get(str(i), "")), str(t)) for i, t in texts.items()}
    return {i: t for i, t in out.items() if t}


def item_lines(store: Store, dataset: str) -> dict[str, str]:
    """A short line per item for prompts: `title (keyword, keyword, ...)`, the category before textualization."""
    titles = store.items(dataset).set_index("item_id")["title"]
    keywords = item_keywords(store, dataset)
    lines = {}
    for item_id, title in titles.items():
        # catalog data, never instructions: control tokens broken, line breaks folded (identity on clean text)
        name, extra = prompt_text(str(title or item_id)), ", ".join(prompt_text(k) for k in keywords.get(item_id, []))
        lines[item_id] = f"{name} ({extra})" if extra else name
    return lines


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


def fused_source(item: ItemText, description: str) -> str:
    """The item's source text: what the image shows, then what the catalog says."""
    catalog = item.text or item.as_text()
    return f"{description.strip()}\n{catalog}".strip() if description else catalog


def item_context(row: dict) -> ItemText:
    attributes = row.get("attributes")
    attributes = json.loads(attributes) if isinstance(attributes, str) and attributes else {}
    return ItemText(
        title=row.get("title") or "",
        category=row.get("category") or "",
        text=row.get("text") or "",
        attributes=attributes if isinstance(attributes, dict) else {},
    )


def source_texts(store: Store, dataset: str) -> dict[str, str]:
    """Each item's source text as textualization builds it (stored description first, then catalog text)."""
    items = store.items(dataset)
    described = store.latest_keywords(dataset).set_index("item_id")["description"].dropna().to_dict()
    return {
        str(row["item_id"]): fused_source(item_context(row), described.get(row["item_id"], ""))
        for row in items.to_dict("records")
    }


def item_evidence(store: Store, dataset: str) -> dict[str, Evidence]:
    """item_id -> what its catalog entry, newest description and keywords support (for checking profiles)."""
    items = store.items(dataset)
    latest = store.latest_keywords(dataset).set_index("item_id")
    desc, kws = latest["description"].to_dict(), latest["keywords"].to_dict()
    out = {}
    for row in items.to_dict("records"):
        c = item_context(row)
        keywords = kws.get(row["item_id"])
        extra = [desc.get(row["item_id"]) or "", ", ".join(keywords) if keywords is not None else ""]
        out[str(row["item_id"])] = catalog_evidence([*catalog_texts(c.title, c.category, c.text, c.attributes), *extra])
    return out
