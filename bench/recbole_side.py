"""RecBole's half of `bench/peer_check.py`; runs with RecBole's own python (see that script's docstring).

Trains RecBole's SASRec on the exported benchmark files (the project's exact train/valid/test split) with
early stopping on valid, then writes its scores of the project's stored test candidates.

    python bench/recbole_side.py FOLDER DATASET [--loss CE|BPR] [--epochs N] [--seed S]

Resumable: after every valid pass the state is saved to `FOLDER/saved-<loss>-seed<S>/last.pth` (the best
epoch's weights stay in `best.pth`), and a re-run of the same command goes on from there. An interrupted
run loses at most the epoch it was in; its data order after the resume differs from an unbroken run's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

_load = torch.load  # RecBole 1.2.1 loads its own checkpoints (numpy state inside) with torch's new default
torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("dataset")
    ap.add_argument("--loss", default="CE", help="CE (RecBole's default) or BPR")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(args.folder)
    checkpoints = folder / f"saved-{args.loss}-seed{args.seed}"
    best, last = checkpoints / "best.pth", checkpoints / "last.pth"
    config = Config(
        model="SASRec",
        dataset=args.dataset,
        config_dict={
            "data_path": str(folder),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
            "alias_of_item_id": ["item_id_list"],
            "MAX_ITEM_LIST_LENGTH": 50,
            "loss_type": args.loss,
            "train_neg_sample_args": None if args.loss == "CE" else {"distribution": "uniform", "sample_num": 1},
            "eval_args": {"order": "TO", "mode": "full"},
            "epochs": args.epochs,
            "stopping_step": 10,
            "valid_metric": "NDCG@10",
            "device": "cpu",
            "use_gpu": False,
            "checkpoint_dir": str(checkpoints),
            "show_progress": False,
            "seed": args.seed,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to("cpu")
    trainer = Trainer(config, model)
    if last.is_file():  # an earlier run of this command stopped: go on after its last valid pass
        trainer.resume_checkpoint(last)
        print(f"resumed after epoch {trainer.start_epoch - 1} (best valid NDCG@10 {trainer.best_valid_score:.4f})")
    trainer.saved_model_file = str(best)

    def keep_last(epoch: int, _score: float) -> None:  # called after each valid pass, the state already updated
        trainer._save_checkpoint(epoch, verbose=False, saved_model_file=str(last))

    best_score, _ = trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=keep_last)
    trained = torch.load(last, map_location="cpu")["epoch"] + 1
    best_epoch = torch.load(best, map_location="cpu")["epoch"]
    trainer.resume_checkpoint(best)  # the best valid epoch
    model.eval()

    request = json.loads((folder / "candidates.json").read_text())  # users: history and candidate item ids
    scores = []
    with torch.no_grad():
        for row in request:
            history = [dataset.token2id("item_id", i) for i in row["history"][-50:]]
            inter = Interaction(
                {
                    "item_id_list": torch.tensor([history + [0] * (50 - len(history))]),
                    "item_length": torch.tensor([len(history)]),
                }
            )
            full = model.full_sort_predict(inter)[0]
            ids = [dataset.token2id("item_id", i) for i in row["candidates"]]
            scores.append(full[ids].numpy())
    np.save(folder / "scores.npy", np.stack(scores))
    summary = {"best_valid_NDCG@10": float(best_score), "best_epoch": best_epoch, "epochs": trained}
    (folder / "recbole.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
