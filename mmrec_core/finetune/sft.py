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

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

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
from mmrec_core.finetune.data import TrainDataBuilder, TrainDataConfig
from mmrec_core.prompts import REC_VERSION
from mmrec_core.workspace import Workspace


@dataclass
class SFTRunConfig:
    """LoRA SFT of the recommender LLM on the task mix."""

    data: TrainDataConfig = field(default_factory=TrainDataConfig, metadata={"help": "The task mix to train on."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling (alpha / r multiplies the update)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the examples (max_steps wins if set)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: epochs)."})
    batch_size: int = field(default=4, metadata={"help": "Examples per device step."})
    grad_accum: int = field(default=1, metadata={"help": "Steps accumulated per optimizer step."})
    max_length: int = field(default=2048, metadata={"help": "Longest tokenized example; longer ones are cut."})
    qlora: bool = field(default=False, metadata={"help": "4-bit NF4 base (CUDA only), LoRA on top."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations to save memory (big models)."}
    )
    valid_users: int = field(default=64, metadata={"help": "Valid users scored to pick the best checkpoint."})
    eval_steps: int = field(default=50, metadata={"help": "Score the valid users every this many steps."})
    seed: int = field(default=0, metadata={"help": "Seed for LoRA initialisation and data order."})

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def train_sft(
    ws: Workspace,
    engine,
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
    from mmrec_core.rec_context import ContextBuilder
    from mmrec_core.splits import create_protocol

    config = config or SFTRunConfig()
    protocol_id = protocol_id or create_protocol(ws.store, dataset)
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
