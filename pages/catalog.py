"""Catalog: find items, read what the models wrote about them (descriptions, keywords, rewards), add items from images.

Textualization runs as a background job (`catalog.start_textualize`); this page only starts jobs and shows
their state, so a plain rerun always shows the current progress and the texts stored so far.
"""

import streamlit as st

from mmrec_core.engines import get_engine
from mmrec_core.store.images import BadImageError
from mmrec_core.textualize import catalog
from widgets import current_dataset, get_workspace, item_card, item_text_version, item_thumbnail, live_job

PAGE_SIZE = 24
SELECTED, SHOWN, NOTICE, UPLOADER = "catalog_selected", "catalog_shown", "catalog_notice", "catalog_uploader"
GO_GRAPH = "catalog_go_graph"

ws = get_workspace()
if st.session_state.pop(GO_GRAPH, False):  # set by the item's "Item graph" button
    st.switch_page("pages/item_graph.py")
dataset = current_dataset()


def start(item_ids: list[str] | None, force: bool) -> None:
    """Button callback: start a textualization job (the models load and run in the job's thread)."""
    try:
        catalog.start_textualize(ws, get_engine(ws.settings), dataset, item_ids, force=force)
    except ValueError as exc:  # bad engine settings
        st.session_state[NOTICE] = ("error", str(exc))


def upload() -> None:
    """Button callback: store the uploaded images as items, then textualize the new items in the background."""
    files = st.session_state.get(f"{UPLOADER}_{st.session_state.get(UPLOADER, 0)}") or []
    if not files:
        st.session_state[NOTICE] = ("warning", "Choose one or more images first.")
        return
    try:
        ids = catalog.add_uploads(
            ws,
            dataset,
            [(f.name, f.getvalue()) for f in files],
            st.session_state.get("catalog_title", ""),
            st.session_state.get("catalog_category", ""),
        )
    except BadImageError as exc:  # names the file and the limit or the problem
        st.session_state[NOTICE] = ("error", f"{exc} Nothing was stored.")
        return
    except Exception as exc:  # a database or disk failure too: a message on the page, never a traceback
        reason = str(exc) or type(exc).__name__
        st.session_state[NOTICE] = ("error", f"The upload failed and nothing was stored ({reason}). Try again.")
        return
    st.session_state[UPLOADER] = st.session_state.get(UPLOADER, 0) + 1  # a fresh, empty uploader
    st.session_state[SELECTED] = ids[0]
    st.session_state[NOTICE] = ("success", f"Added {len(ids)} item(s): {', '.join(ids)}. Textualizing them now.")
    start(ids, force=False)


counts = catalog.textualized_counts(ws.store, dataset)

st.title(f"Catalog · {dataset}")
st.caption(f"{counts['textualized']:,} of {counts['items']:,} items textualized with engine `{ws.settings.engine}`.")


left, right = st.columns([3, 1], vertical_alignment="center")
with left:
    running = live_job(ws.store, catalog.TEXTUALIZE_JOB, dataset=dataset)
right.button(
    "Textualize all",
    on_click=start,
    args=(None, False),
    disabled=running,
    width="stretch",
    help="Describe, summarise and score every item not done yet with the current engine (resumable).",
)

with st.expander("Add items from images", expanded=SELECTED not in st.session_state):
    st.file_uploader(
        "Images",
        type=["jpg", "jpeg", "png", "webp"],
        accept_multiple_files=True,
        key=f"{UPLOADER}_{st.session_state.get(UPLOADER, 0)}",
    )
    c1, c2 = st.columns(2)
    c1.text_input("Title", key="catalog_title", placeholder="default: the file name")
    c2.text_input("Category", key="catalog_category", placeholder=catalog.UPLOAD_CATEGORY)
    st.button("Add and textualize", on_click=upload, disabled=running, type="primary")
if NOTICE in st.session_state:
    kind, text = st.session_state.pop(NOTICE)
    getattr(st, kind)(text)

view = None
if selected := st.session_state.get(SELECTED):
    try:
        view = catalog.item_view(ws.store, dataset, selected)
    except KeyError:  # chosen in another data set
        st.session_state.pop(SELECTED)
if view is not None:
    with st.container(border=True):
        head, close = st.columns([5, 1], vertical_alignment="center")
        head.subheader(view["title"] or view["item_id"])
        close.button("Close", on_click=st.session_state.pop, args=(SELECTED,), width="stretch")
        image_col, text_col = st.columns([1, 2])
        with image_col:
            item_thumbnail(ws.images, view, caption=f"{view['item_id']} · {view['category']}")
            st.button(
                "Regenerate",
                on_click=start,
                args=([view["item_id"]], True),
                disabled=running,
                help="Textualize this item again with the current engine, even if nothing changed.",
            )
            st.button(
                "Item graph",
                on_click=st.session_state.update,
                kwargs={"graph_item": view["item_id"], GO_GRAPH: True},
                help="See this item's neighbours in the refined item graph.",
            )
        with text_col:
            item_text_version(view["latest"], reference=str(view["attributes"].get("detail_desc") or ""))
        with st.expander("Catalog text and attributes"):
            st.write(view["text"])
            st.json(view["attributes"], expanded=False)
        st.markdown("**All stored versions** (engines, models and prompt versions side by side)")
        shown = [
            "created_at",
            "engine",
            "model",
            "describe_prompt",
            "keyword_prompt",
            "reward",
            "keywords",
            "description",
        ]
        st.dataframe(view["versions"][shown], hide_index=True, width="stretch")  # not the Grounding objects


def reset_paging() -> None:
    st.session_state[SHOWN] = PAGE_SIZE


query = st.text_input(
    "Search", key="catalog_query", on_change=reset_paging, placeholder="title words, category, item id or keyword"
)
found = catalog.search_items(ws.store, dataset, query, limit=st.session_state.setdefault(SHOWN, PAGE_SIZE))
total = int(found["matches"].iloc[0]) if len(found) else 0
st.caption(f"Showing {len(found)} of {total:,} matching items.")
records = found.to_dict("records")
for first in range(0, len(records), 6):
    for col, item in zip(st.columns(6), records[first : first + 6], strict=False):
        with col:
            item_card(ws.images, item)
            st.button(
                "Details",
                key=f"open_{item['item_id']}",
                on_click=st.session_state.__setitem__,
                args=(SELECTED, item["item_id"]),
                width="stretch",
            )
if len(found) < total:
    st.button("Show more", on_click=lambda: st.session_state.__setitem__(SHOWN, st.session_state[SHOWN] + PAGE_SIZE))
