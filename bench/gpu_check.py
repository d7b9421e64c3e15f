"""GPU check (issue 26): speed and memory of the real 7B paths, with random weights of the real architectures.

Speed does not depend on weight values, so the models are built from their configs (Qwen2.5-7B-Instruct and
Qwen2.5-VL-7B-Instruct, written out below) and fed random token ids: no download and no tokenizer are needed, and
the script runs on whatever torch/transformers the GPU machine has. Measured, each in one run:

- yes/no scoring of 21 candidates behind a 300-token prefix with the project's shared-prefix scorer
  (`engines.scoring.score_shared_prefix`), ms per customer at candidate batch sizes 1-64, bf16 and 4-bit NF4;
- listwise generation of 160 new tokens (tokens/s);
- QLoRA SFT steps (4-bit base, LoRA r=16 on the attention and MLP projections, 512-token sequences, batch 4),
  steps/s and tokens/s with gradient checkpointing on and off;
- Qwen2.5-VL-7B in 4-bit: one 448 px product photo (256 image tokens) and its prompt, descriptions/s;
- the builtin SmolLM2-135M architecture on the same device, for comparison;
- peak GPU memory of each.

    python bench/gpu_check.py             # on the GPU machine: one call, well inside 10 minutes
    python bench/gpu_check.py --dry-run   # tiny configs on the CPU: checks the script itself (tests/test_gpu_check.py)

The table comes last. MMSRARec reports 0.73 s per request for its 7B model on 8xA800; the table prints the ratio.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.engines.scoring import score_shared_prefix  # noqa: E402

QWEN25_7B = {
    "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
    "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
}  # fmt: skip
QWEN25_VL_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}  # fmt: skip
SMOLLM2_135M = {
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
}  # fmt: skip
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 1024}  # fmt: skip
TINY_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
               "window_size": 56, "fullatt_block_indexes": [1]}  # fmt: skip
MMSRARECS_SECONDS = 0.73  # per request, 7B on 8xA800 (the paper's efficiency table)
YES_NO = ([100, 101], [200, 201])  # token ids standing in for "Yes"/"yes" and "No"/"no"


class RandomIdsHead:
    """The yes/no head of `engines.scoring` on fixed token ids (no tokenizer: the weights are random anyway)."""

    def __init__(self, model) -> None:
        self.model, self.yes_ids, self.no_ids = model, *YES_NO

    def scores_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.model.get_output_embeddings().weight[self.yes_ids + self.no_ids]
        logits = (hidden.to(weight.dtype) @ weight.T).float()
        return torch.sigmoid(torch.logsumexp(logits[..., :2], -1) - torch.logsumexp(logits[..., 2:], -1))

    scores_from_logits = scores_from_hidden  # not used: every model here can project rows


def text_model(config: dict, device: str, dtype: torch.dtype, four_bit: bool, folder: Path):
    """A random model of `config` (4-bit: saved once, then loaded through bitsandbytes as a real checkpoint is)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if not four_bit:
        return model.eval()
    return _reload_4bit(model, folder, AutoModelForCausalLM, device, dtype)


def _reload_4bit(model, folder: Path, auto_class, device: str, dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    model.save_pretrained(folder)
    del model
    _free(device)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    return auto_class.from_pretrained(folder, quantization_config=quant, device_map={"": device}, dtype=dtype).eval()


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _timed(fn: Callable[[], object], device: str, repeats: int) -> tuple[float, float]:
    """(seconds per call after one warm-up, peak memory in GiB during the calls: GPU, or 0 on the CPU)."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return seconds, peak


def scoring_rows(model, label: str, device: str, vocab: int, repeats: int, batches=(1, 8, 32, 64)) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    prefix = torch.randint(300, vocab, (300,), generator=gen).tolist()
    suffixes = [torch.randint(300, vocab, (int(n),), generator=gen).tolist() for n in torch.randint(25, 40, (21,))]
    head = RandomIdsHead(model)
    rows = []
    for batch in batches:
        seconds, peak = _timed(lambda b=batch: score_shared_prefix(model, head, prefix, suffixes, b), device, repeats)
        rows.append({"model": label, "task": f"yes/no, 21 candidates, batch {batch}", "ms": 1000 * seconds,
                     "rate": f"{1 / seconds:.1f} customers/s", "peak GiB": peak,
                     "vs MMSRARec 0.73 s": f"{MMSRARECS_SECONDS / seconds:.1f}x"})  # fmt: skip
    return rows


def generation_row(model, label: str, device: str, vocab: int, new_tokens: int, repeats: int) -> dict:
    ids = torch.randint(300, vocab, (1, 400), generator=torch.Generator().manual_seed(2)).to(device)

    def run():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)  # fmt: skip

    seconds, peak = _timed(run, device, repeats)
    return {"model": label, "task": f"listwise: generate {new_tokens} tokens after 400", "ms": 1000 * seconds,
            "rate": f"{new_tokens / seconds:.0f} tokens/s", "peak GiB": peak, "vs MMSRARec 0.73 s": ""}  # fmt: skip


def qlora_rows(model, label: str, device: str, vocab: int, seq: int, batch: int, steps: int) -> list[dict]:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    rows = []
    for checkpointing in (True, False):
        model.gradient_checkpointing_disable()  # the first setting's checkpointing must not carry into the second
        base = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        peft = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=targets, task_type="CAUSAL_LM"))
        peft.train()
        optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-4)
        ids = torch.randint(300, vocab, (batch, seq), generator=torch.Generator().manual_seed(3)).to(device)

        def step(peft=peft, optimizer=optimizer, ids=ids):
            loss = peft(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds, peak = _timed(step, device, steps)
        task = f"LoRA step, {batch}x{seq} tokens, checkpointing {'on' if checkpointing else 'off'}"
        rate = f"{batch * seq / seconds:.0f} tokens/s ({1 / seconds:.2f} steps/s)"
        rows.append({"model": label, "task": task, "ms": 1000 * seconds, "rate": rate,
                     "peak GiB": peak, "vs MMSRARec 0.73 s": ""})  # fmt: skip
        model = peft.unload()  # the same base for the next setting
        del peft, optimizer
        _free(device)
    return rows


def vlm_row(device: str, dtype: torch.dtype, folder: Path, dry: bool, repeats: int) -> dict:
    """Qwen2.5-VL-7B in 4-bit describing one 448 px photo: 32x32 patches of 14 px, merged 2x2 into 256 tokens."""
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig

    text = {**QWEN25_7B, **(TINY if dry else {}), "model_type": "qwen2_5_vl_text",
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3] if dry else [16, 24, 24]}}  # fmt: skip
    vision = {**QWEN25_VL_VISION, **(TINY_VISION if dry else {})}
    image_id, vocab = text["vocab_size"] - 2, text["vocab_size"]
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=image_id,
                           video_token_id=vocab - 1, vision_start_token_id=vocab - 3)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(cfg, dtype=dtype)
    four_bit = device == "cuda" and _has_bnb(device)  # the tiny dry-run vision tower is narrower than a 4-bit block
    model = _reload_4bit(model, folder, AutoModelForImageTextToText, device, dtype) if four_bit else model
    side = 448 // 14
    grid = torch.tensor([[1, side, side]], device=device)
    pixels = torch.randn(side * side, 3 * 2 * 14 * 14, device=device, dtype=dtype)
    prompt = torch.randint(300, image_id - 10, (1, 80), generator=torch.Generator().manual_seed(4)).to(device)
    image = torch.full((1, side * side // 4), image_id, device=device)
    ids = torch.cat([prompt[:, :20], image, prompt[:, 20:]], dim=1)

    def run():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                              image_grid_thw=grid, max_new_tokens=96, min_new_tokens=96, do_sample=False,
                              pad_token_id=0)  # fmt: skip

    seconds, peak = _timed(run, device, repeats)
    quant = "4-bit" if four_bit else str(dtype).removeprefix("torch.")
    return {"model": f"Qwen2.5-VL-7B {quant}", "task": "describe one 448 px photo (256 image tokens), 96 new tokens",
            "ms": 1000 * seconds, "rate": f"{1 / seconds:.2f} descriptions/s", "peak GiB": peak,
            "vs MMSRARec 0.73 s": ""}  # fmt: skip


def _has_bnb(device: str) -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny configs on the CPU (checks the script)")
    parser.add_argument("--work-dir", default="/tmp/gpu-check", help="where the 4-bit models are saved once")
    parser.add_argument("--skip", default="", help="comma separated: bf16, 4bit, qlora, vlm, builtin")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    dry, skip, work = args.dry_run, set(args.skip.split(",")), Path(args.work_dir)
    repeats, new_tokens = (1, 8) if dry else (5, 160)
    qwen = {**QWEN25_7B, **(TINY if dry else {})}
    vocab = qwen["vocab_size"]
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}), torch {torch.__version__}")
    if dry:
        print("DRY RUN: tiny configs on the CPU; the figures check the script and say nothing about 7B models")
    rows: list[dict] = []
    if "bf16" not in skip:
        model = text_model(qwen, device, dtype, False, work / "qwen-bf16")
        rows += scoring_rows(model, "Qwen2.5-7B bf16", device, vocab, repeats)
        rows.append(generation_row(model, "Qwen2.5-7B bf16", device, vocab, new_tokens, repeats))
        if dry and "qlora" not in skip:  # bitsandbytes cannot train 4-bit layers on the CPU: LoRA on the plain model
            rows += qlora_rows(model, "Qwen2.5-7B LoRA (dry run)", device, vocab, 64, 2, 1)
        del model
        _free(device)
    if "4bit" not in skip and _has_bnb(device):
        model = text_model(qwen, device, dtype, True, work / "qwen-4bit")
        rows += scoring_rows(model, "Qwen2.5-7B 4-bit NF4", device, vocab, repeats)
        rows.append(generation_row(model, "Qwen2.5-7B 4-bit NF4", device, vocab, new_tokens, repeats))
        if "qlora" not in skip and device == "cuda":
            rows += qlora_rows(model, "Qwen2.5-7B QLoRA", device, vocab, 512, 4, 3)
        del model
        _free(device)
    elif "4bit" not in skip:
        print("bitsandbytes is not installed: the 4-bit and QLoRA rows are left out")
    if "vlm" not in skip:
        rows.append(vlm_row(device, dtype, work / "qwen-vl-4bit", dry, repeats))
    if "builtin" not in skip:
        model = text_model({**SMOLLM2_135M, **(TINY if dry else {})}, device, dtype, False, work / "smollm2")
        rows += scoring_rows(model, "SmolLM2-135M (builtin) " + ("fp32" if device == "cpu" else "bf16"), device,
                             SMOLLM2_135M["vocab_size"] if not dry else TINY["vocab_size"], repeats, (32,))  # fmt: skip
        del model
    print(f"\n{'model':<30} {'task':<62} {'ms':>9} {'rate':>34} {'peak GiB':>9} {'vs MMSRARec 0.73 s':>19}")
    for r in rows:
        print(f"{r['model']:<30} {r['task']:<62} {r['ms']:>9.1f} {r['rate']:>34} {r['peak GiB']:>9.1f} "
              f"{r['vs MMSRARec 0.73 s']:>19}")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
