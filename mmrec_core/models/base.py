"""The common base of all recommenders: fit on `TrainData`, score the whole catalog for histories.

Like RecBole's model files, each model is one short module naming its paper; this base holds what
they share: the registry name, the config, and saving/loading the trained state.
"""

from __future__ import annotations

import copy
import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mmrec_core.core.progress import Progress
from mmrec_core.data.metrics import sampled_metrics
from mmrec_core.models.data import TrainData


class Recommender(ABC):
    name: str = ""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.n_items = 0
        self.log: list[dict] = []  # one row per epoch: losses, valid metrics

    @abstractmethod
    def fit(self, data: TrainData, progress: Progress | None = None) -> None:
        """Train on data.sequences only; data.parts['valid'] may select the epoch (early stopping)."""

    @abstractmethod
    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        """(len(users), n_items) scores, higher = more likely next; histories are item indices."""

    # -- shared training loop: epochs with early stopping on valid NDCG@10 -------------------------
    def valid_ndcg(self, data: TrainData, k: int = 10, batch: int = 2048) -> float:
        """Mean NDCG@k of the valid part over its stored candidates (the early-stopping signal).

        Users go in batches: a full score matrix for 50,000 users x 19,000 items would need 4 GB.
        """
        part, picked = data.parts["valid"], []
        for first in range(0, len(part.users), batch):
            rows = slice(first, first + batch)
            scores = self.score(part.users[rows], part.histories[rows])
            picked.append(np.take_along_axis(scores, part.items[rows], axis=1))
        return float(sampled_metrics(np.concatenate(picked), ks=(k,))[f"NDCG@{k}"].mean())

    @staticmethod
    def step(opt, loss) -> float:
        """One optimiser step on `loss`; returns its value."""
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def train_epochs(self, data: TrainData, net, run_epoch: Callable[[], float], progress: Progress | None) -> None:
        """Call `run_epoch()` (returns the mean loss) until `config.patience` epochs pass without a better
        valid NDCG@10 or `config.epochs` are done (0: no cap); `net` (a torch module) ends with its best weights."""
        best, best_state, waited = -1.0, None, 0
        cap = self.config.epochs or None
        for epoch in itertools.count(1) if cap is None else range(1, cap + 1):
            net.train()
            loss = run_epoch()
            ndcg = self.valid_ndcg(data)
            self.log.append({"epoch": epoch, "loss": loss, "valid_NDCG@10": ndcg})
            if progress:
                progress(epoch, cap, f"loss {loss:.4f} · valid NDCG@10 {ndcg:.4f}")
            if ndcg > best:
                best, best_state, waited = ndcg, copy.deepcopy(net.state_dict()), 0
            else:
                waited += 1
                if waited >= self.config.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()

    # -- persistence: a folder with config.json, log.json and the model's own state --------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model": self.name, **asdict(self.config)}, indent=2))
        (folder / "log.json").write_text(json.dumps(self.log, indent=2))
        self._save_state(folder)

    def _save_state(self, folder: Path) -> None:  # models without learned state store nothing more
        np.save(folder / "n_items.npy", np.array([self.n_items]))

    def _load_state(self, folder: Path) -> None:
        self.n_items = int(np.load(folder / "n_items.npy")[0])

    @classmethod
    def load(cls, folder: Path, config_type: type) -> Recommender:
        stored = json.loads((folder / "config.json").read_text())
        stored.pop("model")
        model = cls(config_type(**stored))
        model.log = json.loads((folder / "log.json").read_text())
        model._load_state(folder)
        return model
