"""Ingest throughput: seconds, interactions/s and peak memory to load each real data set.

    .venv/bin/python bench/ingest.py [--shared ../shared/datasets]

Each data set is loaded into a fresh temporary data folder, in a child process so that peak
resident memory (ru_maxrss) is that of one ingest. A second, identical ingest shows the cost of
the idempotency check (it writes nothing).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _one(fmt: str, path: str, out: mp.Queue) -> None:
    from mmrec_core.config import load_settings
    from mmrec_core.data.ingest import ingest
    from mmrec_core.store.workspace import open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = open_workspace(load_settings(tmp))
        t0 = time.perf_counter()
        report = ingest(ws.store, ws.images, fmt, path)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ingest(ws.store, ws.images, fmt, path)
        second = time.perf_counter() - t0
        ws.close()
    out.put({"format": fmt, "interactions": report.n_interactions, "source_rows": report.n_raw_rows,
             "items": report.n_items, "images": report.n_images, "first_s": first, "second_s": second,
             "second_status": again.status, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    args = ap.parse_args()
    from mmrec_core.data.ingest import READERS

    jobs = [("hm", REPO / "sample_data"), ("hm", args.shared / "hm"), ("microlens", args.shared / "microlens50k")]
    print(f"{'data set':<28}{'rows':>10}{'inter.':>10}{'items':>8}{'images':>8}{'ingest s':>10}"
          f"{'inter./s':>10}{'re-run s':>10}{'peak MB':>9}")
    ctx = mp.get_context("spawn")
    for fmt, path in jobs:
        if fmt not in READERS or not path.exists():
            print(f"{fmt}:{path.name:<20} skipped (format or data missing)")
            continue
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=_one, args=(fmt, str(path), q))
        p.start()
        r = q.get()
        p.join()
        print(f"{fmt + ':' + path.name:<28}{r['source_rows']:>10,}{r['interactions']:>10,}{r['items']:>8,}"
              f"{r['images']:>8,}{r['first_s']:>10.2f}{r['interactions'] / r['first_s']:>10,.0f}"
              f"{r['second_s']:>10.2f}{r['peak_rss_mb']:>9.0f}")
        assert r["second_status"] == "unchanged", json.dumps(r)


if __name__ == "__main__":
    main()
