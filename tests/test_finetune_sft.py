"""LoRA SFT through TRL on a tiny random-weight Llama (the hf engine's path): the adapter, its metadata
and run row, valid-based checkpoint choice, and resuming a killed run from its last checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrec_core.core.jobs import JobStopped
from mmrec_core.data.splits import create_protocol
from mmrec_core.engines import get_engine
from mmrec_core.finetune.common import request_stop, run_folder
from mmrec_core.finetune.configs import SFTRunConfig, TrainDataConfig
from mmrec_core.finetune.sft import train_sft
from mmrec_core.store.workspace import Workspace

CONFIG = SFTRunConfig(
    data=TrainDataConfig(n_examples=24, pick_candidates=5), max_steps=4, batch_size=4, eval_steps=2, valid_users=6
)


def test_sft_writes_an_adapter_with_metadata_and_a_run(rec_ws: Workspace, tiny_engine) -> None:
    run_id = train_sft(rec_ws, tiny_engine, "sample", config=CONFIG)
    row = rec_ws.store.sql_df("SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0]
    assert (row["kind"], row["method"]) == ("train", "llm-sft")
    adapter = Path(row["artifact_path"])
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    meta = json.loads((adapter / "mmrec_adapter.json").read_text())
    assert meta["base_model"] == tiny_engine.llm_source() and meta["steps"] == 4
    assert meta["data"]["tasks"] == {"yesno": 12, "pick": 5, "recon": 4, "summary": 4}  # 24 x ratios, rounded
    assert [v["step"] for v in meta["valid"]] == [0, 2, 4]  # before training, then every eval_steps (VALID part)
    best = max(meta["valid"], key=lambda v: v["valid_HR@5"])
    assert meta["best_step"] == best["step"] and meta["best_valid_HR@5"] == best["valid_HR@5"]
    assert any("loss" in r for r in meta["log"])
    # the adapter loads through the engine setting every command uses
    scored = get_engine(replace(tiny_engine.settings, adapter=str(adapter)))
    assert scored.score_yes_no("Will they buy it? ", ["Answer Yes or No."]).shape == (1,)


def test_a_killed_run_resumes_from_its_last_checkpoint(rec_ws: Workspace, tiny_engine) -> None:
    def kill_at_step_3(step: int, total: int, message: str) -> None:
        if step >= 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_sft(rec_ws, tiny_engine, "sample", config=CONFIG, progress=kill_at_step_3)
    pid = create_protocol(rec_ws.store, "sample")
    folder = run_folder(rec_ws, "sft", "sample", pid, tiny_engine.llm_source(), CONFIG.key())
    assert (folder / "checkpoints" / "checkpoint-2").is_dir()  # saved before the kill
    run_id = train_sft(rec_ws, tiny_engine, "sample", config=CONFIG)
    meta = json.loads((folder / "adapter" / "mmrec_adapter.json").read_text())
    assert meta["steps"] == 4 and (folder / "checkpoints" / "checkpoint-4").is_dir()
    assert [v["step"] for v in meta["valid"]] == [0, 2, 4]  # the checks before the kill are kept
    assert rec_ws.store.scalar("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]) == 1


def test_finish_ends_a_stopped_run_at_once_and_keeps_its_best_adapter(rec_ws: Workspace, tiny_engine) -> None:
    config = replace(CONFIG, max_steps=8)
    pid = create_protocol(rec_ws.store, "sample")
    folder = run_folder(rec_ws, "sft", "sample", pid, tiny_engine.llm_source(), config.key())

    def stop_at_step_3(step: int, total: int, message: str) -> None:
        if step >= 3:
            request_stop(folder)

    with pytest.raises(JobStopped):
        train_sft(rec_ws, tiny_engine, "sample", config=config, progress=stop_at_step_3)
    request_stop(folder, finish=True)  # `mmrec train sft ... --finish`, the Train page's Finish now
    run_id = train_sft(rec_ws, tiny_engine, "sample", config=config)
    meta = json.loads((folder / "adapter" / "mmrec_adapter.json").read_text())
    assert meta["steps"] == 5 and [v["step"] for v in meta["valid"]] == [0, 2, 4, 5]  # one more step, then the end
    assert meta["best_valid_HR@5"] == max(v["valid_HR@5"] for v in meta["valid"])
    assert not (folder / "FINISH").exists() and rec_ws.store.scalar(
        "SELECT count(*) FROM runs WHERE run_id = ?", [run_id]
    )


def test_cli_trains_then_scores_with_the_adapter(rec_ws: Workspace, tiny_engine, monkeypatch, capsys) -> None:
    from mmrec_core.cli.main import main

    monkeypatch.setenv("MMREC_ENGINE", "hf")
    monkeypatch.setenv("MMREC_LLM", tiny_engine.settings.llm)
    root = str(rec_ws.settings.data_dir)
    rec_ws.close()  # one writer per DuckDB file: the commands open it now
    args = ["train", "sft", "sample", "--steps", "2", "--examples", "8", "--valid-users", "3", "--eval-steps", "1"]
    assert main(["--data-dir", root, *args]) == 0
    out = capsys.readouterr().out
    assert "sft-lora run train-llm-sft-" in out and "step     0: valid HR@5" in out and "step     2: valid" in out
    adapter = out.split("score with it: mmrec eval llm sample --adapter ")[1].strip()
    assert main(["--data-dir", root, "eval", "llm", "sample", "--users", "2", "--adapter", adapter]) == 0
    assert "2 users (2 scored now" in capsys.readouterr().out
    from mmrec_core.store.database import Store

    store = Store(Path(root) / "mmrec.duckdb")
    params = json.loads(store.scalar("SELECT params FROM llm_scores LIMIT 1"))
    store.close()
    assert params["adapter"] == adapter  # the scores say which adapter made them


def test_an_adapter_for_scoring_is_merged_and_gives_the_same_logits(tiny_engine, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mmrec_core.engines.loading import attach_adapter

    base = tiny_engine.settings.llm
    trained = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules="all-linear"))
    for name, weight in trained.named_parameters():
        if "lora_B" in name:  # a non-zero update (B starts at zero)
            torch.nn.init.normal_(weight, std=0.5)
    trained.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        expected = trained.eval()(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(base)(ids).logits
        merged = attach_adapter(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "adapter"))
        got = merged(ids).logits
    assert type(merged).__name__ == "LlamaForCausalLM"  # no LoRA branch left to run per layer
    assert torch.allclose(got, expected, atol=1e-5) and not torch.allclose(got, plain, atol=1e-3)
