"""SASRec's epoch time for each loss on one data set, in one run (training and valid scoring apart).

Each loss trains `--epochs` epochs with the shipped settings (`SASRecConfig`, only the loss changed)
on the protocol's training interactions; the script prints seconds per epoch of training, seconds
of the valid NDCG@10 pass that follows each epoch (the early-stopping signal), the valid NDCG@10
reached, and each loss's training time as a ratio to cross-entropy's. Nothing is stored.

    MMREC_DATA_DIR=/tmp/ml-data python bench/sasrec_epochs.py microlens            # ce, gbce, bce; 1 epoch
    python bench/sasrec_epochs.py hm --data-dir /tmp/hm-data --epochs 3 --losses ce,gbce
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import load_settings  # noqa: E402
from mmrec_core.models.data import load_train_data  # noqa: E402
from mmrec_core.models.losses import LOSSES  # noqa: E402
from mmrec_core.models.sasrec import SASRec, SASRecConfig  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402


class TimedSASRec(SASRec):
    """SASRec that clocks its valid passes, so training time is the fit's wall time minus them."""

    valid_seconds = 0.0

    def valid_ndcg(self, data, k: int = 10, batch: int = 2048) -> float:
        start = time.perf_counter()
        try:
            return super().valid_ndcg(data, k, batch)
        finally:
            self.valid_seconds += time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per loss (the figures are per epoch)")
    ap.add_argument("--losses", default=",".join(LOSSES), help="comma-separated, from " + ", ".join(LOSSES))
    ap.add_argument("--data-dir", help="data folder (default: MMREC_DATA_DIR)")
    args = ap.parse_args()
    ws = open_workspace(load_settings(Path(args.data_dir) if args.data_dir else None))
    protocol = default_protocol(ws, args.dataset)
    data = load_train_data(ws.store, args.dataset, protocol)
    ws.close()

    rows = {}
    for loss in args.losses.split(","):
        model = TimedSASRec(dataclasses.replace(SASRecConfig(), loss=loss, epochs=args.epochs))
        start = time.perf_counter()
        model.fit(data)
        total = time.perf_counter() - start
        rows[loss] = {
            "train s/epoch": (total - model.valid_seconds) / args.epochs,
            "valid s/epoch": model.valid_seconds / args.epochs,
            "valid NDCG@10": max(row["valid_NDCG@10"] for row in model.log),
        }
    table = pd.DataFrame(rows).T
    if "ce" in table.index:
        table["train time vs ce"] = table["train s/epoch"] / table.loc["ce", "train s/epoch"]
    users = len(data.sequences)
    print(f"{args.dataset} · {protocol} · {users} training sequences, {data.n_items} items · {args.epochs} epoch(s)")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
