"""RecBole's half of `bench/peer_check.py`; runs with RecBole's own python (see that script's docstring).

Trains RecBole's SASRec on the exported benchmark files (the project's exact train/valid/test split) with
early stopping on valid, then writes its scores of the project's stored test candidates.

    python bench/recbole_side.py FOLDER DATASET [--loss CE|BPR] [--epochs N] [--seed S]
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
            "checkpoint_dir": str(folder / "saved"),
            "show_progress": False,
            "seed": args.seed,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to("cpu")
    trainer = Trainer(config, model)
    best, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    trainer.resume_checkpoint(trainer.saved_model_file)  # the best valid epoch
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
    epochs = len(getattr(trainer, "train_loss_dict", {}))
    (folder / "recbole.json").write_text(json.dumps({"best_valid_NDCG@10": float(best), "epochs": epochs}))


if __name__ == "__main__":
    main()
