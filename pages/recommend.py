"""Recommend: score candidates for one customer with the LLM; rationale and evidence side by side.

Candidates: the protocol's stored test list, the top of a trained model, or items chosen by hand.
Scoring runs here with a progress bar (seconds on CPU); `mmrec_core.recommend` does the work. Two more
tabs explain the scores (each piece of context left out in turn; what-if edits: `explain_widgets`), and
the customer's card downloads as one HTML file.
"""

from dataclasses import replace

import streamlit as st

from explain_widgets import attribution_tab, card_button, what_if_tab
from mmrec_core.engines import get_engine
from mmrec_core.finetune import runs
from mmrec_core.profiles import customers
from mmrec_core.recommend import customer as recommend
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.evidence import EvidenceFinder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import default_protocol
from widgets import (
    current_dataset,
    data_version,
    get_workspace,
    item_thumbnail,
    marked_text,
    option_widgets,
    session_cached,
)

ws = get_workspace()
dataset = current_dataset()
protocol = default_protocol(ws, dataset)
st.title(f"Recommend · {dataset}")

left, right = st.columns([2, 3])
with left:
    query = st.text_input("Search customer id", key="rec_query")
    found = customers.customer_list(ws.store, dataset, protocol, query)
    if found.empty:
        st.info("No customer matches that id.")
        st.stop()
    user = st.selectbox("Customer", found["user_id"], key="rec_user", format_func=lambda u: f"{u[:16]}…")
    trained = runs.adapters(ws, dataset)
    adapter = st.selectbox(
        "LLM adapter",
        ["", *trained[trained["method"].isin(["llm-sft", "llm-grpo"])]["adapter"]],
        key="rec_adapter",
        format_func=lambda a: a or "none (the engine's setting)",
        help="A LoRA adapter from the Train page (or `mmrec train sft|grpo`) on the engine's LLM",
    )
    mode = option_widgets(RecommendConfig, ["mode"], "rec")["mode"]
with right:
    source = st.radio("Candidates", recommend.SOURCES, key="rec_source")
    models = recommend.trained_models(ws, dataset, protocol)
    method, top_n, chosen = None, recommend.MODEL_TOP, []
    if source == recommend.SOURCES[1]:
        method = st.selectbox("Model", models, key="rec_model", placeholder="no trained model")
        top_n = st.slider("How many", 5, 50, recommend.MODEL_TOP, key="rec_top")
    elif source == recommend.SOURCES[2]:
        titles = ws.store.items(dataset).set_index("item_id")["title"].to_dict()
        chosen = st.multiselect("Items", list(titles), key="rec_items", format_func=lambda i: f"{titles[i]} · {i}")
    with st.expander("Prompt settings"):  # RecommendConfig's defaults, as `mmrec score`
        o = option_widgets(RecommendConfig, ["history", "similar-users", "explain", "profile", "item-text"], "rec")
        config = RecommendConfig(mode=mode, n_history=o["history"], n_similar=o["similar-users"],
                                 explain_top=o["explain"], profile=o["profile"], item_text=o["item-text"])  # fmt: skip

builder, finder = session_cached(
    ("rec", data_version(ws, dataset), protocol, config.n_history, config.n_similar, config.profile,
     config.item_text, tuple(models)),  # fmt: skip
    lambda: (b := ContextBuilder.for_config(ws, dataset, protocol, config), EvidenceFinder(b)),
)
# A flag set on click, read here: survives the extra rerun the navigation may do (see widgets).
st.button("Score", type="primary", key="rec_score", on_click=lambda: st.session_state.update(rec_go=True))
if st.session_state.pop("rec_go", False):
    try:
        candidates, _ = recommend.choose_candidates(ws, builder, user, source, method, top_n, chosen)
        settings = replace(ws.settings, adapter=adapter) if adapter else ws.settings
        recommender = LLMRecommender(get_engine(settings), builder, config)
        bar = st.progress(0.0, text="Scoring…")
        report = lambda done, total, msg: bar.progress(done / max(total, 1), text=msg)  # noqa: E731
        rec, table = recommend.score_customer(recommender, finder, user, candidates, progress=report)
        st.session_state["rec_result"] = (user, rec, table, recommender.render(rec.prompt.full(0)), recommender)
        st.session_state.pop("rec_attr", None)  # the explanations of an earlier scoring no longer apply
        st.session_state.pop("rec_wi", None)
    except (KeyError, ValueError) as exc:
        st.error(exc.args[0] if exc.args else str(exc))

result = st.session_state.get("rec_result")
if result is None or result[0] != user:
    st.info("Pick a customer and candidates, then press **Score**.")
    st.stop()
_, rec, table, prompt_text, recommender = result
held_out = recommend.held_out_item(builder, user)
st.subheader(f"{len(table)} candidates · {rec.mode} · {rec.seconds:.1f} s")
for note in rec.context.notes:
    st.info(f"Context: {note}")
if finder.graph_id is None:
    st.info("Evidence: no item graph for this protocol yet (build it on the Item graph page); neighbours not checked.")
if rec.prompt.trimmed:
    st.caption(f"Prompt trimmed to fit the model's budget: {rec.prompt.trimmed}")
if rec.answer is not None:
    if rec.answer.valid:
        st.success(f"Valid answer: {', '.join(rec.answer.ranking)}")
    else:
        st.error(f"Invalid answer ({rec.answer.problem}); candidates left unranked. Output: {rec.answer.raw[:300]}")
with st.expander("Exact prompt (first candidate)"):
    st.code(prompt_text, language=None)

card_button(ws, recommender, rec, table)

# a keyed tab set keeps the open tab when a button inside it reruns the page
ranked, moves, edits = st.tabs(["Candidates", "What moves the score", "What if"], key="rec_tab", on_change="rerun")
with moves:
    attribution_tab(ws, recommender, rec, table)
with edits:
    what_if_tab(ws, recommender, rec, table)
info = ws.store.items_with_images(dataset, table["item_id"].tolist()).set_index("item_id")
top = max(float(table["score"].max()), 1e-9)
for row in table.itertuples():
    with ranked, st.container(border=True):
        pic, body, why = st.columns([1, 3, 3])
        with pic:
            item_thumbnail(
                ws.images, {"item_id": row.item_id, **info.loc[row.item_id].to_dict()}, caption=f"#{row.rank}"
            )
        with body:
            mark = " · ✓ the held-out next purchase" if row.item_id == held_out else ""
            st.markdown(f"**{row.rank}. {row.title}** `{row.item_id}`{mark}")
            st.progress(min(row.score / top, 1.0), text=f"score {row.score:.3f}")
            st.caption(" · ".join(builder.line(row.item_id).keywords[:8]))
            if row.rationale:
                st.markdown("*Rationale:*")
                marked_text(row.rationale, row.grounding)
                if row.cites:
                    st.caption("Cites verified evidence: " + ", ".join(row.cites))
                else:
                    st.caption(":orange[Cites none of the evidence found without the LLM.]")
                if notes := row.written.notes():
                    with st.expander("Changed from what the LLM wrote"):
                        st.markdown("\n".join(f"- {note}" for note in notes))
                        st.caption(f"As written: {row.written.raw}")
            if row.flags:
                st.warning(f"The rationale names {', '.join(row.flags)}, which this item's texts never mention.")
        with why:
            st.markdown("**Evidence** (without the LLM)")
            st.markdown("\n".join(f"- {line}" for line in row.evidence_detail.lines(builder.titles)))
