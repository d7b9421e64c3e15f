"""The Recommend page's explanation tabs: what moves the score, what-if edits, the card to download.

Like widgets.py these only draw and remember; the figures come from `mmrec_core.explain`. Each tab works on
the customer just scored (the page's `rec_result`), with the same recommender (engine, adapter, settings).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mmrec_core.core.provenance import Provenance
from mmrec_core.explain.attribution import Attributor, purchase_days, with_sentences
from mmrec_core.explain.card import card_data, render_card
from mmrec_core.explain.figures import attribution_figure
from mmrec_core.explain.whatif import Scenario, save, what_if
from mmrec_core.recommend.llm import LLMRecommender, Recommendation
from mmrec_core.store.workspace import Workspace


def _attribution(user: str):
    """The attribution computed for this customer on this page, if any."""
    found = st.session_state.get("rec_attr")
    return found[1] if found and found[0] == user else None


def attribution_tab(ws: Workspace, recommender: LLMRecommender, rec: Recommendation, table: pd.DataFrame) -> None:
    """Pick a candidate; each context piece left out in turn shows how far its score moves (a bar per piece)."""
    titles = recommender.builder.titles
    item = st.selectbox(
        "Candidate", table["item_id"], key="rec_attr_item", format_func=lambda i: f"{titles.get(i, i)} · {i}"
    )
    st.button(
        "Explain the scores",
        key="rec_attr_go",
        on_click=lambda: st.session_state.update(rec_attr_run=True),
        help="Each purchase, similar customer and profile sentence left out in turn (one pass each), and each "
        "candidate's image and catalog keywords; stored, so asking again for the same prompts is instant",
    )
    if st.session_state.pop("rec_attr_run", False):
        bar = st.progress(0.0, text="Leaving out each piece of context…")
        report = lambda done, total, msg: bar.progress(done / max(total or 1, 1), text=msg)  # noqa: E731
        try:
            result = Attributor(recommender).attribute(rec.user_id, rec.candidates, report)
            st.session_state["rec_attr"] = (rec.user_id, result)
            bar.empty()
        except (KeyError, ValueError, RuntimeError) as exc:
            st.error(exc.args[0] if exc.args else str(exc))
    result = _attribution(rec.user_id)
    if result is None:
        st.info("Press **Explain the scores** to see which purchases, similar customers and profile sentences "
                "move these scores (about one scoring pass per piece).")  # fmt: skip
        return
    b = recommender.builder
    dates = purchase_days(ws, b.dataset, b.protocol_id, rec.user_id, rec.context.bought)
    rows = with_sentences(result.for_item(item), titles, dates)
    how = "read back: same prompts and model" if result.stored else f"computed in {result.seconds:.1f} s"
    st.caption(f"Score {result.scores[item]:.3f} · {len(rows)} pieces · {how} · model {result.provenance.model}")
    if rows.empty:
        st.info("The prompt shows no profile, purchases or similar customers: nothing to leave out.")
        return
    st.plotly_chart(attribution_figure(rows), key="rec_attr_chart")
    st.markdown("\n".join(f"- {s[0].upper()}{s[1:]}" for s in rows["sentence"].head(3)))


def what_if_tab(ws: Workspace, recommender: LLMRecommender, rec: Recommendation, table: pd.DataFrame) -> None:
    """Edit the profile, purchases or a candidate's keywords; new scores and ranks beside the old ones."""
    builder, ctx = recommender.builder, rec.context
    titles = builder.titles
    name = lambda i: f"{titles.get(i, i)} · {i}"  # noqa: E731
    profile = st.text_area("Profile", ctx.profile, key="rec_wi_profile", height=120)
    left, right = st.columns(2)
    remove = left.multiselect("Leave out purchases", [h.item_id for h in ctx.history], key="rec_wi_remove",
                              format_func=name)  # fmt: skip
    add = right.multiselect("Add purchases (newest)", list(titles), key="rec_wi_add", format_func=name)
    item = left.selectbox("Candidate whose keywords change", ["", *table["item_id"]], key="rec_wi_item",
                          format_func=lambda i: name(i) if i else "none")  # fmt: skip
    keywords = {}
    if item:
        shown = ", ".join(builder.line(item).keywords)
        typed = right.text_input("Its keywords (comma-separated)", shown, key=f"rec_wi_kw_{item}")
        if typed != shown:
            keywords = {item: [k.strip() for k in typed.split(",") if k.strip()]}
    scenario = Scenario(profile=None if profile == ctx.profile else profile, remove=remove, add=add, keywords=keywords)
    st.button("Score the what-if", key="rec_wi_go", on_click=lambda: st.session_state.update(rec_wi_run=True),
              help="Never stored as the customer's profile; save it below as a named scenario if you like")  # fmt: skip
    if st.session_state.pop("rec_wi_run", False):
        before = dict(zip(rec.candidates, rec.scores.tolist(), strict=True)) if rec.mode == "pointwise" else None
        try:
            with st.spinner("Scoring the edited prompt…"):
                st.session_state["rec_wi"] = (rec.user_id, what_if(recommender, rec.user_id, rec.candidates,
                                                                   scenario, before))  # fmt: skip
        except (KeyError, ValueError) as exc:
            st.error(exc.args[0] if exc.args else str(exc))
    saved = ws.store.scenarios(builder.dataset, builder.protocol_id, rec.user_id)
    if len(saved):
        st.caption("Saved scenarios of this customer: " + ", ".join(f"“{n}”" for n in saved["name"]))
    found = st.session_state.get("rec_wi")
    if not found or found[0] != rec.user_id:
        st.info("Change something above, then press **Score the what-if**.")
        return
    result = found[1]
    st.dataframe(result.table, hide_index=True, key="rec_wi_table", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("score", "new_score", "change")
    })  # fmt: skip
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    label = c1.text_input("Scenario name", key="rec_wi_name", placeholder="e.g. no swimwear")
    c2.button("Save as scenario", key="rec_wi_save", on_click=lambda: st.session_state.update(rec_wi_keep=True))
    if st.session_state.pop("rec_wi_keep", False):  # a flag, as the page's Score button (widgets: extra rerun)
        try:
            save(ws, recommender, rec.user_id, label, result)
            st.success(f"Saved “{label}” for this customer (the profile itself is unchanged).")
        except (KeyError, ValueError) as exc:
            st.error(exc.args[0] if exc.args else str(exc))


def card_button(ws: Workspace, recommender: LLMRecommender, rec: Recommendation, table: pd.DataFrame) -> None:
    """A self-contained HTML card of this customer (with the attribution chart once computed), made on click:
    its thumbnails are not decoded on every rerun of the page."""
    attribution, b = _attribution(rec.user_id), recommender.builder
    provenance = Provenance.of(recommender.provenance())

    def html_text() -> str:
        data = card_data(ws, rec, table, attribution, dataset=b.dataset, protocol_id=b.protocol_id,
                         provenance=provenance)  # fmt: skip
        return render_card(data, b.titles)

    st.download_button(
        "Download the card (HTML)",
        html_text,
        file_name=f"card-{rec.user_id[:16]}.html",
        mime="text/html",
        key="rec_card",
        help="One file that opens offline: purchases, profile, top recommendations, rationales, attribution",
    )
