"""What every trainer of stage 5 shares: the run folder, the policy model, the live log, stopping.

A run folder is keyed by everything that decides the result (method, data set, protocol, base model,
config), so starting the same run again finds its checkpoints and resumes. While training, the
trainer's log history is rewritten to `<run>/log.json` at every log step: that file is what the Train
page draws its live curves from. A `STOP` file in the run folder asks the trainer to save a checkpoint
and stop (the page's Stop button); starting the run again resumes from that checkpoint. A `FINISH`
file ends the run early as if it had reached its last step: the best adapter so far is kept, its
metadata written and the run recorded (read by the next start when no trainer is running).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import TrainerCallback

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.jobs import JobStopped
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance
from mmrec_core.engines.llm import TextLM
from mmrec_core.store.workspace import Workspace

LOG_FILE, STOP_FILE, FINISH_FILE = "log.json", "STOP", "FINISH"


def run_folder(ws: Workspace, method: str, dataset: str, protocol_id: str, base: str, config_key: str) -> Path:
    """Same settings, same folder: that is how a re-run finds the checkpoints of a killed run."""
    key = input_hash(f"{dataset}|{protocol_id}|{base}|{config_key}", length=12)
    return ws.settings.data_dir / "runs" / f"{method}-{key}"


def load_policy(source: str, qlora: bool = False, adapter: str = ""):
    """A fresh copy of the base LLM to train (fp32 on CPU; 4-bit NF4 + k-bit preparation for QLoRA).

    With `adapter` (e.g. an SFT result) the returned model is that PEFT adapter, trainable, so GRPO
    continues from it and the result is again one adapter on the same base.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmrec_core.engines.loading import attach_adapter, offline, quantization_config

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline())
    if qlora:
        if not torch.cuda.is_available():
            raise ValueError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); train plain LoRA on this machine.")
        from peft import prepare_model_for_kbit_training

        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quantization_config("4bit"), device_map={"": 0}, local_files_only=offline()
        )
        model = prepare_model_for_kbit_training(model)
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=offline()).to(device)
    if adapter:
        model = attach_adapter(model, adapter, trainable=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@contextmanager
def inference(model, tokenizer) -> Iterator[TextLM]:
    """The model being trained as a TextLM in eval mode (no dropout) for the block; training mode comes back after."""
    was_training = model.training
    try:
        yield TextLM(model, tokenizer, "training")  # TextLM puts the model in eval mode
    finally:
        model.train(was_training)


def completion_text(completion) -> str:
    """The text of a TRL completion: conversational ([{"role": "assistant", "content": ...}]) or plain."""
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def read_log(folder: Path) -> list[dict]:
    """The live log of a run (one dict per logged step; valid checks carry `valid_*` keys)."""
    path = Path(folder) / LOG_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else []
    except json.JSONDecodeError:  # caught between write and rename on a foreign file system: try next time
        return []


def request_stop(folder: Path, finish: bool = False) -> None:
    """Stop at the end of the current step: to resume later, or (`finish`) for good, keeping the best adapter."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / (FINISH_FILE if finish else STOP_FILE)).write_text("requested\n")


class RunLogCallback(TrainerCallback):
    """Rewrites `<run>/log.json` at every log (atomic rename), and stops the run when `<run>/STOP` appears."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.stopped = False
        (self.folder / STOP_FILE).unlink(missing_ok=True)  # a new start is a resume: the old request is spent

    def write(self, state) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (LOG_FILE + ".tmp")
        tmp.write_text(json.dumps(state.log_history, default=float))
        os.replace(tmp, self.folder / LOG_FILE)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.write(state)

    def on_step_end(self, args, state, control, **kwargs):
        if (self.folder / STOP_FILE).is_file():
            self.stopped = True
            control.should_save = True  # a checkpoint to resume from
            control.should_training_stop = True
        elif (self.folder / FINISH_FILE).is_file():
            control.should_save = True  # so a later start with the same settings could still go on
            control.should_training_stop = True  # not `stopped`: the run ends normally, adapter and all
        return control


class ProgressCallback(TrainerCallback):
    """Reports (step, total steps, the latest figures) to a progress callback (tqdm on the CLI, a job in the app)."""

    SHOWN = ("loss", "reward", "valid_HR@5", "completions/mean_length")

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress and logs:
            text = " ".join(f"{k.split('/')[-1]} {logs[k]:.4g}" for k in self.SHOWN if k in logs)
            self.progress(state.global_step, state.max_steps, text)


def stopped_message(method: str, step: int, total: int) -> str:
    return f"{method} stopped at step {step} of {total} on request; start it again with the same settings to resume."


def trainer_args(folder: Path, save_steps: int, seed: int, qlora: bool) -> dict:
    """TrainingArguments every trainer here shares: checkpoints in the run folder, a log row per step."""
    cuda = torch.cuda.is_available()
    return {
        "output_dir": str(folder / "checkpoints"),
        "logging_steps": 1,
        "save_steps": save_steps,
        "save_total_limit": 2,
        "seed": seed,
        "report_to": [],
        "use_cpu": not cuda,
        "bf16": cuda and not qlora,
        "disable_tqdm": True,  # progress goes through ProgressCallback
    }


def train_or_resume(trainer, folder: Path, log: RunLogCallback, what: str) -> None:
    """Train from the run folder's last checkpoint if there is one; JobStopped if stopped on request."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    trainer.remove_callback(PrinterCallback)  # it prints every log dict; progress goes through `progress`
    checkpoints = folder / "checkpoints"
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None)
    (folder / FINISH_FILE).unlink(missing_ok=True)  # the request is spent
    state = trainer.state
    if log.stopped and state.global_step < state.max_steps:
        raise JobStopped(stopped_message(what, state.global_step, state.max_steps))


def save_adapter(ws: Workspace, dataset: str, protocol_id: str | None, method: str, best: Path, meta: dict) -> str:
    """Write `mmrec_adapter.json` (provenance, settings, valid figures, log) beside the adapter; record the run."""
    (best / "mmrec_adapter.json").write_text(json.dumps(meta, indent=1, default=str))
    params = {k: v for k, v in meta.items() if k != "log"}
    provenance = Provenance(ws.settings.engine, meta["base_model"], meta.get("prompt_version"), {"method": method})
    return ws.store.record_run(dataset, protocol_id, "train", method, params, best, provenance=provenance)
