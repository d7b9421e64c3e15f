"""Yes/no scoring throughput: shared-prefix KV cache vs naive batched full prompts, in one run.

One user, 20 candidates, a realistic prefix (preference profile + 5 history items with their texts from
sample_data). Naive = every full prompt in one left-padded batch with correct position ids (what a
careful `model(**tokenizer(prompts, padding=True))` does). Shared = `TextLM.score_yes_no`. Prints
candidates/s, the speed-up, the largest score difference and the peak extra memory of each path.

    python bench/score_throughput.py                       # builtin SmolLM2-135M on CPU
    python bench/score_throughput.py --engine hf --llm DIR --quantization 4bit --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import SAMPLE_DATA_DIR, load_settings  # noqa: E402
from mmrec_core.engines import get_engine  # noqa: E402

QUESTION = "Will the customer buy the candidate item below? Answer Yes or No."


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms (torch's CPU allocations included)."""

    def __init__(self, base: int) -> None:
        self.base = base  # RSS with the model loaded: what both paths start from

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mb = (self.peak - self.base) / 2**20
        self.cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0


def build_prompt(n_candidates: int) -> tuple[str, list[str]]:
    articles = pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str).fillna("")
    text = articles["prod_name"] + " (" + articles["product_type_name"] + ", " + articles["colour_group_name"] + "): "
    text = text + articles["detail_desc"].str.slice(0, 160)
    history = "\n".join(f"- {t}" for t in text.iloc[:5])
    prefix = (
        "You are a fashion recommender. Customer preference profile: prefers plain dark basics in soft cotton, "
        "buys trousers, tops and underwear, avoids bold prints; recently moved to relaxed fits.\n"
        f"Last 5 purchases:\n{history}\n{QUESTION}\nCandidate item: "
    )
    # The question sits before the candidate, as in the recommender's prompt: only the item text differs.
    return prefix, text.iloc[5 : 5 + n_candidates].tolist()


@torch.inference_mode()
def naive_batched(lm, prefix: str, suffixes: list[str]) -> list[float]:
    prefix_ids, suffix_ids = lm.encode_candidates(prefix, suffixes)
    prompts = [prefix_ids + s for s in suffix_ids]
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    device = lm.model.device
    out = lm.model(
        input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), logits_to_keep=1
    )
    return lm.head.scores_from_logits(out.logits[:, -1]).tolist()


def timed(fn, repeats: int, base_rss: int):
    times, result = [], None
    with PeakRSS(base_rss) as mem:
        for _ in range(repeats):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times), result, mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--engine", default="builtin")
    ap.add_argument("--llm", default="")
    ap.add_argument("--quantization", default="none")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = replace(
        load_settings(), engine=args.engine, llm=args.llm, quantization=args.quantization, device=args.device
    )
    lm = get_engine(settings).lm
    prefix, suffixes = build_prompt(args.candidates)
    prefix_ids, suffix_ids = lm.encode_candidates(prefix, suffixes)
    print(f"model: {lm.name} on {lm.model.device}, {torch.get_num_threads()} CPU threads")
    print(
        f"prompt: prefix {len(prefix_ids)} tokens, {len(suffixes)} candidate suffixes of "
        f"{min(map(len, suffix_ids))}-{max(map(len, suffix_ids))} tokens"
    )

    lm.score_yes_no(prefix, suffixes[:2])  # warm-up (first calls allocate and pick kernels)
    # Shared first: the allocator keeps freed memory, so the smaller path must not run after the larger one.
    base_rss = PeakRSS._rss()
    t_shared, shared, mem_shared = timed(lambda: lm.score_yes_no(prefix, suffixes), args.repeats, base_rss)
    t_naive, naive, mem_naive = timed(lambda: naive_batched(lm, prefix, suffixes), args.repeats, base_rss)
    n = len(suffixes)
    diff = max(abs(a - b) for a, b in zip(naive, shared, strict=True))
    print(
        f"naive batched : {t_naive:7.3f} s  {n / t_naive:8.1f} candidates/s  peak +{mem_naive.mb:7.1f} MB RSS"
        + (f", {mem_naive.cuda_mb:.0f} MB CUDA" if mem_naive.cuda_mb else "")
    )
    print(
        f"shared prefix : {t_shared:7.3f} s  {n / t_shared:8.1f} candidates/s  peak +{mem_shared.mb:7.1f} MB RSS"
        + (f", {mem_shared.cuda_mb:.0f} MB CUDA" if mem_shared.cuda_mb else "")
    )
    print(f"speed-up      : {t_naive / t_shared:.2f}x   max |score difference| {diff:.2e}")


if __name__ == "__main__":
    main()
