"""`mmrec eval-descriptions`: the describers against H&M's own descriptions, on held-out articles.

The held-out articles are the test part of the stored item split (`data.splits.item_split`, seeded 80/20).
Each describer sees an article's image and its catalog fields EXCEPT `detail_desc`, and its text is scored
against what was withheld and what was shown:
- unsupported-claim rate: claims that neither the shown catalog fields nor the image's facts support, over
  all claims (the grounding checker); also the share of descriptions with at least one;
- similarity to detail_desc: cosine of the sentence embeddings of the description and the human text;
- mentions: how often the text names the article's true colour, product type and pattern.
Beside them, what the image alone says (the visual facts, no catalog at all): accuracy and balanced accuracy
for colour, product type and pattern, against always answering the majority value. Nothing is stored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmrec_core.core.prompts import domain_for
from mmrec_core.data.splits import item_split
from mmrec_core.engines import Engine, ItemText
from mmrec_core.grounding.claims import catalog_texts, check, colour_family
from mmrec_core.store.workspace import Workspace

ATTRIBUTES = {
    "colour": "colour_group_name",
    "product type": "product_type_name",
    "pattern": "graphical_appearance_name",
}
WITHHELD = "detail_desc"  # what the describers must not see: the text they are compared with
# the builtin engine's ways of writing (Settings.describer); the tuned ones need the describer adapter
DESCRIBERS = ("free", "template", "filtered", "tuned-free", "tuned")


@dataclass
class DescriptionReport:
    split_id: str
    items: int
    describers: pd.DataFrame  # one row per describer
    image: pd.DataFrame  # one row per attribute: what the visual facts alone get right
    examples: pd.DataFrame  # item_id, describer, description, unsupported claims, detail_desc


def names_value(text: str, value: str) -> bool:
    """Does `text` name `value`? Whole-phrase match; 'Leggings/Tights' counts when any part is named."""
    text = text.lower()
    parts = [p.strip() for p in re.split(r"[/&,]", value.lower()) if p.strip()]
    return any(re.search(rf"(?<![\w-]){re.escape(p)}s?(?![\w-])", text) for p in parts)


def withheld_context(row: dict) -> ItemText:
    """The article as a describer may see it: every catalog field but `detail_desc` (also cut from its text)."""
    attributes = {k: v for k, v in row["attributes"].items() if k != WITHHELD}
    secret = str(row["attributes"].get(WITHHELD) or "").strip()
    text = (row.get("text") or "").replace(secret, "").strip() if secret else row.get("text") or ""
    return ItemText(title=row.get("title") or "", category=row.get("category") or "", text=text, attributes=attributes)


def image_guesses(facts: list) -> dict[str, str]:
    """What the visual facts alone say: colour family, product type, pattern (the classifier's, where it ran)."""
    def top(kind: str) -> str:
        found = [f for f in facts if f.kind == kind]
        trained = [f for f in found if f.source == "attribute-classifier"]  # it answers in the catalog's terms
        return max(trained or found, key=lambda f: f.confidence).value if found else ""

    return {"colour": colour_family(top("colour")), "product type": top("object").lower(), "pattern": top("pattern")}


def available_describers(engine: Engine) -> tuple[str, ...]:
    """The builtin describers this engine can run now (the tuned ones need the describer adapter's folder)."""
    try:
        engine.with_describer("tuned").describe_version()
    except (FileNotFoundError, AttributeError):
        return tuple(d for d in DESCRIBERS if not d.startswith("tuned"))
    return DESCRIBERS


def balanced_accuracy(truth: list[str], guess: list[str]) -> float:
    """Mean recall over the true classes: always answering one class scores 1 / (number of classes)."""
    frame = pd.DataFrame({"truth": truth, "hit": [t == g for t, g in zip(truth, guess, strict=True)]})
    return float(frame.groupby("truth")["hit"].mean().mean()) if len(frame) else 0.0


def _truth(attribute: str, value: str) -> str:
    return colour_family(value) if attribute == "colour" else value.lower()


def evaluate_descriptions(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    n: int = 200,
    seed: int = 0,
    batch_size: int = 16,
    describers: tuple[str, ...] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> DescriptionReport:
    """Describe `n` held-out articles (0: all) with `describers` (default: every one the engine has: the tuned
    ones where its describer adapter is there); score them (see module)."""
    split_id, parts = item_split(ws.store, dataset)
    items = ws.store.items_with_images(dataset).dropna(subset=["image_sha256"])
    items["attributes"] = [json.loads(a) if a else {} for a in items["attributes"]]
    needed = [*ATTRIBUTES.values(), WITHHELD]
    if not len(items) or any(c not in items["attributes"].iloc[0] for c in needed):
        raise ValueError(f"Data set '{dataset}' has no {needed} attributes; eval-descriptions needs H&M articles.")
    held = items[[parts.get(i) == "test" for i in items["item_id"]]]
    held = held.sample(n=min(n, len(held)), random_state=seed) if n else held
    rows = held.sort_values("item_id").to_dict("records")
    categories = sorted(ws.store.items(dataset)["category"].dropna().unique())
    domain = domain_for(ws.store.require_dataset(dataset)["format"])
    builtin = engine.name == "builtin" and hasattr(engine, "with_describer")
    modes = (describers or available_describers(engine)) if builtin else ("(engine)",)
    writers = {m: engine.with_describer(m) if m in DESCRIBERS else engine for m in modes}

    written = {m: [] for m in modes}
    seconds = dict.fromkeys(modes, 0.0)
    all_facts: list[list] = []
    for first in range(0, len(rows), batch_size):
        batch = rows[first : first + batch_size]
        images = [ws.images.open(r["image_sha256"], r["ext"]) for r in batch]
        facts = engine.visual_facts(images, categories) or [[] for _ in batch]
        all_facts += facts
        contexts = [withheld_context(r) for r in batch]
        for mode, writer in writers.items():
            start = time.perf_counter()
            made = writer.describe(images, contexts, categories, domain=domain, facts=facts)
            seconds[mode] += time.perf_counter() - start
            written[mode] += [d.text for d in made]
        if progress:
            progress(first + len(batch), len(rows), f"{len(modes)} describers")

    truth_texts = [str(r["attributes"][WITHHELD] or "") for r in rows]
    truth_vectors = engine.embed(truth_texts)
    summary, examples = [], []
    for mode in modes:
        texts = written[mode]
        groundings = []
        for r, text, facts in zip(rows, texts, all_facts, strict=True):
            c = withheld_context(r)
            groundings.append(check(text, catalog_texts(c.title, c.category, c.text, c.attributes), facts))
        claims = sum(len(g.claims) for g in groundings)
        unsupported = sum(len(g.unsupported) for g in groundings)
        similarity = np.sum(engine.embed(texts) * truth_vectors, axis=1)
        row = {
            "describer": mode,
            "claims per text": claims / len(rows) if rows else 0.0,
            "unsupported claims": unsupported / claims if claims else 0.0,
            "texts with one": float(np.mean([bool(g.unsupported) for g in groundings])) if rows else 0.0,
            "field names": sum(c.kind == "field name" for g in groundings for c in g.claims),
            "similarity to detail_desc": float(similarity.mean()) if rows else 0.0,
            "s per item": seconds[mode] / len(rows) if rows else 0.0,
        }
        for name, column in ATTRIBUTES.items():
            hits = [names_value(t, str(r["attributes"][column])) for t, r in zip(texts, rows, strict=True)]
            row[f"names {name}"] = float(np.mean(hits)) if hits else 0.0
        summary.append(row)
        for r, text, g in list(zip(rows, texts, groundings, strict=True))[:5]:
            examples.append({
                "item_id": r["item_id"], "describer": mode, "description": text,
                "unsupported": ", ".join(c.text for c in g.unsupported), "detail_desc": r["attributes"][WITHHELD],
            })  # fmt: skip

    image_rows = []
    guesses = [image_guesses(f) for f in all_facts]
    for name, column in ATTRIBUTES.items():
        truth = [_truth(name, str(r["attributes"][column])) for r in rows]
        guess = [g[name] for g in guesses]
        counts = pd.Series(truth).value_counts()
        image_rows.append({
            "attribute": name,
            "accuracy": float(np.mean([t == g for t, g in zip(truth, guess, strict=True)])) if rows else 0.0,
            "balanced accuracy": balanced_accuracy(truth, guess),
            "majority accuracy": float(counts.iloc[0] / len(truth)) if rows else 0.0,
            "majority balanced": 1 / len(counts) if rows else 0.0,
            "classes": len(counts),
            "majority value": counts.index[0] if rows else "",
        })  # fmt: skip
    frames = (pd.DataFrame(summary), pd.DataFrame(image_rows), pd.DataFrame(examples))
    return DescriptionReport(split_id, len(rows), *frames)
