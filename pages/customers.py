"""Customers: one customer's training history in profile blocks, the summary after each block, the drift.

Profiles are built by a background job (`profiles.start_profiles`); this page starts it and reads what
is stored. Held-out (valid/test) purchases are shown apart: they never reach a profile prompt.
"""

import plotly.express as px
import streamlit as st

from mmrec_core.engines import get_engine
from mmrec_core.profiles import customers
from mmrec_core.profiles.build import PROFILES_JOB, start_profiles
from mmrec_core.store.workspace import default_protocol
from widgets import current_dataset, get_workspace, live_job, marked_text, thumbnail_row

SELECTED = "customer_selected"

ws = get_workspace()
dataset = current_dataset()
protocol = default_protocol(ws, dataset)

st.title(f"Customers · {dataset}")


def build() -> None:
    start_profiles(ws, get_engine(ws.settings), dataset, protocol)


left, right = st.columns([3, 1], vertical_alignment="center")
with left:
    running = live_job(ws.store, PROFILES_JOB, dataset=dataset, protocol_id=protocol)
right.button(
    "Build profiles",
    on_click=build,
    disabled=running,
    width="stretch",
    help="Summarise every customer's training history block by block (resumable, incremental).",
)

listing, detail = st.columns([1, 3])
with listing:
    query = st.text_input("Search customer id", key="customer_query")
    found = customers.customer_list(ws.store, dataset, protocol, query)
    st.caption(f"{len(found):,} customers shown · {int(found['has_profile'].sum()):,} with a profile")
    labels = {
        r.user_id: f"{r.user_id[:16]} · {r.history} items" + (" ✓" if r.has_profile else "") for r in found.itertuples()
    }
    if st.session_state.get(SELECTED) not in labels:
        st.session_state.pop(SELECTED, None)
    with st.container(height=640):  # scrolls: the sample alone lists 293 customers
        user = st.radio("Customer", list(labels), format_func=labels.get, key=SELECTED) if labels else None

if user is None:
    detail.info("No customer matches that id.")
    st.stop()

view = customers.customer_view(ws.store, dataset, protocol, user, ws.settings.profile_block)
with detail:
    st.subheader(f"Customer {user[:16]}")
    st.caption(f"id `{user}` · profile blocks of {ws.settings.profile_block} purchases, training history only")
    a, b, c = st.columns(3)
    a.metric("Training purchases", len(view["history"]))
    b.metric("Blocks summarised", len(view["blocks"]))
    c.metric("Held out (valid/test)", len(view["held_out"]))
    if view["profile"] is None:
        st.info("No profile yet: press **Build profiles** (or run `mmrec profiles`).")
    else:
        st.markdown("**Profile** (the summary after the last block; claims marked against the items it covers)")
        with st.container(border=True):
            grounding = view["blocks"]["grounding"].iloc[-1] if len(view["blocks"]) else None
            marked_text(view["profile"] or "(no usable summary: every block was flagged)", grounding)
    if view["stale"]:
        st.warning("The history changed since these summaries were written; build profiles again to update.")
    if not view["weights"].empty:
        chart = px.line(
            view["weights"],
            x="block",
            y="weight",
            color="keyword",
            markers=True,
            title="Keyword weights over time (decayed share of each block's items)",
            height=300,
        )
        st.plotly_chart(chart.update_xaxes(dtick=1), width="stretch")

    summaries = view["blocks"].set_index("block") if len(view["blocks"]) else None
    for block, items in view["history"].groupby("block"):
        with st.container(border=True):
            st.markdown(f"**Block {block}** · purchases {items['seq'].min() + 1}–{items['seq'].max() + 1}")
            thumbnail_row(ws.images, items, per_row=6)
            if summaries is not None and block in summaries.index:
                row = summaries.loc[block]
                if row["flag"] and str(row["flag"]).startswith("scaffold"):  # specific now, but not the LLM's own
                    st.info(f"The LLM's summary was too vague or degenerate: {row['flag']}")
                elif row["flag"]:
                    st.warning(row["flag"])
                st.markdown(f"*Summary after block {block}:*")
                marked_text(row["summary"], row["grounding"])
                st.caption(f"{row['engine']} · {row['model']} · {row['prompt_version']}")
    if len(view["held_out"]):
        st.markdown("**Held out for evaluation** (valid/test targets: never shown to the LLM)")
        thumbnail_row(ws.images, view["held_out"], per_row=6)
