"""The Ray backend against the single-process run, in ONE run on sample_data with the builtin engine.

- textualize N items (forced, so every item is made): one process with every core's torch threads, then Ray
  with one actor per core (1 thread each) and one actor with every core; items/s (Ray's start, the actors'
  model loads and the import included: what a user waits for), speed-up, and the share of items whose
  keywords equal the single-process run's;
- score N customers x 21 stored candidates (pointwise; 4 purchases of history, so nothing is read back
  from the bundled scores): s/customer, speed-up, and the largest score difference.

    python bench/ray_throughput.py                     # 32 items, 40 customers
    python bench/ray_throughput.py --items 64 --users 80
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ray  # noqa: E402
import torch  # noqa: E402

from mmrec_core.config import SAMPLE_DATASET, load_settings  # noqa: E402
from mmrec_core.data.ingest import ensure_sample_dataset  # noqa: E402
from mmrec_core.engines import get_engine  # noqa: E402
from mmrec_core.evaluate.llm import evaluate_llm  # noqa: E402
from mmrec_core.recommend.llm import RecommendConfig  # noqa: E402
from mmrec_core.scale.jobs import ScaleConfig  # noqa: E402
from mmrec_core.scale.scoring import ray_scorer  # noqa: E402
from mmrec_core.scale.textualize import textualize_on_ray  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402
from mmrec_core.textualize.build import TextualizeConfig, textualize  # noqa: E402


def copy_of(base: Path, name: str):
    """A copy of the base data folder, sharing one model cache (the GGUF is converted once)."""
    shutil.copytree(base, base.parent / name, ignore=shutil.ignore_patterns("models"))
    return open_workspace(replace(load_settings(base.parent / name), model_cache=base / "models"))


def keywords_of(ws, items: list[str]) -> dict[str, list[str]]:
    rows = ws.store.latest_keywords(SAMPLE_DATASET)
    rows = rows[rows["item_id"].isin(items)]
    return {r.item_id: list(r.keywords) for r in rows.itertuples()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"uptime: {os.popen('uptime').read().strip()}; {cores} cores, torch threads {torch.get_num_threads()}")
    root = Path(tempfile.mkdtemp(prefix="mmrec-ray-bench-"))
    base = root / "base"
    ws = open_workspace(load_settings(base))
    ensure_sample_dataset(ws, with_results=True)  # the bundled keywords, profiles and models
    ws.close()
    items = sorted(open_workspace(load_settings(base), read_only=True).store.items(SAMPLE_DATASET)["item_id"])
    items = items[:: max(1, len(items) // args.items)][: args.items]
    config = TextualizeConfig(batch_size=args.batch_size, force=True)
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    rows = []

    local = copy_of(base, "t-local")
    engine = get_engine(local.settings)
    engine.generate(["warm-up"])  # the model loads before timing, as the actors' loads are timed below
    start = time.perf_counter()
    textualize(local, engine, SAMPLE_DATASET, items, config)
    base_s = time.perf_counter() - start
    reference = keywords_of(local, items)
    rows.append(("textualize", "one process", f"{cores} threads", len(items) / base_s, 1.0, 1.0))
    for actors, cpus in ((cores, 1), (1, cores)):
        ws = copy_of(base, f"t-ray-{actors}x{cpus}")
        scale = ScaleConfig(backend="ray", actors=actors, cpus_per_actor=cpus)
        start = time.perf_counter()
        textualize_on_ray(ws, get_engine(ws.settings), SAMPLE_DATASET, items, config, scale)
        seconds = time.perf_counter() - start
        got = keywords_of(ws, items)
        same = np.mean([got.get(i) == reference[i] for i in reference])
        rows.append(("textualize", f"Ray {actors} actor(s)", f"{cpus} thread(s) each", len(items) / seconds,
                     base_s / seconds, same))  # fmt: skip

    recommend = RecommendConfig(n_history=4, explain_top=0)
    local = copy_of(base, "s-local")
    pid = default_protocol(local, SAMPLE_DATASET)
    start = time.perf_counter()
    first = evaluate_llm(local, get_engine(local.settings), SAMPLE_DATASET, pid, recommend, args.users)
    base_s = (time.perf_counter() - start) / args.users
    rows.append(("score", "one process", f"{cores} threads", base_s, 1.0, 0.0))
    ws = copy_of(base, "s-ray")
    engine = get_engine(ws.settings)
    scale = ScaleConfig(backend="ray", actors=cores, cpus_per_actor=1)
    start = time.perf_counter()
    got = evaluate_llm(ws, engine, SAMPLE_DATASET, pid, recommend, args.users, scorer=ray_scorer(scale))
    seconds = (time.perf_counter() - start) / args.users
    by_user = [local.store.llm_scores(SAMPLE_DATASET, pid, "pointwise"), ws.store.llm_scores(SAMPLE_DATASET, pid,
               "pointwise")]  # fmt: skip
    a, b = (frame.set_index("input_hash").sort_index() for frame in by_user)
    diff = max(np.abs(np.asarray(x) - np.asarray(y)).max() for x, y in zip(a["scores"], b["scores"], strict=True))
    rows.append(("score", f"Ray {cores} actors", "1 thread each", seconds, base_s / seconds, diff))
    assert len(first.per_user) == len(got.per_user) == args.users
    ray.shutdown()

    print(f"\n{len(items)} items (batch {args.batch_size}), {args.users} customers x 21 candidates, builtin engine")
    print(f"{'stage':<11} {'backend':<16} {'threads':<20} {'rate':>14} {'speed-up':>9} {'agreement':>22}")
    for stage, backend, threads, rate, speedup, agree in rows:
        shown = f"{rate:.2f} items/s" if stage == "textualize" else f"{rate:.2f} s/customer"
        agreement = f"{agree:.0%} same keywords" if stage == "textualize" else f"max |score diff| {agree:.1e}"
        print(f"{stage:<11} {backend:<16} {threads:<20} {shown:>14} {speedup:>8.2f}x {agreement:>22}")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
