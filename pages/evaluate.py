"""Evaluate: which method wins, by how much, for whom, and whether it is real.

The leaderboard holds the newest eval run of every model setting on one protocol, with 95% bootstrap
intervals; runs on other users or candidates are listed apart (the protocol guard). Two runs are
compared user by user; the customers they disagree on open on the Recommend or Customers page. The
whole-catalog table holds each model's full ranking and the two-stage runs (retrieve K, LLM re-ranks).
Beside the leaderboard: whether each LLM setting's rationales cite what moved its scores (`explain.faithfulness`).
`mmrec eval --all DATASET` fills it; `mmrec_core.leaderboard` does the work.
"""

import streamlit as st

from mmrec_core.evaluate import leaderboard as lb
from mmrec_core.evaluate.report import breakdown_figure, format_table, leaderboard_figure
from mmrec_core.explain import faithfulness
from widgets import current_dataset, data_version, get_workspace, session_cached

PAGES = {
    "Recommend": ("pages/recommend.py", "rec_query", "rec_user"),
    "Customers": ("pages/customers.py", "customer_query", "customer_selected"),
}

ws = get_workspace()
dataset = current_dataset()
if target := st.session_state.pop("ev_open", None):
    st.switch_page(target)
st.title(f"Evaluate · {dataset}")

protocol = st.selectbox(
    "Protocol",
    lb.protocols(ws, dataset),
    key="ev_protocol",
    help="Runs of different protocols (splits, negatives) are never ranked together",
)
key = ("leaderboard", data_version(ws, dataset), protocol, lb.runs_version(ws, dataset, protocol))
board = session_cached(key, lambda: lb.leaderboard(ws, dataset, protocol))
for row in board.excluded.itertuples():
    st.warning(f"Not ranked here: **{row.label}** (`{row.run_id}`): {row.reason}.")
if board.table.empty:
    st.info(f"No comparable eval runs yet. Run `mmrec eval --all {dataset}` (every available model), then reload.")
    st.stop()

st.caption(f"{board.users:,} evaluated users · test part · mean [95% bootstrap interval over users]")
st.dataframe(format_table(board.table), hide_index=True, key="ev_table")
metric = st.radio("Metric", lb.METRICS, horizontal=True, index=1, key="ev_metric")
st.plotly_chart(leaderboard_figure(board.table, metric))

st.subheader("Do the rationales explain the scores?")
faith = faithfulness.faithfulness_board(ws, dataset, protocol)
if faith.empty:
    st.info(f"No rationale runs yet: `mmrec eval-rationales {dataset}` (the zero-shot LLM and every adapter).")
else:
    st.caption(
        "How often a rationale cites the context piece whose removal moves the item's score most (a lexical proxy), "
        "and the rank correlation of what it cites with each piece's effect, beside the model's NDCG@5: a model "
        "that ranks well but explains unfaithfully shows here. `mmrec eval-rationales` adds runs."
    )
    faith = faithfulness.beside_accuracy(faith, board.table).drop(columns=["method", "adapter", "run_id"])
    st.dataframe(faith, hide_index=True, key="ev_faith", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in faith.columns[1:] if faith[c].dtype.kind == "f"
    })  # fmt: skip

st.header("Whole catalog: retrieve, then re-rank")
full = session_cached(("full", *key[1:]), lambda: lb.full_catalog_board(ws, dataset, protocol))
if full.empty:
    st.info(f"No full-catalog runs yet: `mmrec eval two-stage {dataset}` (the best model's top 50, LLM re-ranked).")
else:
    st.caption(
        "Every test user, the whole catalog ranked (their own past items left out). A model's row is its own "
        "ranking; a two-stage row re-ranks the retriever's top K with the LLM, whose ceiling is the retriever's "
        "Recall@K."
    )
    st.dataframe(full.drop(columns="run_id"), hide_index=True, key="ev_full", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in full.columns if c not in ("label", "run_id")
    })

st.header("Two runs, user by user")
labels = dict(zip(board.table["run_id"], board.table["label"], strict=True))
runs = list(labels)
left, right = st.columns(2)
run_a = left.selectbox("Run A", runs, format_func=labels.get, key="ev_a")
run_b = right.selectbox("Run B", runs, index=min(1, len(runs) - 1), format_func=labels.get, key="ev_b")
if run_a == run_b:
    st.info("Pick two different runs to compare them.")
else:
    r = lb.paired_test(ws, run_a, run_b, metric)
    st.markdown(
        f"**{metric}**: A {r.mean_a:.4f} vs B {r.mean_b:.4f}; difference **{r.diff:+.4f}**, 95% paired interval "
        f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}], Wilcoxon p = {r.p_value:.3g}; A better for {r.a_better} users, "
        f"B for {r.b_better}." + (" The interval excludes 0." if r.ci[0] > 0 or r.ci[1] < 0 else "")
    )
    k = st.select_slider("Hit means the test item is in the top", [1, 3, 5, 10], 5, key="ev_k")
    split = lb.disagreements(ws, dataset, protocol, run_a, run_b, k)
    cols = st.columns(2)
    for col, side, name in ((cols[0], "a", "A"), (cols[1], "b", "B")):
        rows = split[split["winner"] == side].drop(columns="winner")
        col.markdown(f"**Only {name} gets it right** ({len(rows)} customers)")
        col.dataframe(rows, hide_index=True, height=240, key=f"ev_only_{side}")
    if not split.empty:
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        user = c1.selectbox("Customer", split["user_id"], key="ev_user")
        page = c2.radio("Open on", list(PAGES), horizontal=True, key="ev_page")

        def open_customer() -> None:
            path, query_key, user_key = PAGES[st.session_state["ev_page"]]
            st.session_state[query_key] = st.session_state[user_key] = st.session_state["ev_user"]
            st.session_state["ev_open"] = path

        c2.button("Open", on_click=open_customer, key="ev_go")

st.header("For whom")
by = st.radio(
    "Break down by",
    ["history", "category", "cold"],
    horizontal=True,
    key="ev_by",
    format_func={
        "history": "history length", "category": "test item category", "cold": "cold / warm test item"
    }.get,
)
frame = lb.breakdown(ws, dataset, protocol, runs, by, metric)
st.plotly_chart(breakdown_figure(frame, labels, metric, by))
