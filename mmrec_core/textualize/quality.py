"""Attribute check of the describer against H&M ground truth, from the image alone.

H&M articles carry colour_group_name, product_type_name and graphical_appearance_name. We describe a
seeded sample of images with the catalog text WITHHELD, summarise the description as keywords, and
count how often description + keywords name the true value. Chance level per attribute = the share
of the most common value (what always naming the majority value would score). Nothing is stored:
this is a measuring stick for describer changes, not a pipeline stage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pandas as pd

from mmrec_core.core.prompts import domain_for
from mmrec_core.engines import Engine, GenerationOptions, ItemText
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.keywords import build_facets, parse_keywords
from mmrec_core.textualize.prompts import keyword_chat

ATTRIBUTES = {
    "colour": "colour_group_name",
    "product type": "product_type_name",
    "pattern": "graphical_appearance_name",
}


def names_value(text: str, value: str) -> bool:
    """Does `text` name `value`? Whole-phrase match; 'Leggings/Tights' counts when any part is named."""
    text = text.lower()
    parts = [p.strip() for p in re.split(r"[/&,]", value.lower()) if p.strip()]
    return any(re.search(rf"(?<![\w-]){re.escape(p)}s?(?![\w-])", text) for p in parts)


def evaluate_descriptions(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    n: int = 100,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Per attribute: items checked, accuracy, chance level (majority share) and number of distinct values."""
    items = ws.store.items_with_images(dataset).dropna(subset=["image_sha256"])
    attrs = ws.store.items(dataset)[["item_id", "attributes"]]
    truth = pd.DataFrame([json.loads(a) for a in attrs["attributes"]], index=attrs["item_id"])
    missing = [c for c in ATTRIBUTES.values() if c not in truth.columns]
    if missing:
        raise ValueError(f"Data set '{dataset}' has no {missing} attributes; eval-descriptions needs H&M articles.")
    items = items.merge(truth[list(ATTRIBUTES.values())], left_on="item_id", right_index=True)
    sample = items.sample(n=min(n, len(items)), random_state=seed).to_dict("records")
    categories = sorted(ws.store.items(dataset)["category"].dropna().unique())  # the catalog's vocabulary
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    texts: list[str] = []
    for first in range(0, len(sample), batch_size):
        batch = sample[first : first + batch_size]
        images = [ws.images.open(r["image_sha256"], r["ext"]) for r in batch]
        unknown = [ItemText() for _ in batch]  # the catalog text is withheld: the image alone
        descriptions = engine.describe(images, unknown, categories, domain=domain)
        options = GenerationOptions(max_new_tokens=32, batch_size=batch_size)
        answers = engine.generate([keyword_chat(d.text, domain) for d in descriptions], options)
        for d, a in zip(descriptions, answers, strict=True):
            facts = " ".join(f.value for f in d.facts)
            source = f"{d.text}\n{facts}"
            keywords, _ = build_facets(parse_keywords(a, 12), source, categories, 12)
            texts.append(f"{source}\n{', '.join(keywords)}")
        if progress:
            progress(len(texts), len(sample), "describing from images only")
    rows = []
    frame = pd.DataFrame(sample)
    for name, column in ATTRIBUTES.items():
        hits = [names_value(t, v) for t, v in zip(texts, frame[column], strict=True)]
        rows.append({
            "attribute": name,
            "items": len(hits),
            "accuracy": sum(hits) / len(hits) if hits else 0.0,
            "chance (majority)": frame[column].value_counts(normalize=True).iloc[0] if hits else 0.0,
            "majority value": frame[column].value_counts().index[0] if hits else "",
            "distinct values": frame[column].nunique(),
        })
    return pd.DataFrame(rows)
