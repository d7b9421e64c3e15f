"""The text LLM in each precision, in ONE run on sample_data: speed against float32 and how far results move.

Two stages with the pipeline's own prompts (builtin engine unless told otherwise):
- score: the pointwise recommender on N customers' stored 21 test candidates (`LLMRecommender`, no
  rationales): seconds per customer, and the largest change of any score against float32 (the issue-20
  quality gate is 0.02);
- keywords: the textualization keyword prompt on N items' catalog texts (`keyword_chat`, greedy): items/s,
  generated tokens/s, and the share of float32's keywords each precision keeps.
Each precision is its own engine (loaded before timing); peak RSS is the process's.

    python bench/precision_throughput.py                    # float32, bfloat16, int8 on 5 customers, 16 items
    python bench/precision_throughput.py --users 20 --items 50
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import SAMPLE_DATASET, load_settings  # noqa: E402
from mmrec_core.core.prompts import domain_for  # noqa: E402
from mmrec_core.data.ingest import ensure_sample_dataset  # noqa: E402
from mmrec_core.engines import GenerationOptions, get_engine  # noqa: E402
from mmrec_core.recommend.context import ContextBuilder  # noqa: E402
from mmrec_core.recommend.customer import stored_candidates  # noqa: E402
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402
from mmrec_core.textualize.keywords import parse_keywords  # noqa: E402
from mmrec_core.textualize.prompts import KEYWORDS, keyword_chat  # noqa: E402

PRECISIONS = {"float32": ("float32", "none"), "bfloat16": ("bfloat16", "none"), "int8": ("float32", "int8")}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def score_stage(engine, builder: ContextBuilder, users: list[str]) -> tuple[float, np.ndarray]:
    recommender = LLMRecommender(engine, builder, RecommendConfig(explain_top=0))
    start, scores = time.perf_counter(), []
    for user in users:
        scores.append(recommender.recommend(user, stored_candidates(builder, user)).scores)
    return (time.perf_counter() - start) / len(users), np.stack(scores)


def keyword_stage(engine, texts: list[str], domain, batch: int) -> tuple[float, float, list[set[str]]]:
    options = GenerationOptions(max_new_tokens=48, batch_size=batch)
    start = time.perf_counter()
    answers = engine.generate([keyword_chat(t, domain) for t in texts], options, system=KEYWORDS.system_for(domain))
    seconds = time.perf_counter() - start
    tokens = sum(engine.count_tokens(a) for a in answers)
    return len(texts) / seconds, tokens / seconds, [set(parse_keywords(a, 12)) for a in answers]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5, help="customers scored (21 stored candidates each)")
    ap.add_argument("--items", type=int, default=16, help="items whose keywords are generated")
    ap.add_argument("--batch", type=int, default=8, help="prompts per generate() call")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma separated: " + ", ".join(PRECISIONS))
    ap.add_argument("--data-dir", help="a data folder with the sample (default: a fresh temporary one)")
    args = ap.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="mmrec-bench-"))
    ws = open_workspace(load_settings(data_dir))
    ensure_sample_dataset(ws)
    protocol = default_protocol(ws, SAMPLE_DATASET)
    builder = ContextBuilder(ws, SAMPLE_DATASET, protocol, "test", n_similar=0)  # no SASRec needed
    users = list(builder.data.parts["test"].users[: args.users])
    items = ws.store.items(SAMPLE_DATASET).head(args.items)
    texts = [str(t or title) for t, title in zip(items["text"], items["title"], strict=True)]
    domain = domain_for(ws.store.require_dataset(SAMPLE_DATASET)["format"])

    rows, reference = [], None
    for name in args.precisions.split(","):
        dtype, quantization = PRECISIONS[name.strip()]
        engine = get_engine(dataclasses.replace(ws.settings, dtype=dtype, quantization=quantization, device="cpu"))
        engine.score_yes_no("warm up ", ["Yes or No?"])  # load outside the timing
        s_per_user, scores = score_stage(engine, builder, users)
        items_s, tokens_s, keywords = keyword_stage(engine, texts, domain, args.batch)
        if reference is None:
            reference = (s_per_user, scores, items_s, keywords)
        kept = np.mean([len(k & r) / len(r) if r else 1.0 for k, r in zip(keywords, reference[3], strict=True)])
        rows.append(
            (
                name,
                s_per_user,
                reference[0] / s_per_user,
                float(np.abs(scores - reference[1]).max()),
                items_s,
                items_s / reference[2],
                tokens_s,
                kept,
                peak_rss_mb(),
            )
        )
    print(f"sample_data: {len(users)} customers x 21 candidates, keywords for {len(texts)} items, batch {args.batch}")
    print(
        f"{'precision':>10} {'s/user':>8} {'speed-up':>8} {'max |dscore|':>12} {'items/s':>8} {'speed-up':>8} "
        f"{'tok/s':>7} {'kw kept':>8} {'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r[0]:>10} {r[1]:8.3f} {r[2]:7.2f}x {r[3]:12.4f} {r[4]:8.2f} {r[5]:7.2f}x {r[6]:7.1f} {r[7]:8.1%} "
            f"{r[8]:11.0f}"
        )
    print("quality gate (issue 20): max |dscore| <= 0.02 and >= 90% of float32's keywords kept")
    ws.close()


if __name__ == "__main__":
    main()
