"""Time per customer of a full counterfactual attribution, and the shared-prefix path against scoring every
ablated prompt on its own, in one run.

Runs on a data folder holding the sample with its precomputed state (`mmrec --data-dir D sample`): real
profiles, purchases, similar customers and the 21 stored candidates of each test user. Each user's
attribution is computed afresh (never read back). For the first user the same ablated prompts are also
scored one full prompt at a time (`TextLM.score_yes_no_naive`): the ratio and the largest score difference.

    python bench/attribution.py --data-dir /tmp/ex-data --users 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import load_settings  # noqa: E402
from mmrec_core.engines import get_engine  # noqa: E402
from mmrec_core.explain.attribution import Attributor  # noqa: E402
from mmrec_core.recommend.context import ContextBuilder  # noqa: E402
from mmrec_core.recommend.customer import stored_candidates  # noqa: E402
from mmrec_core.recommend.llm import LLMRecommender  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a data folder with the sample and its state")
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--users", type=int, default=3, help="test users timed (seeded draw)")
    parser.add_argument("--no-naive", action="store_true", help="skip the one-prompt-at-a-time comparison")
    args = parser.parse_args()

    ws = open_workspace(load_settings(args.data_dir))
    builder = ContextBuilder(ws, args.dataset, default_protocol(ws, args.dataset), "test")
    engine = get_engine(ws.settings)
    attributor = Attributor(LLMRecommender(engine, builder))
    users = np.random.default_rng(0).choice(builder.data.parts["test"].users, args.users, replace=False)
    engine.score_yes_no("warm-up", ["Yes?"])  # load the model outside the timings
    print(f"engine {engine.provenance('llm')['model']} · {args.dataset} · {len(users)} users")
    times, passes = [], []
    for user in users:
        candidates = stored_candidates(builder, str(user))
        _, _, ablations = attributor.ablations(str(user), candidates)
        start = time.perf_counter()
        result = attributor.attribute(str(user), candidates, reuse=False)
        times.append(time.perf_counter() - start)
        context = sum(a.piece is None or a.piece.kind in ("purchase", "similar customer", "profile sentence")
                      for a in ablations)  # fmt: skip
        passes.append(context + 1)  # + the batch of every candidate's keyword variants
        print(f"  {str(user)[:12]}… {len(candidates)} candidates, {context - 1} context pieces + keyword pieces "
              f"({len(result.table)} rows): {times[-1]:.1f} s in {passes[-1]} scorer calls")  # fmt: skip
    print(f"full attribution: {np.mean(times):.1f} s per customer (mean of {len(times)}; "
          f"{np.mean(times) / np.mean(passes):.2f} s per scorer call)")  # fmt: skip
    if args.no_naive:
        return
    user = str(users[0])
    _, _, ablations = attributor.ablations(user, stored_candidates(builder, user))
    system, lm = attributor.recommender.system, engine.lm
    start = time.perf_counter()
    fast = [engine.score_yes_no(a.prefix, a.suffixes, system=system) for a in ablations]
    shared = time.perf_counter() - start
    start = time.perf_counter()
    slow = [lm.score_yes_no_naive(a.prefix, a.suffixes, system=system) for a in ablations]
    naive = time.perf_counter() - start
    diff = max(float(np.abs(f - s).max()) for f, s in zip(fast, slow, strict=True))
    print(f"same prompts, shared prefix: {shared:.1f} s; each full prompt alone: {naive:.1f} s; "
          f"{naive / shared:.2f}x; largest score difference {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
