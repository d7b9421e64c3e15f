"""The common base of all recommenders: fit on `TrainData`, score the whole catalog for histories.

Like RecBole's model files, each model is one short module naming its paper; this base holds what
they share: the registry name, the config, and saving/loading the trained state.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mmrec_core.models.data import TrainData

Progress = Callable[[int, int, str], None]


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
