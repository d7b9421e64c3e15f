"""SFT training throughput: tokens per second of LoRA SFT on the task mix, in one run.

Builds real examples from sample_data (the recommender's prompts; yes/no, pick, recon, summary),
trains `--steps` optimizer steps of LoRA through TRL's SFTTrainer on the engine's LLM, and prints
training tokens/s and examples/s measured after a warm-up step, with and without gradient
checkpointing. The data folder is a temporary one (the sample is ingested there).

    python bench/train_throughput.py                   # builtin SmolLM2-135M, CPU
    python bench/train_throughput.py --steps 10 --batch 8

A QLoRA figure needs CUDA (bitsandbytes 4-bit): with a GPU, run `mmrec train sft ... --qlora` with
the hf engine on a 7B model folder; this script measures the engine's own LLM only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import load_settings  # noqa: E402
from mmrec_core.data.ingest import ensure_sample_dataset  # noqa: E402
from mmrec_core.engines import get_engine  # noqa: E402
from mmrec_core.finetune.common import load_policy  # noqa: E402
from mmrec_core.finetune.configs import TrainDataConfig  # noqa: E402
from mmrec_core.finetune.data import TrainDataBuilder  # noqa: E402
from mmrec_core.recommend.context import ContextBuilder  # noqa: E402
from mmrec_core.store.workspace import (
    default_protocol,  # noqa: E402
    open_workspace,  # noqa: E402
)


class Clock:
    """Wall time from the end of the first (warm-up) step to the end of the last."""

    def __init__(self) -> None:
        self.start = 0.0

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class _Tick(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 1:
                    clock.start = time.perf_counter()

        return _Tick()


def measure(engine, examples, steps: int, batch: int, checkpointing: bool, out: Path, bf16: bool = False) -> dict:
    """Train `steps` + 1 LoRA SFT steps; `bf16`: CPU bf16 autocast (TRL/transformers' `bf16=True`)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_policy(engine.llm_source())
    torch.manual_seed(0)  # the same LoRA initialisation in every call, so loss curves can be compared
    clock = Clock()
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps + 1,
        per_device_train_batch_size=batch,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=checkpointing,
        disable_tqdm=True,
        max_length=2048,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_pandas(examples[["prompt", "completion"]], preserve_index=False),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
        callbacks=[clock.callback()],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    seconds = time.perf_counter() - clock.start
    # tokens per example as trained (chat template applied), averaged over the examples: the examples/s
    # times this is the training tokens/s
    texts = [
        tokenizer.apply_chat_template(p + c, tokenize=False)
        for p, c in zip(*examples[["prompt", "completion"]].T.values, strict=True)
    ]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    mean_tokens = sum(lengths) / len(lengths)
    per_s = steps * batch / seconds
    return {
        "steps": steps,
        "seconds": seconds,
        "tokens_per_s": per_s * mean_tokens,
        "examples_per_s": per_s,
        "mean_tokens": mean_tokens,
        "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="measured steps (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=4, help="examples per step")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        ws = open_workspace(load_settings(Path(tmp) / "data"))
        ensure_sample_dataset(ws, with_results=False)
        engine = get_engine(ws.settings)
        builder = ContextBuilder(ws, "sample", default_protocol(ws, "sample"))
        n = (args.steps + 1) * args.batch
        examples = TrainDataBuilder(builder, lambda t: engine.count_tokens(t), TrainDataConfig(n_examples=n)).build()
        print(
            f"{engine.model_names()['llm']}: LoRA r=8 on all linear layers, batch {args.batch}, CPU, "
            f"{torch_threads()} threads; {len(examples)} real examples from sample_data"
        )
        for checkpointing in (False, True):
            r = measure(engine, examples, args.steps, args.batch, checkpointing, Path(tmp) / "out")
            print(
                f"  gradient checkpointing {'on ' if checkpointing else 'off'}: {r['tokens_per_s']:7.1f} tokens/s  "
                f"{r['examples_per_s']:5.2f} examples/s  ({r['steps']} steps in {r['seconds']:.1f} s)"
            )
        ws.close()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
