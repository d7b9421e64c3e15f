"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking (Rendle et al., UAI 2009).

score(u, i) = p_u . q_i; each step pushes a training pair (u, i) above a sampled item j the user never
had: loss = -log sigmoid(p_u . q_i - p_u . q_j) (eq. 5's BPR-Opt), plus L2 on the rows involved.
The plain collaborative baseline: no order, no content. A user unseen in training scores zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmrec_core.core.progress import Progress
from mmrec_core.models.base import Recommender
from mmrec_core.models.data import TrainData
from mmrec_core.models.losses import bpr_loss


@dataclass
class BPRMFConfig:
    dim: int = field(default=64, metadata={"help": "Embedding size."})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "L2 penalty on the user and item rows of a step."})
    batch_size: int = field(default=1024, metadata={"help": "Training pairs per step."})
    epochs: int = field(default=0, metadata={"help": "Most epochs; 0: no cap, train until early stopping."})
    patience: int = field(default=10, metadata={"help": "Stop after this many epochs without a valid gain."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, batches and negatives."})


class BPRMFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)


class BPRMF(Recommender):
    name = "bprmf"

    def fit(self, data: TrainData, progress: Progress | None = None) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.n_items = data.n_items
        self.users = {u: r for r, u in enumerate(sorted(data.sequences))}
        self.net = BPRMFNet(len(self.users), data.n_items, cfg.dim)
        pairs = np.array([(self.users[u], i) for u, seq in data.sequences.items() for i in set(seq)], dtype=np.int64)
        owned = {self.users[u]: set(seq) for u, seq in data.sequences.items()}
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)

        def run_epoch() -> float:
            order, total = rng.permutation(len(pairs)), 0.0
            for first in range(0, len(pairs), cfg.batch_size):
                batch = pairs[order[first : first + cfg.batch_size]]
                neg = rng.integers(0, self.n_items, size=len(batch))
                for r, (u, _) in enumerate(batch):  # redraw the few that hit the user's own items
                    while neg[r] in owned[u]:
                        neg[r] = rng.integers(0, self.n_items)
                u, i, j = (torch.from_numpy(a) for a in (batch[:, 0], batch[:, 1], neg))
                p, qi, qj = self.net.user(u), self.net.item(i), self.net.item(j)
                l2 = (p.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(batch)
                total += self.step(opt, bpr_loss(p, qi, qj) + cfg.weight_decay * l2) * len(batch)
            return total / len(pairs)

        self.train_epochs(data, self.net, run_epoch, progress)

    @torch.no_grad()
    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        rows = torch.tensor([self.users.get(u, -1) for u in users])
        vectors = torch.zeros(len(users), self.config.dim)
        known = rows >= 0
        vectors[known] = self.net.user(rows[known])
        return (vectors @ self.net.item.weight.T).numpy()

    def _save_state(self, folder: Path) -> None:
        torch.save({"users": list(self.users), "state": self.net.state_dict()}, folder / "bprmf.pt")

    def _load_state(self, folder: Path) -> None:
        stored = torch.load(folder / "bprmf.pt", weights_only=True)
        self.users = {u: r for r, u in enumerate(stored["users"])}
        n_items, dim = stored["state"]["item.weight"].shape
        self.n_items = n_items
        self.net = BPRMFNet(len(self.users), n_items, dim)
        self.net.load_state_dict(stored["state"])
        self.net.eval()
