"""Refined item graph build: time and peak memory of semantic and co-occurrence edges as the catalog grows.

    .venv/bin/python bench/graph_build.py                          # 1,000 / 10,000 / 100,000 items + MicroLens
    .venv/bin/python bench/graph_build.py --sizes 1000 10000       # a quick run
    .venv/bin/python bench/graph_build.py --microlens-embed        # MicroLens titles through the builtin embedder

Synthetic items: 384-d unit vectors in clusters of 25 (same-cluster cosines from 0.34 to 0.74 by cluster, so
alpha = 0.5 keeps some top-k candidates and prunes others); synthetic users (n/2 of them, 5-14 purchases, 80% from
two favourite clusters) give the training sequences. MicroLens-50k (if present): the real sequences
with each user's last two items held out (leave-one-out, as the build uses training data only); its
19,220 items get synthetic vectors unless --microlens-embed (the builtin MiniLM embeds about 60
titles/s on two CPU cores: minutes, not seconds).

Each case runs in a child process: peak memory is the resident set (sampled every 5 ms) above its level
when the step starts, and the child's ru_maxrss. Steps: semantic = `semantic_edges` (blockwise top-k);
co-occurrence = `cooccurrence_edges`; merge+stats = `merge_edges` + `graph_stats` (networkx components).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from pathlib import Path
from queue import Empty

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from mmrec_core.graph.edges import GraphConfig, cooccurrence_edges, graph_stats, merge_edges, semantic_edges  # noqa: E402

CLUSTER = 25  # items per synthetic cluster (more than k, so neighbours are mostly same-cluster)
# Noise norm s around a cluster centre, drawn per cluster: same-cluster cosine ~ 1 / (1 + s^2), from 0.74
# (s = 0.6, tight clusters whose neighbours pass alpha = 0.5) to 0.34 (s = 1.4, loose ones that alpha prunes).
SPREAD = (0.6, 1.4)


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms (numpy and pandas buffers included)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mb = (self.peak - self.base) / 2**20


def synthetic_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    n_clusters = -(-n // CLUSTER)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(*SPREAD, n_clusters).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):  # in chunks: the noise never needs a second n x dim buffer
        m = min(8192, n - start)
        cluster = np.arange(start, start + m) // CLUSTER
        noise = rng.standard_normal((m, dim), dtype=np.float32) * (spread[cluster, None] / np.sqrt(dim))
        x[start : start + m] = centres[cluster] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_sequences(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n/2 users with 5-14 purchases each, 80% of them from two favourite clusters."""
    n_users, n_clusters = max(n // 2, 1), -(-n // CLUSTER)
    lengths = rng.integers(5, 15, n_users)
    user = np.repeat(np.arange(n_users), lengths)
    favourites = rng.integers(0, n_clusters, (n_users, 2))
    cluster = favourites[user, rng.integers(0, 2, len(user))]
    item = np.minimum(cluster * CLUSTER + rng.integers(0, CLUSTER, len(user)), n - 1)
    wander = rng.random(len(user)) < 0.2
    item[wander] = rng.integers(0, n, wander.sum())
    seq = np.arange(len(user)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame({"user_id": user.astype(str), "seq": seq, "item_id": np.char.add("i", item.astype(str))})


def microlens(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Item ids (from the titles file) and the training part of the sequences (last two items held out)."""
    titles = pd.read_csv(folder / "MicroLens-50k_titles.csv", dtype=str)
    pairs = pd.read_csv(
        folder / "MicroLens-50k_pairs.tsv", sep="\t", header=None, names=["user_id", "items"], dtype=str
    )
    seqs = pairs.assign(item_id=pairs["items"].str.split()).explode("item_id")[["user_id", "item_id"]]
    seqs["seq"] = seqs.groupby("user_id").cumcount()
    length = seqs.groupby("user_id")["seq"].transform("size")
    return titles["item"].to_numpy(dtype=object), seqs[seqs["seq"] < length - 2].reset_index(drop=True)


def run_case(name: str, n: int, args: argparse.Namespace, out: mp.Queue) -> None:
    rng = np.random.default_rng(n)
    cfg = GraphConfig(
        alpha=args.alpha, k=args.k, window=args.window, min_count=args.min_count, block_size=args.block_size
    )
    vectors_from = "synthetic"
    if name == "microlens":
        item_ids, train = microlens(args.microlens)
        n = len(item_ids)
        if args.microlens_embed:
            from mmrec_core.config import load_settings
            from mmrec_core.engines import get_engine

            titles = pd.read_csv(args.microlens / "MicroLens-50k_titles.csv", dtype=str)["title"].fillna("")
            vectors = get_engine(load_settings()).embed(titles.tolist())
            vectors_from = "MiniLM titles"
        else:
            vectors = synthetic_vectors(n, args.dim, rng)
    else:
        vectors, train = synthetic_vectors(n, args.dim, rng), synthetic_sequences(n, rng)
        item_ids = np.char.add("i", np.arange(n).astype(str)).astype(object)
    row = {"case": name, "items": n, "interactions": len(train), "vectors": vectors_from}
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        semantic = semantic_edges(vectors, cfg.k, cfg.alpha, cfg.block_size)
        row["sem_s"], row["sem_edges"] = time.perf_counter() - t0, len(semantic[0])
    row["sem_mb"] = mem.mb
    row["pruned"] = n * min(cfg.k, n - 1) - len(semantic[0])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        co = cooccurrence_edges(train, cfg.window, cfg.min_count)
        row["co_s"], row["co_edges"] = time.perf_counter() - t0, len(co)
    row["co_mb"] = mem.mb
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        users = train.drop_duplicates(["user_id", "item_id"])["item_id"].value_counts()
        stats = graph_stats(merge_edges(item_ids, semantic, co, users), n)
        row["merge_s"] = time.perf_counter() - t0
    row.update(
        merge_mb=mem.mb,
        edges=stats.edges,
        both=stats.both_edges,
        isolated=stats.isolated,
        components=stats.components,
        degree_mean=stats.degree_mean,
    )
    row["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="synthetic catalog sizes")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--alpha", type=float, default=GraphConfig.alpha)
    ap.add_argument("--k", type=int, default=GraphConfig.k)
    ap.add_argument("--window", type=int, default=GraphConfig.window)
    ap.add_argument("--min-count", type=int, default=GraphConfig.min_count)
    ap.add_argument("--block-size", type=int, default=GraphConfig.block_size)
    ap.add_argument("--microlens", type=Path, default=REPO.parent / "shared" / "datasets" / "microlens50k")
    ap.add_argument("--no-microlens", action="store_true", help="skip the MicroLens case")
    ap.add_argument("--microlens-embed", action="store_true", help="embed MicroLens titles (slow on CPU)")
    args = ap.parse_args()

    cases = [("synthetic", n) for n in args.sizes]
    if not args.no_microlens and (args.microlens / "MicroLens-50k_pairs.tsv").is_file():
        cases.append(("microlens", 0))
    elif not args.no_microlens:
        print(f"MicroLens not found at {args.microlens}: skipped")
    print(
        f"k={args.k} alpha={args.alpha} window={args.window} min_count={args.min_count} "
        f"block_size={args.block_size} dim={args.dim}; {os.cpu_count()} CPUs, numpy {np.__version__}"
    )
    rows = []
    ctx = mp.get_context("fork")
    for name, n in cases:
        queue = ctx.Queue()
        child = ctx.Process(target=run_case, args=(name, n, args, queue))
        child.start()
        while True:  # a child that fails prints its traceback and exits without a row
            try:
                row = queue.get(timeout=1)
                break
            except Empty:
                if not child.is_alive():
                    sys.exit(f"the {name} case failed (exit status {child.exitcode}); see the traceback above")
        child.join()
        rows.append(row)
        print(f"  done: {row['case']} {row['items']:,} items", flush=True)

    table = pd.DataFrame(rows)
    cols = {
        "case": "case",
        "items": "items",
        "interactions": "interactions",
        "vectors": "vectors",
        "sem_s": "semantic s",
        "sem_mb": "semantic MB",
        "sem_edges": "top-k kept",
        "pruned": "pruned",
        "co_s": "co-occ s",
        "co_mb": "co-occ MB",
        "co_edges": "co-occ edges",
        "merge_s": "merge+stats s",
        "merge_mb": "merge MB",
        "edges": "edges",
        "both": "both",
        "isolated": "isolated",
        "components": "components",
        "maxrss_mb": "max RSS MB",
    }
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:,.2f}".format):
        print(table[list(cols)].rename(columns=cols).to_string(index=False))
        synth = table[table["case"] == "synthetic"].reset_index(drop=True)
        if len(synth) > 1:
            growth = pd.DataFrame(
                {
                    "from -> to": [
                        f"{a:,} -> {b:,}" for a, b in zip(synth["items"][:-1], synth["items"][1:], strict=True)
                    ],
                    "items x": (synth["items"] / synth["items"].shift()).iloc[1:].to_numpy(),
                    "semantic s x": (synth["sem_s"] / synth["sem_s"].shift()).iloc[1:].to_numpy(),
                    "semantic MB x": (synth["sem_mb"] / synth["sem_mb"].shift()).iloc[1:].to_numpy(),
                    "co-occ s x": (synth["co_s"] / synth["co_s"].shift()).iloc[1:].to_numpy(),
                    "merge+stats s x": (synth["merge_s"] / synth["merge_s"].shift()).iloc[1:].to_numpy(),
                }
            )
            print("\ngrowth (semantic: O(n^2 d) time, O(block_size n) memory; co-occurrence: O(interactions))")
            print(growth.to_string(index=False))


if __name__ == "__main__":
    main()
