"""The customer explanation card: self-contained HTML, honest marks, hostile text escaped (sample data, no weights)."""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from PIL import Image

from mmrec_core.core.provenance import Provenance
from mmrec_core.explain.attribution import Attribution, Attributor, describe
from mmrec_core.explain.card import CardData, card_data, render_card, write_card
from mmrec_core.grounding.claims import Claim, Grounding
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.customer import score_customer, stored_candidates
from mmrec_core.recommend.evidence import EvidenceFinder
from mmrec_core.recommend.llm import LLMRecommender, Recommendation
from mmrec_core.store.workspace import Workspace, default_protocol
from tests.fakes import ScriptedEngine

URL = re.compile(r"https?://|src=\"//|href=|url\(", re.IGNORECASE)
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "small", "code", "div", "p", "i", "b", "br",
        "figure", "figcaption", "img", "ol", "li", "span", "mark", "svg", "g", "text", "tspan", "rect", "line",
        "footer", "hr"}  # fmt: skip


@dataclass
class Scored:
    ws: Workspace
    builder: ContextBuilder
    finder: EvidenceFinder
    rec: Recommendation
    table: pd.DataFrame
    attribution: Attribution


def scored(ws: Workspace) -> Scored:
    pid = default_protocol(ws, "sample")
    builder = ContextBuilder(ws, "sample", pid, "test")
    finder, recommender = EvidenceFinder(builder), LLMRecommender(ScriptedEngine(ws.settings), builder)
    user = builder.data.parts["test"].users[3]
    candidates = stored_candidates(builder, user)
    rec, table = score_customer(recommender, finder, user, candidates)
    return Scored(ws, builder, finder, rec, table, Attributor(recommender).attribute(user, candidates))


def card(s: Scored, **kwargs) -> tuple[CardData, str]:
    data = card_data(s.ws, s.rec, s.table, s.attribution, dataset="sample", protocol_id=s.builder.protocol_id, **kwargs)
    return data, render_card(data, s.builder.titles)


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(text: str) -> None:
    """No URL, no script, no event handler, only the tags the card uses, every image embedded."""
    assert not URL.search(text)
    tags = Tags(text).tags
    assert {t for t, _ in tags} <= TAGS
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert all(attrs["src"].startswith("data:image/jpeg;base64,") for t, attrs in tags if t == "img")


def test_card_is_self_contained_with_real_thumbnails(rec_ws: Workspace, tmp_path: Path) -> None:
    s = scored(rec_ws)
    data, text = card(s)
    assert_inert(text)
    bought = list(dict.fromkeys(reversed(s.rec.context.bought)))
    assert [p["item_id"] for p in data.purchases] == bought[:6]  # newest first, each once
    dates = [p["date"] for p in data.purchases]
    assert dates == sorted(dates, reverse=True) and all(dates)  # not the held-out target's day for a re-bought item
    # this customer's held-out test item was bought before: its card date is the earlier purchase the model saw
    pid, user = s.builder.protocol_id, s.rec.user_id
    target = rec_ws.store.held_out(pid, user).query("part == 'test'")["item_id"].iloc[0]
    train = rec_ws.store.user_train_history(pid, user)
    assert {p["item_id"]: p["date"] for p in data.purchases}[target] == str(
        train.query("item_id == @target").ts.max().date()
    )
    sources = [attrs["src"] for t, attrs in Tags(text).tags if t == "img"]
    thumbs = [p["thumbnail"] for p in data.purchases]
    assert all(thumbs) and len(sources) >= len(thumbs)
    for src in sources:  # each a real, small JPEG
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.format == "JPEG" and max(image.size) <= 192
    for p in data.purchases:
        assert f"{html.escape(p['title'])}<br>{p['date']}" in text
    assert html.escape(s.rec.context.profile) in text
    out = write_card(tmp_path / "cards" / "customer.html", text)
    assert out.read_text(encoding="utf-8") == text and [f.name for f in out.parent.iterdir()] == ["customer.html"]


def test_card_ranks_scores_attribution_and_provenance(rec_ws: Workspace) -> None:
    s = scored(rec_ws)
    data, text = card(s)
    top = s.table.head(5)
    at = [text.index(f"<code>{i}</code>") for i in top["item_id"]]
    assert at == sorted(at)  # rank order
    for row in top.itertuples():
        assert f"{row.rank}. {html.escape(row.title)}</b>" in text and f"score {row.score:.3f}" in text
    assert 'style="width:100.0%"' in text  # the best scored fills its bar
    assert data.explained_item == top["item_id"].iloc[0]
    first = next(s.attribution.for_item(data.explained_item).itertuples())
    named = first.piece_kind in ("purchase", "similar customer")
    title = s.builder.titles.get(first.piece_key, "") if named else ""
    sentence = describe(first, title, data.dates.get(first.piece_key, "") if first.piece_kind == "purchase" else "")
    assert f"<title>{html.escape(sentence)}</title>" in text  # the largest effect's sentence, charted first
    assert text.index(html.escape(sentence)) < text.index('<text class="v"')
    for fact in ("scripted", "scripted-llm", "rec-v2", "sample", s.builder.protocol_id, data.made_at):
        assert f"<code>{html.escape(fact)}</code>" in text
    assert "adapter: <code>none</code>" in text
    chosen = top["item_id"].iloc[2]  # a chosen item's chart instead of the top one
    other, text = card(s, item=chosen)
    assert other.explained_item == chosen and f"score of <b>{html.escape(s.builder.titles[chosen])}</b>" in text


def test_claims_are_marked_by_their_support(rec_ws: Workspace) -> None:
    s = scored(rec_ws)
    _, text = card(s)
    assert 'class="catalog"' in text and 'class="unsupported"' in text  # the legend, at least
    shown = s.table[s.table["rationale"] != ""].head(5)
    marked = [c for g in shown["grounding"] for c in g.claims if c.support == "catalog"]
    assert marked and all(re.search(f'<mark class="catalog"[^>]*>{re.escape(c.text)}</mark>', text) for c in marked)
    # the scripted LLM's "It is a red wool coat." is unsupported on these items: removed, and said to be
    dropped = [r for r in shown.itertuples() if r.written.dropped]
    assert dropped and "Removed before showing (unsupported claims): It is a red wool coat." in text
    # shown as the LLM wrote it, the checker's unsupported claims are marked unsupported
    row = dropped[0]
    raw = s.finder.rationale_grounding(row.written.raw, row.item_id, s.rec.context)
    assert raw.unsupported
    table = s.table.copy()
    table.loc[table["item_id"] == row.item_id, "rationale"] = row.written.raw
    table["grounding"] = [
        raw if i == row.item_id else g for i, g in zip(table["item_id"], table["grounding"], strict=True)
    ]
    _, text = card(replace(s, table=table))
    for claim in raw.unsupported:
        assert re.search(f'<mark class="unsupported"[^>]*>{re.escape(claim.text)}</mark>', text)


def test_hostile_catalog_and_model_text_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    why = f'<img src=x onerror="alert(2)"> see http://evil.example/{evil}. It is red.'
    red = why.index("red")
    grounding = Grounding([Claim("colour", "red", "red", red, red + 3, "unsupported", "<b>no</b>")])
    table = pd.DataFrame([{"rank": 1, "item_id": "i<1>", "title": evil, "score": 0.5, "rationale": why,
                           "grounding": grounding}])  # fmt: skip
    rows = pd.DataFrame([{"item_id": "i<1>", "piece_kind": "purchase", "piece_key": "p&1", "piece_text": evil,
                          "score": 0.5, "score_without": 0.2, "rank": 1, "rank_without": 3}])  # fmt: skip
    prov = Provenance("engine<x>", "m'1", 'v"2', {"adapter": "//cdn.example/a"})
    attribution = Attribution("u<1>", {"i<1>": 0.5}, rows, prov, "key")
    purchases = [{"item_id": "p&1", "title": evil, "date": "2020-01-01", "thumbnail": None}]
    data = CardData("sample", "p</td>", "u<1>", f"Likes {evil}", purchases, table, attribution, "i<1>", prov, "now")
    text = render_card(data, {"p&1": evil, "i<1>": evil})
    assert_inert(text)
    assert "<script" not in text.lower() and "<img" not in text  # no thumbnails: placeholders only
    assert html.escape(evil) in text and f'<div class="ph">{html.escape(evil)}</div>' in text
    assert re.search(
        r'<mark class="unsupported" title="colour: unsupported \(&lt;b&gt;no&lt;/b&gt;\)">red</mark>', text
    )
    assert f"<title>{html.escape(describe(next(rows.assign(effect=0.3).itertuples()), evil, ''))}</title>" in text
    assert "http:&#47;&#47;evil.example" in text and "engine&lt;x&gt;" in text and "m&#x27;1" in text


def test_missing_or_broken_image_gives_a_placeholder(rec_ws: Workspace) -> None:
    s = scored(rec_ws)
    data, _ = card(s)
    gone, broken = data.purchases[0], data.purchases[1]
    info = rec_ws.store.items_with_images("sample", [gone["item_id"], broken["item_id"]]).set_index("item_id")
    paths = {i: rec_ws.images.path(r.image_sha256, r.ext) for i, r in info.iterrows()}
    paths[gone["item_id"]].unlink()
    paths[broken["item_id"]].write_bytes(b"not a picture")
    data, text = card(s)
    assert data.purchases[0]["thumbnail"] is None and data.purchases[1]["thumbnail"] is None
    assert all(p["thumbnail"] for p in data.purchases[2:])
    for p in data.purchases[:2]:
        assert f'<figure><div class="ph">{html.escape(p["title"])}</div>' in text
    assert_inert(text)
