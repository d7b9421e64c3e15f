"""Overview: what is in the selected data set, its evaluation protocols, and how far the pipeline got."""

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from mmrec_core.data import stats
from mmrec_core.engines import get_engine
from mmrec_core.pipeline import stages as pipeline
from mmrec_core.store.database import Store
from widgets import current_dataset, data_version, get_workspace, live_job, thumbnail_row


@st.cache_data(show_spinner="Reading the data set…")
def load_overview(_store: Store, version: str, dataset: str) -> dict:
    """Queries that only change when the data set is re-ingested (`version` changes then)."""
    return {
        "summary": stats.dataset_summary(_store, dataset),
        "lengths": _store.sequence_lengths(dataset),
        "categories": _store.category_counts(dataset, top=15),
        "top_items": _store.sample_items_with_images(dataset, n=8),
    }


ws = get_workspace()
dataset = current_dataset()
data = load_overview(ws.store, data_version(ws, dataset), dataset)
summary = data["summary"]
# Protocols and pipeline counts change without a re-ingest (new splits, background jobs) and are cheap
# to count, so they are read live on every run instead of being cached.
protocols = ws.store.protocol_summaries(dataset)

st.title(f"Overview · {dataset}")
span = f"{summary['first_ts']:%Y-%m-%d} to {summary['last_ts']:%Y-%m-%d}" if pd.notna(summary["first_ts"]) else ""
st.caption(f"Format `{summary['format']}` from `{summary['source']}` · ingested {summary['ingested_at']:%Y-%m-%d %H:%M}"
           + (f" · purchases {span}" if span else ""))

main_protocol = protocols.iloc[0] if len(protocols) else None
repeat_share = main_protocol["test_repeat_share"] if main_protocol is not None else None
tiles = [
    ("Users", f"{summary['users']:,}", None),
    ("Items", f"{summary['items']:,}", f"{summary['items_interacted']:,} of them bought at least once."),
    ("Interactions", f"{summary['interactions']:,}", "After collapsing same user, item and day into one."),
    ("Source rows", f"{summary['source_rows']:,}", "Interaction rows in the source file, before collapsing."),
    ("Items with images", f"{summary['items_with_images']:,}", None),
    ("Evaluated users", f"{int(main_protocol['evaluated_users']):,}" if main_protocol is not None else "—",
     f"Users with a valid and a test target in {main_protocol['protocol_id']}." if main_protocol is not None
     else "No protocol stored."),
    ("Test repeat share", f"{repeat_share:.1%}" if pd.notna(repeat_share) else "—",
     "Share of test targets the user had already bought: metrics are reported with and without them."),
    ("Median history", f"{summary['seq_len_median']:g}",
     f"Purchases per user: min {summary['seq_len_min']}, mean {summary['seq_len_mean']}, "
     f"max {summary['seq_len_max']}."),
]
for row in (tiles[:4], tiles[4:]):
    for col, (label, value, help_text) in zip(st.columns(4), row, strict=True):
        col.metric(label, value, help=help_text, border=True)

left, right = st.columns(2)
lengths = px.histogram(x=data["lengths"], labels={"x": "purchases per user"}, title="History length per user")
lengths.update_layout(yaxis_title="users", bargap=0.05)
left.plotly_chart(lengths, width="stretch")
categories = px.bar(data["categories"], x="interactions", y="category", orientation="h", hover_data=["items"],
                    title=f"Top {len(data['categories'])} categories by purchases")
categories.update_yaxes(categoryorder="total ascending", title=None)
right.plotly_chart(categories, width="stretch")

st.subheader("Most-bought items")
if data["top_items"].empty:
    st.info("No item of this data set has an image.")
else:
    thumbnail_row(ws.images, data["top_items"])

st.subheader("Evaluation protocols")
st.caption("Chronological leave-one-out; negatives are drawn once with the seed and stored.")
st.dataframe(protocols, hide_index=True, width="stretch", column_config={
    "test_repeat_share": st.column_config.NumberColumn("test repeat share", format="percent"),
    "test_cold_share": st.column_config.NumberColumn(
        "test cold share", format="percent", help="Test items no training interaction contains."),
})

st.subheader("Pipeline")
imports = ws.store.imports(dataset)
if len(imports):
    made = json.loads(imports["params"].iloc[0])
    st.info(f"These results are precomputed: exported {made['exported_at'][:16].replace('T', ' ')} by mmrec "
            f"{made['code_version']} and imported {imports['finished_at'].iloc[0]:%Y-%m-%d %H:%M}. Each stage below "
            "says when and with what it was made; re-run a stage to recompute it here with the current engine.",
            icon=":material/inventory_2:")
if main_protocol is None:
    st.info("No evaluation protocol: create one with `mmrec protocol` to run the pipeline.")
    st.stop()
protocol_id = main_protocol["protocol_id"]
engine = get_engine(ws.settings)
running = live_job(ws.store, pipeline.PIPELINE_JOB, dataset=dataset, protocol_id=protocol_id)
table = pipeline.status(ws, engine, dataset, protocol_id)
icons = {"done": "✅ done", "stale": "🔄 stale", "missing": "⬜ missing", "optional": "➖ optional"}
st.dataframe(table.assign(state=table["state"].map(icons)), hide_index=True, width="stretch", column_config={
    "stage": "stage", "state": "state", "detail": "what exists", "made": "made (when, with what)",
    "makes": "what the stage makes"})
states = table.set_index("stage")["state"]
todo = [s for s in pipeline.select() if states[s] != "done"]
st.caption(f"To do: {', '.join(f'{s} ({states[s]})' for s in todo)}." if todo else
           f"✅ Every stage is done: {', '.join(pipeline.select())}.")
run_all, one, rerun = st.columns([2, 2, 1], vertical_alignment="bottom")
if run_all.button("Run the pipeline", type="primary", disabled=running or not todo,
                  help="Every stage in order; each skips what is up to date (resumable)."):
    pipeline.start_pipeline(ws, engine, dataset, protocol_id, pipeline.select())
    st.rerun()
stage = one.selectbox("Stage", pipeline.STAGES, format_func=lambda s: f"{s}: {pipeline.HELP[s]}")
if rerun.button("Run this stage", disabled=running, help="Recompute what is stale or missing in this stage."):
    pipeline.start_pipeline(ws, engine, dataset, protocol_id, [stage])
    st.rerun()
