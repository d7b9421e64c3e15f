"""Train: fine-tune the recommender LLM (SFT, GRPO) or the keyword summarizer (RLVR) in the background.

The form is generated from the trainers' config dataclasses (`finetune.configs`), as `mmrec train`'s
flags are, and builds the config the same way (`finetune.runs.train_config`): the same settings land
in the same run folder (shown), so Start after Stop, after a crash, or after the CLI, resumes.
"""

import plotly.express as px
import streamlit as st

from mmrec_core.engines import get_engine
from mmrec_core.finetune import LLM_METHODS, runs
from widgets import current_dataset, get_workspace, live_job, option_widgets

LABELS = {"sft": "SFT (task mix)", "grpo": "GRPO (listwise)", "keywords": "Keyword RLVR", "describer": "Describer SFT"}
ws = get_workspace()
dataset = current_dataset()
engine = get_engine(ws.settings)
st.title(f"Train · {dataset}")

left, right = st.columns([2, 3])
with left:
    method = st.radio("Method", LLM_METHODS, format_func=LABELS.get, horizontal=True, key="train_method")
    st.caption(f"Base model: `{engine.model_names()['llm']}` (the engine's LLM; change it in Engine settings)")
    config_type, key = runs.TRAINERS[method], f"t_{method}"
    o = option_widgets(config_type, ["examples", "steps", "eval-steps", "lr", "lora-r"], key)
with right:  # the rest of each trainer's settings: `mmrec train METHOD --help`
    if method == "sft":
        o |= option_widgets(config_type, ["ratios", "valid-users"], key)
    elif method == "grpo":
        done = runs.adapters(ws, dataset)
        sft = ["", *done[done["method"] == "llm-sft"]["adapter"]]
        names = ["from-adapter", "reward", "candidates", "generations", "format-weight", "rationale-ratio"]
        names += ["rationale-confidence", "valid-users"]
        o |= option_widgets(config_type, names, key, choices={"from-adapter": sft})
    elif method == "describer":
        o |= option_widgets(config_type, ["valid-items", "batch-size"], key)
        st.caption("Learns the human descriptions (H&M detail_desc) from the fact sheet, training articles only.")
    else:
        o |= option_widgets(config_type, ["generations"], key)
        st.caption("Rewards: R_info + R_recon + R_len (weights: engine settings), judged by the frozen LLM.")

try:
    config = runs.train_config(method, **o)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
folder = runs.folder_of(ws, engine, method, dataset, None, config)
st.caption(f"Run folder: `{folder}` (the same settings resume it; `mmrec train {method}` uses the same)")
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
