"""The project's SASRec beside RecBole's on the same split and the same stored candidates (optional; not in
`make test`). Prints HR@5 / NDCG@5 / HR@10 / AUC for both, over all test users and split cold/warm.

RecBole lives in its own virtualenv (its pins clash with this project's):

    python3 -m venv ~/recbole-venv
    ~/recbole-venv/bin/pip install torch==2.13.0          # first: the local CPU wheel, not CUDA packages
    ~/recbole-venv/bin/pip install recbole==1.2.1 "numpy<2" "pandas<2"   # its code predates both majors
    python bench/peer_check.py hm --recbole-python ~/recbole-venv/bin/python   # data folder: MMREC_DATA_DIR

What it does: exports the data set's protocol to RecBole benchmark files in `--out` (train: every prefix of
every TRAINING sequence; valid: training sequence -> valid item; test: training + valid -> test item; an
`.item` file with the whole catalog, so every stored negative has an id), runs `bench/recbole_side.py` with
RecBole's python (SASRec, `--loss` CE by default, early stopping on valid NDCG@10; RecBole 1.2.1's
`torch.load` is patched to `weights_only=False` for its own checkpoints; `alias_of_item_id` shares the
item vocabulary with the history field), and scores the stored test candidates with both models.
RecBole's side resumes an interrupted training from its last valid pass (see `recbole_side.py`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrec_core.config import load_settings  # noqa: E402
from mmrec_core.data.metrics import sampled_metrics  # noqa: E402
from mmrec_core.models.data import TrainData, load_train_data  # noqa: E402
from mmrec_core.models.losses import LOSSES  # noqa: E402
from mmrec_core.models.sasrec import SASRec, SASRecConfig  # noqa: E402
from mmrec_core.store.workspace import default_protocol, open_workspace  # noqa: E402

MAX_LEN = 50


def export(data: TrainData, folder: Path, name: str) -> None:
    """RecBole benchmark files of the project's split (in `folder/name/`, where RecBole looks), and the test
    candidates to score (`folder/candidates.json`)."""
    files = folder / name
    files.mkdir(parents=True, exist_ok=True)
    ids = data.item_ids
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def write(part: str, rows: list[tuple[str, list[int], int]]) -> None:
        lines = [f"{u}\t{' '.join(str(ids[i]) for i in h[-MAX_LEN:])}\t{ids[t]}\n" for u, h, t in rows]
        (files / f"{name}.{part}.inter").write_text(header + "".join(lines))

    write("train", [(u, s[:t], s[t]) for u, s in data.sequences.items() for t in range(1, len(s))])
    for part in ("valid", "test"):
        c = data.parts[part]
        write(part, [(u, h, int(p)) for u, h, p in zip(c.users, c.histories, c.items[:, 0], strict=True) if h])
    (files / f"{name}.item").write_text("item_id:token\n" + "".join(f"{i}\n" for i in ids))
    test = data.parts["test"]
    request = [
        {"user": u, "history": [str(ids[i]) for i in h], "candidates": [str(ids[i]) for i in items]}
        for u, h, items in zip(test.users, test.histories, test.items, strict=True)
    ]
    (folder / "candidates.json").write_text(json.dumps(request))


COLUMNS = ["HR@5", "NDCG@5", "HR@10", "AUC"]


def summary(runs: list[np.ndarray], cold: np.ndarray) -> dict[str, str]:
    """Each metric as mean (± sd over seeds when there are several) for all, warm and cold positives."""

    def fmt(mask: np.ndarray) -> str:
        values = np.array([sampled_metrics(r[mask], ks=(5, 10))[COLUMNS].mean().to_numpy() for r in runs])
        if len(runs) == 1:
            return " / ".join(f"{v:.3f}" for v in values[0])
        return " / ".join(f"{m:.3f}±{d:.3f}" for m, d in zip(values.mean(0), values.std(0), strict=True))

    return {"all": fmt(np.ones_like(cold)), "warm": fmt(~cold), "cold": fmt(cold)}


def recbole_scores(args: argparse.Namespace, folder: Path, seed: int) -> np.ndarray:
    """RecBole's scores of the stored test candidates for one seed (kept per seed for --reuse)."""
    kept = folder / f"scores-{args.loss}-seed{seed}.npy"
    if not (args.reuse and kept.is_file()):
        side = Path(__file__).with_name("recbole_side.py")
        command = [args.recbole_python, str(side), str(folder.resolve()), args.dataset, "--loss", args.loss]
        subprocess.run([*command, "--seed", str(seed)], check=True, cwd=folder)  # RecBole logs into the cwd
        (folder / "scores.npy").rename(kept)
    return np.load(kept)


def our_scores(args: argparse.Namespace, folder: Path, data: TrainData, seed: int) -> np.ndarray:
    """This project's SASRec's scores of the stored test candidates for one seed (kept per seed for --reuse)."""
    kept = folder / f"ours-{args.our_loss}-seed{seed}.npy"
    if not (args.reuse and kept.is_file()):
        test = data.parts["test"]
        ours = SASRec(SASRecConfig(seed=seed, loss=args.our_loss))
        ours.fit(data)
        np.save(kept, np.take_along_axis(ours.score(test.users, test.histories), test.items, axis=1))
    return np.load(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--recbole-python", required=True, help="the python of RecBole's virtualenv")
    ap.add_argument("--loss", default="CE", help="RecBole's loss_type: CE (default) or BPR")
    ap.add_argument("--seeds", type=int, default=1, help="train both sides with seeds 0..N-1; mean ± sd")
    ap.add_argument("--out", help="export folder (default: <data folder>/peer_check/<dataset>)")
    ap.add_argument("--data-dir", help="data folder (default: MMREC_DATA_DIR)")
    ap.add_argument("--our-loss", default=SASRecConfig.loss, choices=sorted(LOSSES), help="this project's loss")
    ap.add_argument("--reuse", action="store_true", help="keep both sides' scores from an earlier run of this export")
    args = ap.parse_args()
    ws = open_workspace(load_settings(Path(args.data_dir) if args.data_dir else None))
    protocol = default_protocol(ws, args.dataset)
    data = load_train_data(ws.store, args.dataset, protocol)
    ws.close()
    folder = Path(args.out or ws.settings.data_dir / "peer_check" / args.dataset)
    export(data, folder, args.dataset)
    test = data.parts["test"]

    theirs, mine, seconds = [], [], {"recbole": 0.0, "ours": 0.0}
    for seed in range(args.seeds):  # ours first: the shorter run, kept even if RecBole's is stopped
        start = time.perf_counter()
        mine.append(our_scores(args, folder, data, seed))
        seconds["ours"] += time.perf_counter() - start
        start = time.perf_counter()
        theirs.append(recbole_scores(args, folder, seed))
        seconds["recbole"] += time.perf_counter() - start

    per_seed = lambda s: f"{s / args.seeds:.0f}"  # noqa: E731
    rows = {
        f"RecBole SASRec ({args.loss})": {**summary(theirs, test.is_cold), "train s": per_seed(seconds["recbole"])},
        f"this project's SASRec ({args.our_loss})": {
            **summary(mine, test.is_cold),
            "train s": per_seed(seconds["ours"]),
        },
    }
    n_cold = int(test.is_cold.sum())
    users = f"{len(test.users)} test users ({n_cold} cold positives)"
    print(f"{args.dataset} · {protocol} · {users} · {args.seeds} seed(s)")
    print(f"{' / '.join(COLUMNS)} on the stored candidates (1 positive + stored negatives, tie-aware)")
    print(pd.DataFrame(rows).T.to_string())


if __name__ == "__main__":
    main()
