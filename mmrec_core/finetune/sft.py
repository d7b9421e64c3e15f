"""Multi-task SFT of the recommender LLM with LoRA (QLoRA on CUDA), through TRL's SFTTrainer.

MMSRARec's multi-task instruction tuning and MLLM-MSR's SFT: the task mix of `finetune.data`
(yes/no, pick one of N, keyword reconstruction, summarization), conversational prompt-completion
rows, so TRL puts the loss on the answer tokens only. LoRA adapters on every linear layer of the
engine's own LLM; with `qlora` on CUDA the base is loaded in 4-bit NF4 and prepared with
`prepare_model_for_kbit_training`. Every `eval_steps` the pointwise recommender scores the VALID part
of `valid_users` users (their stored candidates) with the model being trained; the best valid HR@5
picks the adapter that is kept. Checkpoints go to `<run>/checkpoints`: a killed run resumes from the
last one when started again with the same settings (same run folder).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from mmrec_core.engines.protocol import Engine
from mmrec_core.finetune.common import (
    Progress,
    ProgressCallback,
    RunLogCallback,
    load_policy,
    run_folder,
    save_adapter,
    train_or_resume,
    trainer_args,
)
from mmrec_core.finetune.configs import SFTRunConfig
from mmrec_core.finetune.data import TrainDataBuilder
from mmrec_core.recommend.prompts import REC_VERSION
from mmrec_core.store.workspace import Workspace, default_protocol


def train_sft(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: SFTRunConfig | None = None,
    progress: Progress | None = None,
) -> str:
    """Train, keep the best adapter by valid HR@5, write its metadata, record a 'train' run; returns the run id."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from mmrec_core.finetune.valid import ValidCallback, ValidScorer
    from mmrec_core.recommend.context import ContextBuilder

    config = config or SFTRunConfig()
    protocol_id = default_protocol(ws, dataset, protocol_id)
    base = engine.llm_source()
    folder = run_folder(ws, "sft", dataset, protocol_id, base, config.key())
    start = time.perf_counter()
    train_ctx = ContextBuilder(ws, dataset, protocol_id, "test")  # its cut contexts use training items only
    examples = TrainDataBuilder(train_ctx, lambda t: engine.count_tokens(t), config.data).build()
    model, tokenizer = load_policy(base, config.qlora)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        max_length=config.max_length,
        gradient_checkpointing=config.gradient_checkpointing,  # TRL turns it on by default
        **trainer_args(folder, config.eval_steps, config.seed, config.qlora),
    )
    valid = ValidScorer(ws, dataset, protocol_id, config.valid_users, config.seed)
    log, best = RunLogCallback(folder), folder / "adapter"
    callback = ValidCallback(valid, config.eval_steps, best, tokenizer)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_pandas(examples[["prompt", "completion"]], preserve_index=False),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[ProgressCallback(progress), callback, log],
    )
    train_or_resume(trainer, folder, log, "SFT")
    callback.finish(trainer.model, trainer.state.global_step)  # the final weights get scored too
    log.write(trainer.state)
    meta = {
        "base_model": base,
        "engine": engine.provenance("llm", REC_VERSION)["model"],
        "prompt_version": REC_VERSION,
        "dataset": dataset,
        "protocol_id": protocol_id,
        "method": "sft-lora" + ("-qlora" if config.qlora else ""),
        "config": asdict(config),
        "data": {"examples": len(examples), "tasks": examples["task"].value_counts().to_dict()},
        "valid": callback.history,
        "best_step": callback.best_step,
        "best_valid_HR@5": callback.best,
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": trainer.state.global_step,
        "log": [row for row in trainer.state.log_history if "loss" in row or "valid_HR@5" in row],
    }
    return save_adapter(ws, dataset, protocol_id, "llm-sft", best, meta)
