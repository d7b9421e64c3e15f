"""Prompt wording names the catalog's domain (from the data set's format), never a hard-coded one; the
H&M (fashion) wording is the one every earlier version used, word for word."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.core.prompts import DOMAINS, FASHION, FILM, PRODUCT, VIDEO, domain_for
from mmrec_core.data.ingest import ingest
from mmrec_core.engines.base import DESCRIBE
from mmrec_core.profiles.build import build_profiles
from mmrec_core.profiles.prompts import PROFILE_FIRST, PROFILE_UPDATE
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import LLMRecommender
from mmrec_core.recommend.prompts import REC_HISTORY, REC_POINTWISE, REC_SYSTEM, rec_text
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.build import textualize
from mmrec_core.textualize.keywords import grounded
from mmrec_core.textualize.prompts import KEYWORDS, RECONSTRUCT, keyword_chat
from tests.fakes import ScriptedEngine

# The wording of describe-v1, keywords-v2, recon-v1, profile-v1 and rec-v1 (all written for H&M).
FASHION_TEXTS = [
    (DESCRIBE.system_for(FASHION), "You write short, factual product descriptions for a fashion catalog. Use only the "
     "information given. Do not invent brands, sizes or prices."),
    (KEYWORDS.system_for(FASHION), "You write compact product keywords for a fashion catalog."),
    (KEYWORDS.format(FASHION, source="S"), "List keywords for this product (style, colour, material, category, "
     "pattern, use), comma separated:\nS"),
    (RECONSTRUCT.format(FASHION, keywords="k"), "Product keywords: k\nWrite the catalog text of this product."),
    (PROFILE_FIRST.system_for(FASHION), "You summarise a shopper's preferences for a fashion recommender. Be "
     "specific and brief."),
    (PROFILE_FIRST.format(FASHION, items="- a"), "A customer bought these items, oldest first:\n- a\n\nIn two "
     "sentences, describe this customer's preferences: product types, colours, materials, styles."),
    (PROFILE_UPDATE.format(FASHION, summary="s", items="- a"), "What we know about the customer so far:\ns\n\nThen "
     "they bought:\n- a\n\nUpdate the description of the customer's preferences in two sentences: keep what still "
     "holds, add what is new."),
    (rec_text(REC_SYSTEM, FASHION), "You are a fashion recommender. You judge from a customer's history whether "
     "they will buy an item."),
    (rec_text(REC_HISTORY, FASHION, items="- a"), "Their last purchases, oldest first:\n- a\n\n"),
    (rec_text(REC_POINTWISE, FASHION, candidate="c"), "Candidate item: c\nWill this customer buy the candidate item? "
     "Answer Yes or No."),
]


@pytest.mark.parametrize("rendered, before", FASHION_TEXTS)
def test_fashion_wording_is_unchanged(rendered: str, before: str) -> None:
    assert rendered == before


@pytest.mark.parametrize(
    "fmt, domain, words",
    [
        ("hm", FASHION, ["fashion catalog", "fashion recommender", "will buy", "last purchases"]),
        ("movielens", FILM, ["film catalog", "film recommender", "will watch", "last films watched"]),
        ("microlens", VIDEO, ["video catalog", "video recommender", "will watch", "last videos watched"]),
        ("generic", PRODUCT, ["product catalog", "product recommender", "will buy", "last purchases"]),
        ("recbole", PRODUCT, ["product catalog"]),
    ],
)
def test_each_format_gets_its_domain_words(fmt: str, domain, words: list[str]) -> None:
    assert domain_for(fmt) is domain
    texts = " ".join(
        [
            KEYWORDS.system_for(domain),
            DESCRIBE.system_for(domain),
            PROFILE_FIRST.system_for(domain),
            rec_text(REC_SYSTEM, domain),
            rec_text(REC_HISTORY, domain, items=""),
            rec_text(REC_POINTWISE, domain, candidate="c"),
        ]
    )
    assert all(w in texts for w in words), texts
    assert (domain is FASHION) == ("fashion" in texts.lower())


@pytest.mark.parametrize("domain", [*DOMAINS.values(), PRODUCT], ids=lambda d: d.name)
def test_worked_keyword_examples_only_use_words_of_their_source(domain) -> None:
    source, answer = domain.example
    chat = keyword_chat("the item", domain)
    assert chat[1]["content"] == answer and chat[-1]["content"].endswith("the item")
    assert all(grounded(k.strip(), source) for k in answer.split(",")), answer  # what build_facets keeps


def _generic_dataset(root: Path) -> Path:
    root.mkdir()
    items = pd.DataFrame({"item_id": list("abcdef"), "title": [f"Lamp {c}" for c in "abcdef"], "category": "lamps"})
    items.to_csv(root / "items.csv", index=False)
    rows = [(u, it, f"2020-01-{d:02d}") for u in ("u1", "u2") for d, it in enumerate("abcde", start=1)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(root / "interactions.csv", index=False)
    return root


class RecordingEngine(ScriptedEngine):
    """The scripted engine, keeping every system prompt it was given."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.systems: list[str | None] = []

    def generate(self, prompts, options=None, system=None):
        self.systems.append(system)
        return super().generate(prompts, options, system)


def test_a_generic_catalog_is_never_called_fashion(sample_workspace: Workspace, tmp_path: Path) -> None:
    ws = sample_workspace
    ingest(ws.store, ws.images, "generic", _generic_dataset(tmp_path / "lamps"), name="lamps", n_negatives=1)
    engine = RecordingEngine(ws.settings)
    textualize(ws, engine, "lamps")
    build_profiles(ws, engine, "lamps")
    builder = ContextBuilder(ws, "lamps", default_protocol(ws, "lamps"), n_similar=0)
    recommender = LLMRecommender(engine, builder)
    rec = recommender.recommend("u1", ["a", "f"])
    shown = [s for s in engine.systems if s] + [recommender.system, rec.prompt.full(0)]
    assert shown and not any("fashion" in s.lower() for s in shown)
    assert any("product keywords for a product catalog" in s for s in shown)
    assert ws.store.latest_keywords("lamps")["prompt_version"].eq(KEYWORDS.version).all()
    sample = LLMRecommender(engine, ContextBuilder(ws, "sample", default_protocol(ws, "sample"), n_similar=0))
    assert "fashion recommender" in sample.system  # H&M keeps its own word
