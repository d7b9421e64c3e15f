"""A self-contained HTML explanation card for one customer, for people who never open the app.

One file shows what the model read (recent purchases as thumbnails, the profile), what it recommends (score
bars), why in its own words (rationales with each checkable claim marked by the grounding checker) and what
actually moved the score (the counterfactual attribution as an SVG bar chart), with the provenance underneath.
It must open offline and survive being mailed around: images are embedded as data URIs, there is no script,
no external URL, and a Content-Security-Policy forbids loading anything. Catalog and model text is hostile
input, so every piece of it is escaped.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from mmrec_core.core.provenance import Provenance
from mmrec_core.explain.attribution import Attribution, describe, purchase_days
from mmrec_core.grounding.claims import Grounding
from mmrec_core.recommend.llm import Recommendation
from mmrec_core.store.images import BadImageError, thumbnail_jpeg
from mmrec_core.store.workspace import Workspace

THUMB_SIDE = 192  # pixels on the longer side: sharp at the card's size, a few kB each
MAX_BARS = 12  # attribution pieces charted (largest effects); the rest are counted
SUPPORT_NAMES = {"catalog": "named by the catalog", "image": "read from the image", "unsupported": "unsupported"}
UP, DOWN = "#2f7ebc", "#d1603d"  # effect bars: the piece pushes the score up / down


@dataclass
class CardData:
    """Everything the card shows, gathered once (so the page can reuse what it already scored)."""

    dataset: str
    protocol_id: str
    user_id: str
    profile: str
    purchases: list[dict]  # newest first: item_id, title, date, thumbnail (JPEG bytes | None)
    recommendations: pd.DataFrame  # `recommend.customer.score_customer`'s table, top rows
    attribution: Attribution | None
    explained_item: str | None  # whose attribution the chart shows
    provenance: Provenance | None
    made_at: str
    thumbnails: dict[str, bytes | None] = field(default_factory=dict)  # the recommendations' pictures
    dates: dict[str, str] = field(default_factory=dict)  # item -> the customer's newest purchase day


def _thumbnail(ws: Workspace, sha: object, ext: object) -> bytes | None:
    """A stored image as a small JPEG, or None when the item has none or its file is gone or unreadable:
    a card with a placeholder is worth more than no card."""
    if not (isinstance(sha, str) and sha and isinstance(ext, str) and ext):
        return None
    try:
        return thumbnail_jpeg(ws.images.path(sha, ext), THUMB_SIDE)
    except (BadImageError, OSError):
        return None


def card_data(
    ws: Workspace,
    rec: Recommendation,
    table: pd.DataFrame,
    attribution: Attribution | None = None,
    item: str | None = None,
    top: int = 5,
    n_purchases: int = 6,
    *,
    dataset: str,
    protocol_id: str,
    provenance: Provenance | None = None,
) -> CardData:
    """Gather the card's content from one scored customer. `item` picks the charted candidate (default: the
    top recommendation); provenance defaults to the attribution's (the recommender's, plus its version)."""
    ctx = rec.context
    dates = purchase_days(ws, dataset, protocol_id, ctx.user_id, ctx.bought)
    newest = list(dict.fromkeys(reversed(ctx.bought)))[:n_purchases]  # what the model may see, not the target
    shown = table.head(top).reset_index(drop=True)
    info = ws.store.items_with_images(dataset, newest + shown["item_id"].tolist()).set_index("item_id")
    pictures = {i: _thumbnail(ws, r.image_sha256, r.ext) for i, r in info.iterrows()}
    purchases = [
        {"item_id": i, "title": str(info.at[i, "title"] or i) if i in info.index else i,
         "date": dates.get(i, ""), "thumbnail": pictures.get(i)}
        for i in newest
    ]  # fmt: skip
    explained = item or (str(shown["item_id"].iloc[0]) if len(shown) else None)
    return CardData(
        dataset, protocol_id, ctx.user_id, ctx.profile, purchases, shown, attribution, explained,
        provenance or (attribution.provenance if attribution else None), datetime.now().strftime("%Y-%m-%d %H:%M"),
        {i: pictures.get(i) for i in shown["item_id"]}, dates,
    )  # fmt: skip


def _e(text: object) -> str:
    """Escaped text that also spells no URL: '//' becomes character references (shown the same), so even a
    title quoting a link leaves nothing for a reader or a mail filter to follow."""
    return html.escape(str(text)).replace("//", "&#47;&#47;")


def _picture(title: str, jpeg: bytes | None) -> str:
    if jpeg is None:
        return f'<div class="ph">{_e(title)}</div>'
    data = base64.b64encode(jpeg).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" alt="{_e(title)}">'


def _marked(text: str, grounding: Grounding | None) -> str:
    """A rationale with each checkable claim coloured by its support (title: the checker's evidence)."""
    if grounding is None:
        return _e(text)
    out = []
    for run, claim in grounding.segments(text):
        if claim is None:
            out.append(_e(run))
        else:
            name = SUPPORT_NAMES.get(claim.support, claim.support)
            why = f"{claim.kind}: {name}" + (f" ({claim.evidence})" if claim.evidence not in ("", name) else "")
            out.append(f'<mark class="{_e(claim.support)}" title="{_e(why)}">{_e(run)}</mark>')
    return "".join(out)


def _recommendations(data: CardData) -> str:
    table = data.recommendations
    peak = max(float(table["score"].max()), 1e-9) if len(table) else 1.0
    rows = []
    for r in table.itertuples():
        width = min(max(float(r.score) / peak, 0.0), 1.0) * 100
        why = ""
        if getattr(r, "rationale", ""):
            why = f'<p class="why">{_marked(r.rationale, getattr(r, "grounding", None))}</p>'
            written = getattr(r, "written", None)
            for sentence in getattr(written, "dropped", None) or []:
                why += f'<p class="removed">Removed before showing (unsupported claims): {_e(sentence)}</p>'
        rows.append(
            f'<li class="rec" data-rank="{int(r.rank)}">{_picture(str(r.title), data.thumbnails.get(r.item_id))}'
            f'<div class="body"><b>{int(r.rank)}. {_e(r.title)}</b> <code>{_e(r.item_id)}</code>'
            f'<div class="track"><div class="bar" style="width:{width:.1f}%"></div></div>'
            f'<span class="score">score {float(r.score):.3f}</span>{why}</div></li>'
        )
    legend = "".join(f'<mark class="{k}">{_e(v)}</mark> ' for k, v in SUPPORT_NAMES.items())
    return f'<p class="legend">Claims in rationales: {legend}</p><ol class="recs">{"".join(rows)}</ol>'


def _chart(data: CardData, titles: dict[str, str]) -> str:
    """The explained item's context pieces, largest effect first, as a diverging SVG bar chart."""
    if data.attribution is None or data.explained_item is None:
        return "<p>No attribution was computed for this card.</p>"
    rows = data.attribution.for_item(data.explained_item)
    if rows.empty:
        return f"<p>The attribution does not cover {_e(titles.get(data.explained_item, data.explained_item))}.</p>"
    width, mid, half, y, parts = 900, 450, 380, 6, []
    peak = max(float(rows["effect"].abs().max()), 1e-9)
    for r in rows.head(MAX_BARS).itertuples():
        named = r.piece_kind in ("purchase", "similar customer")
        text = describe(r, titles.get(r.piece_key, "") if named else "",
                        data.dates.get(r.piece_key, "") if r.piece_kind == "purchase" else "")  # fmt: skip
        lines = textwrap.wrap(text, 118) or [""]
        spans = "".join(f'<tspan x="8" dy="{0 if n == 0 else 15}">{_e(t)}</tspan>' for n, t in enumerate(lines))
        label_y, y = y + 12, y + 15 * len(lines) + 3
        length = half * abs(float(r.effect)) / peak
        x, colour = (mid, UP) if r.effect >= 0 else (mid - length, DOWN)
        vx, anchor = (mid + length + 5, "start") if r.effect >= 0 else (mid - length - 5, "end")
        parts.append(
            f'<g><title>{_e(text)}</title><text y="{label_y}">{spans}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{max(length, 0.5):.1f}" height="12" fill="{colour}"></rect>'
            f'<text class="v" x="{vx:.1f}" y="{y + 10}" text-anchor="{anchor}">{float(r.effect):+.3f}</text></g>'
        )
        y += 24
    more = len(rows) - MAX_BARS
    title = titles.get(data.explained_item, data.explained_item)
    return (
        f"<p>What moves the score of <b>{_e(title)}</b>: each piece of context left out in turn "
        f'(<span style="color:{UP}">&#9632; pushes it up</span>, <span style="color:{DOWN}">&#9632; pulls it '
        f"down</span>; score with the piece minus score without).</p>"
        f'<svg class="chart" viewBox="0 0 {width} {y}" width="100%" role="img" aria-label="attribution">'
        f'<line x1="{mid}" y1="0" x2="{mid}" y2="{y}" stroke="#999"></line>{"".join(parts)}</svg>'
        + (f'<p class="note">{more} smaller effects not shown.</p>' if more > 0 else "")
    )


def _footer(data: CardData) -> str:
    p = data.provenance
    facts = {
        "engine": p.engine if p else "unknown", "model": p.model if p else "unknown",
        "adapter": (p.params.get("adapter") if p else None) or "none",
        "prompt version": (p.prompt_version if p else None) or "unknown",
        "data set": data.dataset, "protocol": data.protocol_id, "made": data.made_at,
    }  # fmt: skip
    return " · ".join(f"{k}: <code>{_e(v)}</code>" for k, v in facts.items())


STYLE = """  /* claims: blue from the catalog, violet from the image, red unsupported */
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:980px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:130px;font-size:12px}
img,.ph{width:120px;height:150px;object-fit:contain;background:#f4f4f4;border:1px solid #ddd;display:block}
.ph{display:flex;align-items:center;justify-content:center;text-align:center;padding:6px;box-sizing:border-box;
color:#666;overflow:hidden;font-size:12px}
.recs{list-style:none;padding:0}.rec{display:flex;gap:14px;margin:0 0 16px}.body{flex:1}
.track{background:#eee;height:10px;width:100%;margin:6px 0 2px}.bar{background:#2f7ebc;height:10px}
.score,.note,.legend,footer{font-size:12px;color:#555}.why{margin:6px 0}
.removed{font-size:12px;color:#777;text-decoration:line-through}
mark{padding:0 2px;border-radius:2px}mark.catalog{background:#cfe3ff}mark.image{background:#e8d9fb}
mark.unsupported{background:#ffc9c9;text-decoration:underline wavy #c00}
.chart text{font-size:12px;fill:#222}.chart text.v{fill:#555}
"""


def render_card(data: CardData, titles: dict[str, str]) -> str:
    """The card as one HTML document (no script, no external resource)."""
    shelf = "".join(
        f"<figure>{_picture(p['title'], p['thumbnail'])}<figcaption>{_e(p['title'])}<br>{_e(p['date'])}"
        "</figcaption></figure>"
        for p in data.purchases
    )
    profile = _e(data.profile) if data.profile else "<i>No current profile for this customer.</i>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>Customer {_e(data.user_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Why these recommendations? <small><code>{_e(data.user_id)}</code></small></h1>"
        f'<h2>Recent purchases</h2><div class="row">{shelf or "<p>No purchases.</p>"}</div>'
        f"<h2>Profile</h2><p>{profile}</p>"
        f"<h2>Top recommendations</h2>{_recommendations(data)}"
        f"<h2>What moved the score</h2>{_chart(data, titles)}"
        f"<footer><hr>{_footer(data)}</footer></body></html>\n"
    )


def write_card(path: Path, html_text: str) -> Path:
    """Write the card whole (a temporary file renamed over it), so a reader never opens half a card."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html_text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
