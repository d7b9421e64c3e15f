"""Overview: what is in the selected data set, its evaluation protocols, and how far the pipeline got."""

import pandas as pd
import plotly.express as px
import streamlit as st

from mmrec_core.data import stats
from mmrec_core.store.database import Store
from widgets import current_dataset, data_version, get_workspace, thumbnail_row


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
status = stats.pipeline_status(ws.store, dataset)

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

st.subheader("Pipeline status")
st.dataframe(status, hide_index=True, width="stretch", column_config={
    "done": st.column_config.CheckboxColumn("done"),
    "count": st.column_config.NumberColumn("count", format="localized"),
})
