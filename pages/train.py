"""Train: fine-tune the recommender LLM (SFT, GRPO) or the keyword summarizer (RLVR) in the background.

The settings build the same config as `mmrec train ...` (`finetune.runs.train_config`): the same
settings land in the same run folder, so Start after Stop (or after a crash) resumes.
"""

import plotly.express as px
import streamlit as st

from mmrec_core.engines import get_engine
from mmrec_core.finetune import LLM_METHODS, runs
from mmrec_core.finetune.data import TASKS
from widgets import current_dataset, get_workspace, live_job

LABELS = {"sft": "SFT (task mix)", "grpo": "GRPO (listwise)", "keywords": "Keyword RLVR"}
ws = get_workspace()
dataset = current_dataset()
engine = get_engine(ws.settings)
st.title(f"Train · {dataset}")

left, right = st.columns([2, 3])
with left:
    method = st.radio("Method", LLM_METHODS, format_func=LABELS.get, horizontal=True, key="train_method")
    st.caption(f"Base model: `{engine.model_names()['llm']}` (the engine's LLM; change it in Engine settings)")
    o = {"seed": 0}
    o["examples"] = st.number_input(
        "Examples / prompts / items", 2, 100_000, 2000 if method == "sft" else 64, key="t_examples"
    )
    o["steps"] = st.number_input("Optimizer steps", 1, 100_000, 200 if method == "sft" else 20, key="t_steps")
    o["eval_steps"] = st.number_input(
        "Valid check every n steps", 1, 10_000, 50 if method == "sft" else 10, key="t_eval"
    )
    o["lr"] = st.number_input("Learning rate", 1e-6, 1e-2, 2e-4 if method == "sft" else 5e-5, format="%.0e")
    o["lora_r"] = st.select_slider("LoRA rank", [4, 8, 16, 32, 64], 8)
with right:
    if method == "sft":
        st.markdown("**Task mix** (shares, normalised)")
        default = {"yesno": 0.5, "pick": 0.2, "recon": 0.15, "summary": 0.15}
        o["ratios"] = {t: st.slider(t, 0.0, 1.0, default[t], 0.05, key=f"ratio_{t}") for t in TASKS}
        o["valid_users"] = st.number_input("Valid users per check", 2, 5000, 64, key="t_valid")
    elif method == "grpo":
        done = runs.adapters(ws, dataset)
        sft = done[done["method"] == "llm-sft"]["adapter"].tolist()
        o["from_adapter"] = st.selectbox("Start from", ["", *sft], format_func=lambda a: a or "the base model")
        o["reward"] = st.radio("Correctness reward", ["hit", "rank"], horizontal=True)
        o["candidates"] = st.slider("Candidates per prompt", 2, 20, 5, key="t_cands")
        o["generations"] = st.slider("Completions per prompt", 2, 16, 4, key="t_gens")
        o["format_weight"] = st.slider("Format reward weight (paid only when correct)", 0.0, 1.0, 0.2)
        o["rationale_ratio"] = st.slider("Share of prompts with a curated rationale", 0.0, 1.0, 0.1)
        o["rationale_confidence"] = st.slider("Rationale confidence needed", 0.0, 1.0, 0.5)
        o["valid_users"] = st.number_input("Valid users per check (listwise)", 2, 5000, 16, key="t_valid_g")
    else:
        o["generations"] = st.slider("Keyword lists per item", 2, 16, 4, key="t_kw_gens")
        st.caption("Rewards: R_info + R_recon + R_len (weights: engine settings), judged by the frozen LLM.")

try:
    config = runs.train_config(method, **o)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
folder = runs.folder_of(ws, engine, method, dataset, None, config)
running = live_job(ws.store, "train", dataset=dataset)
job = runs.latest_training(ws, dataset)
start, stop, finish = st.columns(3)
start.button(
    "Start (resumes the same settings)",
    type="primary",
    disabled=running,
    key="train_start",
    on_click=lambda: st.session_state.update(train_go=True),
)
stop.button("Stop", disabled=not running, key="train_stop", on_click=lambda: runs.stop_training(job["folder"]))


def finish_now() -> None:
    runs.stop_training(job["folder"] if running else folder, finish=True)
    st.session_state["train_go"] = not running  # a stopped run: resume it only to end it


finish.button(
    "Finish now",
    disabled=not (running or runs.has_checkpoint(folder)),
    key="train_finish",
    on_click=finish_now,
    help="End the run after the current step and keep its best adapter (a stopped run: from its checkpoint)",
)
if st.session_state.pop("train_go", False) and not running:
    runs.start_training(ws, engine, method, dataset, config)
    st.rerun()


@st.fragment(run_every=2.0 if running else None)
def live_curves() -> None:
    shown = job["folder"] if job else folder
    data = runs.curves(shown)
    for text in runs.warnings_of(shown):
        st.warning(text)
    if data.empty:
        st.info("No training log yet for these settings: press Start.")
        return
    data["panel"] = data["metric"].map(runs.panel_of)
    for panel, part in data.dropna(subset=["panel"]).groupby("panel", sort=False):
        fig = px.line(part, x="step", y="value", color="metric", markers=True, title=panel, height=260)
        st.plotly_chart(fig, key=f"curve_{panel}")


live_curves()
st.subheader("Finished adapters")
finished = runs.adapters(ws, dataset)
if finished.empty:
    st.info("None yet. A finished run's adapter appears here and on the Recommend page.")
else:
    st.dataframe(finished, hide_index=True)
