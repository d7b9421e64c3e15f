"""Popularity: score = how often the item occurs in all TRAINING sequences (the usual floor to beat)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrec_core.core.progress import Progress
from mmrec_core.models.base import Recommender
from mmrec_core.models.data import TrainData


@dataclass
class PopularityConfig:
    pass


class Popularity(Recommender):
    name = "popularity"

    def fit(self, data: TrainData, progress: Progress | None = None) -> None:
        self.n_items = data.n_items
        self.counts = counts = data.item_counts().astype(np.float64)
        self.log = [{"epoch": 0, "items_seen": int(counts.astype(bool).sum())}]

    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()

    def _save_state(self, folder: Path) -> None:
        np.save(folder / "counts.npy", self.counts)

    def _load_state(self, folder: Path) -> None:
        self.counts = np.load(folder / "counts.npy")
        self.n_items = len(self.counts)
