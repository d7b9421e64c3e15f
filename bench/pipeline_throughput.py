"""Every model stage on sample_data in ONE run, in each precision: speed against float32 and how far results move.

Stages (builtin engine; each precision is its own engine, loaded before timing):
- textualize: `textualize()` on N items (vision facts, description, keywords, rewards): items/s, and the share
  of float32's keywords each precision keeps (the issue-20 gate is >= 90%);
- profiles: `build_profiles()` for N customers: block summaries/s;
- score: the pointwise recommender on N customers x their 21 stored test candidates: s/customer, the largest
  score change against float32 (gate: <= 0.02), and HR@5 / NDCG@5 with a 95% bootstrap interval over users;
- rationales: the top-3 rationales of N customers, in one batch (shared context read once) and one by one;
- generation: the keyword prompt at several batch sizes (float32 only): items/s, same text as batch 1;
- sft: LoRA SFT steps through TRL, float32 and bf16 autocast: training tokens/s and the largest relative
  difference between the two loss curves (gate: 5%);
- embed: sentence embeddings of item texts: texts/s.

    python bench/pipeline_throughput.py                          # all stages, float32, bfloat16, int8
    python bench/pipeline_throughput.py --score-users 293        # the gate's HR@5 over every sample customer
    python bench/pipeline_throughput.py --precisions float32 --stages score,rationales
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import SAMPLE_DATASET, load_settings  # noqa: E402
from mmrec_core.core.prompts import domain_for  # noqa: E402
from mmrec_core.data.ingest import ensure_sample_dataset  # noqa: E402
from mmrec_core.data.metrics import sampled_metrics  # noqa: E402
from mmrec_core.engines import GenerationOptions, get_engine  # noqa: E402
from mmrec_core.profiles.build import ProfileConfig, build_profiles  # noqa: E402
from mmrec_core.recommend.context import ContextBuilder  # noqa: E402
from mmrec_core.recommend.customer import stored_candidates  # noqa: E402
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402
from mmrec_core.textualize.build import TextualizeConfig, textualize  # noqa: E402
from mmrec_core.textualize.prompts import KEYWORDS, keyword_chat  # noqa: E402

PRECISIONS = {"float32": ("float32", "none"), "bfloat16": ("bfloat16", "none"), "int8": ("float32", "int8")}
STAGES = ("textualize", "profiles", "score", "rationales", "generation", "sft", "embed")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap(values: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean, resampling users."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def textualize_stage(ws, engine, items: list[str]) -> dict:
    report = textualize(ws, engine, SAMPLE_DATASET, items, TextualizeConfig(force=True))
    keywords = ws.store.latest_keywords(SAMPLE_DATASET).set_index("item_id")["keywords"]
    return {"items/s": report.items_per_second, "keywords": {i: set(keywords[i]) for i in items if i in keywords}}


def profile_stage(ws, engine, users: list[str]) -> dict:
    report = build_profiles(ws, engine, SAMPLE_DATASET, config=ProfileConfig(users=users))
    return {"blocks/s": report.blocks_done / report.seconds if report.seconds else 0.0}


def score_stage(engine, builder, users: list[str]) -> dict:
    recommender = LLMRecommender(engine, builder, RecommendConfig(explain_top=0, n_similar=0))
    start, scores = time.perf_counter(), []
    for user in users:
        scores.append(recommender.recommend(user, stored_candidates(builder, user)).scores)
    seconds = (time.perf_counter() - start) / len(users)
    scores = np.stack(scores)
    per_user = sampled_metrics(scores, ks=(5,))
    hr, ndcg = per_user["HR@5"].to_numpy(), per_user["NDCG@5"].to_numpy()
    return {
        "s/user": seconds,
        "scores": scores,
        "hr": (hr.mean(), *bootstrap(hr)),
        "ndcg": (ndcg.mean(), *bootstrap(ndcg)),
    }


def rationale_stage(engine, builder, users: list[str]) -> dict:
    recommender = LLMRecommender(engine, builder, RecommendConfig(explain_top=3, n_similar=0))
    out = {}
    for name, one_by_one in (("batched", False), ("one by one", True)):
        start = time.perf_counter()
        for user in users:
            ctx = builder.context(user)
            top = stored_candidates(builder, user)[:3]
            if one_by_one:
                for item in top:
                    recommender.explain(ctx, [item])
            else:
                recommender.explain(ctx, top)
        out[name] = (time.perf_counter() - start) / len(users)
    return out


def generation_stage(engine, texts: list[str], domain, batches: list[int]) -> dict:
    prompts = [keyword_chat(t, domain) for t in texts]
    out, reference = {}, None
    for batch in batches:
        start = time.perf_counter()
        answers = engine.generate(
            prompts, GenerationOptions(max_new_tokens=48, batch_size=batch), KEYWORDS.system_for(domain)
        )
        seconds = time.perf_counter() - start
        reference = reference or answers
        out[batch] = (len(texts) / seconds, np.mean([a == r for a, r in zip(answers, reference, strict=True)]))
    return out


def sft_stage(ws, engine, steps: int) -> dict:
    from bench.train_throughput import measure
    from mmrec_core.finetune.configs import TrainDataConfig
    from mmrec_core.finetune.data import TrainDataBuilder

    builder = ContextBuilder(ws, SAMPLE_DATASET, default_protocol(ws, SAMPLE_DATASET))
    examples = TrainDataBuilder(builder, engine.count_tokens, TrainDataConfig(n_examples=(steps + 1) * 4)).build()
    with tempfile.TemporaryDirectory() as out:
        fp32 = measure(engine, examples, steps, 4, False, Path(out), bf16=False)
        bf16 = measure(engine, examples, steps, 4, False, Path(out), bf16=True)
    a, b = np.asarray(fp32["losses"]), np.asarray(bf16["losses"])
    return {"fp32": fp32["tokens_per_s"], "bf16": bf16["tokens_per_s"], "loss gap": float(np.max(np.abs(b - a) / a))}


def embed_stage(engine, texts: list[str]) -> float:
    engine.embed(texts[:8])
    start = time.perf_counter()
    engine.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=32, help="items textualized")
    ap.add_argument("--profile-users", type=int, default=16, help="customers whose profiles are built")
    ap.add_argument("--score-users", type=int, default=30, help="customers scored (21 stored candidates each)")
    ap.add_argument("--rationale-users", type=int, default=4, help="customers whose top-3 rationales are written")
    ap.add_argument("--gen-batches", default="1,8,32,64", help="batch sizes of the generation stage")
    ap.add_argument("--sft-steps", type=int, default=6, help="SFT steps per precision (after one warm-up step)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma separated: " + ", ".join(PRECISIONS))
    ap.add_argument("--stages", default=",".join(STAGES), help="comma separated: " + ", ".join(STAGES))
    ap.add_argument("--data-dir", help="a data folder with the sample (default: a fresh temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    stages = set(args.stages.split(","))
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

    ws = open_workspace(load_settings(Path(args.data_dir or tempfile.mkdtemp(prefix="mmrec-bench-"))))
    ensure_sample_dataset(ws, with_results=False)
    protocol = default_protocol(ws, SAMPLE_DATASET)
    builder = ContextBuilder(ws, SAMPLE_DATASET, protocol, "test", n_similar=0)  # no SASRec needed
    test_users = list(builder.data.parts["test"].users)
    catalog = ws.store.items(SAMPLE_DATASET)
    items = list(catalog["item_id"][: args.items])
    texts = [str(t or title) for t, title in zip(catalog["text"], catalog["title"], strict=True)]
    domain = domain_for(ws.store.require_dataset(SAMPLE_DATASET)["format"])

    results: dict[str, dict] = {}
    for name in args.precisions.split(","):
        dtype, quantization = PRECISIONS[name]
        engine = get_engine(dataclasses.replace(ws.settings, dtype=dtype, quantization=quantization, device="cpu"))
        engine.score_yes_no("warm up ", ["Yes or No?"])  # load outside the timing
        r = results[name] = {}
        if "textualize" in stages:
            r["textualize"] = textualize_stage(ws, engine, items)
        if "profiles" in stages:
            r["profiles"] = profile_stage(ws, engine, test_users[: args.profile_users])
        if "score" in stages:
            r["score"] = score_stage(engine, builder, test_users[: args.score_users])
        if "rationales" in stages:
            r["rationales"] = rationale_stage(engine, builder, test_users[: args.rationale_users])
        if name == "float32" and "generation" in stages:
            batches = [int(b) for b in args.gen_batches.split(",")]
            r["generation"] = generation_stage(engine, texts[: max(batches)], domain, batches)
        if name == "float32" and "sft" in stages:
            r["sft"] = sft_stage(ws, engine, args.sft_steps)
        if name == "float32" and "embed" in stages:
            r["embed"] = embed_stage(engine, texts[:512])
        r["rss"] = peak_rss_mb()
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    report(results)
    ws.close()


def report(results: dict[str, dict]) -> None:
    ref = results.get("float32", next(iter(results.values())))
    print(f"\n{'precision':>9} {'stage':>11}  figures (speed-up against float32 in this run)")
    for name, r in results.items():
        if "textualize" in r:
            t, t0 = r["textualize"], ref["textualize"]
            kept = np.mean([len(t["keywords"].get(i, set()) & k) / len(k) for i, k in t0["keywords"].items() if k])
            print(
                f"{name:>9} {'textualize':>11}  {t['items/s']:.2f} items/s ({t['items/s'] / t0['items/s']:.2f}x), "
                f"float32 keywords kept {kept:.1%}"
            )
        if "profiles" in r:
            p, p0 = r["profiles"]["blocks/s"], ref["profiles"]["blocks/s"]
            print(f"{name:>9} {'profiles':>11}  {p:.2f} block summaries/s ({p / p0:.2f}x)")
        if "score" in r:
            s, s0 = r["score"], ref["score"]
            delta = float(np.abs(s["scores"] - s0["scores"]).max())
            print(
                f"{name:>9} {'score':>11}  {s['s/user']:.3f} s/customer ({s0['s/user'] / s['s/user']:.2f}x), "
                f"max |dscore| {delta:.4f} over {s['scores'].size} scores, HR@5 {s['hr'][0]:.3f} "
                f"[{s['hr'][1]:.3f}, {s['hr'][2]:.3f}], NDCG@5 {s['ndcg'][0]:.3f} "
                f"[{s['ndcg'][1]:.3f}, {s['ndcg'][2]:.3f}]"
            )
        if "rationales" in r:
            q, q0 = r["rationales"], ref["rationales"]
            print(
                f"{name:>9} {'rationales':>11}  top-3 {q['batched']:.2f} s/customer batched "
                f"({q0['batched'] / q['batched']:.2f}x), "
                f"{q['one by one']:.2f} s one by one ({q['one by one'] / q['batched']:.2f}x slower)"
            )
        if "generation" in r:
            base = r["generation"][min(r["generation"])][0]
            for batch, (rate, same) in r["generation"].items():
                print(
                    f"{name:>9} {'generation':>11}  batch {batch:>2}: {rate:.2f} keyword answers/s ({rate / base:.2f}x "
                    f"batch {min(r['generation'])}), {same:.0%} identical"
                )
        if "sft" in r:
            f = r["sft"]
            print(
                f"{name:>9} {'sft':>11}  float32 {f['fp32']:.1f} tokens/s, bf16 autocast {f['bf16']:.1f} tokens/s "
                f"({f['bf16'] / f['fp32']:.2f}x), largest loss gap {f['loss gap']:.1%}"
            )
        if "embed" in r:
            print(f"{name:>9} {'embed':>11}  {r['embed']:.1f} texts/s")
        print(f"{name:>9} {'peak RSS':>11}  {r['rss']:.0f} MB (process, cumulative)")
    print(
        "gates (issue 20): keywords kept >= 90%, max |dscore| <= 0.02, HR@5/NDCG@5 inside float32's interval, "
        "SFT loss gap <= 5%"
    )


if __name__ == "__main__":
    main()
