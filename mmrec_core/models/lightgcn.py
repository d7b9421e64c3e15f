"""Item-graph LightGCN with profile-initialised users (MLLMRec; LightGCN, He et al., SIGIR 2020).

Item embeddings E0 = a free embedding plus a linear map of each item's text embedding (so items with
few purchases still have a position). They are smoothed over the refined item graph without
transforms or non-linearities (LightGCN eq. 3: E_{l+1} = D^-1/2 A D^-1/2 E_l; eq. 4: the final
embedding is the mean of layers 0..L). A user is MLP(profile embedding) (MLLMRec), or MLP(mean
text embedding of their history) for a user without a profile. Trained with BPR (one sampled
negative per training interaction) and early stopping on valid NDCG@10.
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
class ItemGraphConfig:
    dim: int = field(default=64, metadata={"help": "Embedding size of items and users."})
    layers: int = field(default=2, metadata={"help": "LightGCN propagation layers over the item graph."})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate."})
    reg: float = field(default=1e-4, metadata={"help": "L2 weight on the embeddings of each batch."})
    batch_size: int = field(default=1024, metadata={"help": "(user, positive, negative) triples per step."})
    epochs: int = field(default=100, metadata={"help": "Most epochs."})
    patience: int = field(default=8, metadata={"help": "Stop after this many epochs without a valid gain."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, batches and negatives."})


@dataclass
class NoGraphConfig(ItemGraphConfig):
    """The ablation without the item graph (`lightgcn-no-graph`): no propagation, so an item is its free plus
    text embedding and a user still comes from their profile; everything else as `lightgcn`."""

    layers: int = field(default=0, metadata={"help": "Propagation layers over the item graph (0: the graph unused)."})


def normalized_adjacency(edges, n_items: int) -> torch.Tensor:
    """Symmetric D^-1/2 A D^-1/2 of the undirected weighted item graph, as a sparse tensor."""
    src = np.concatenate([edges["src"].to_numpy(), edges["dst"].to_numpy()]).astype(np.int64)
    dst = np.concatenate([edges["dst"].to_numpy(), edges["src"].to_numpy()]).astype(np.int64)
    w = np.concatenate([edges["weight"].to_numpy(), edges["weight"].to_numpy()]).astype(np.float32)
    degree = np.bincount(src, weights=w, minlength=n_items).astype(np.float32)
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0).astype(np.float32)
    values = inv[src] * w * inv[dst]
    return torch.sparse_coo_tensor(np.stack([src, dst]), values, (n_items, n_items), check_invariants=False).coalesce()


class ItemGraphNet(nn.Module):
    def __init__(self, item_features: np.ndarray, adjacency: torch.Tensor, cfg: ItemGraphConfig) -> None:
        super().__init__()
        n, d = item_features.shape
        self.register_buffer("features", torch.from_numpy(item_features.astype(np.float32)))
        self.adjacency = adjacency
        self.free = nn.Embedding(n, cfg.dim)
        nn.init.normal_(self.free.weight, std=0.1)
        self.text = nn.Linear(d, cfg.dim, bias=False)
        self.user = nn.Sequential(nn.Linear(d, cfg.dim), nn.Tanh(), nn.Linear(cfg.dim, cfg.dim))
        self.layers = cfg.layers

    def items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(final item embeddings, layer-0 embeddings) after propagation over the graph."""
        e0 = self.free.weight + self.text(self.features)
        layers, e = [e0], e0
        for _ in range(self.layers):
            e = torch.sparse.mm(self.adjacency, e)
            layers.append(e)
        return torch.stack(layers).mean(0), e0


class ItemGraphLightGCN(Recommender):
    name = "lightgcn"

    def _user_features(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        mean = self.item_features.mean(0)
        rows = []
        for user, hist in zip(users, histories, strict=True):
            if user in self.profiles:
                rows.append(self.profiles[user])
            else:  # no profile: the text of what they bought stands in
                rows.append(self.item_features[hist].mean(0) if len(hist) else mean)
        return np.stack(rows).astype(np.float32)

    def fit(self, data: TrainData, progress: Progress | None = None) -> None:
        if data.item_features is None or data.edges is None:
            raise ValueError(
                "The item-graph model needs item text embeddings and a refined item graph "
                "(build it with `mmrec graph DATASET`)."
            )
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.n_items, self.item_features = data.n_items, data.item_features.astype(np.float32)
        self.profiles = dict(data.user_features or {})
        self.edges = data.edges[["src", "dst", "weight"]].reset_index(drop=True)
        self.net = ItemGraphNet(self.item_features, normalized_adjacency(self.edges, self.n_items), cfg)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        users = list(data.sequences)
        feats = torch.from_numpy(self._user_features(users, [data.sequences[u] for u in users]))
        pairs = np.array([(r, i) for r, u in enumerate(users) for i in data.sequences[u]], dtype=np.int64)
        seen = [set(data.sequences[u]) for u in users]

        def run_epoch() -> float:
            order, total = rng.permutation(len(pairs)), 0.0
            for first in range(0, len(pairs), cfg.batch_size):
                batch = pairs[order[first : first + cfg.batch_size]]
                neg = rng.integers(0, self.n_items, size=len(batch))
                for k, (r, _) in enumerate(batch):  # redraw negatives the user actually bought
                    while neg[k] in seen[r]:
                        neg[k] = rng.integers(0, self.n_items)
                items, e0 = self.net.items()
                u = self.net.user(feats[batch[:, 0]])
                pos, negs = torch.from_numpy(batch[:, 1]), torch.from_numpy(neg)
                reg = (u.pow(2).sum() + e0[pos].pow(2).sum() + e0[negs].pow(2).sum()) / len(batch)
                loss = bpr_loss(u, items[pos], items[negs]) + cfg.reg * reg
                total += self.step(opt, loss) * len(batch)
            return total / len(pairs)

        self.train_epochs(data, self.net, run_epoch, progress)

    @torch.no_grad()
    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        self.net.eval()
        items, _ = self.net.items()
        u = self.net.user(torch.from_numpy(self._user_features(users, histories)))
        return (u @ items.T).numpy()

    def _save_state(self, folder: Path) -> None:
        np.save(folder / "item_features.npy", self.item_features)
        self.edges.to_parquet(folder / "edges.parquet")
        names = sorted(self.profiles)
        np.save(folder / "profiles.npy", np.stack([self.profiles[u] for u in names]) if names else np.zeros((0, 1)))
        (folder / "profile_users.txt").write_text("\n".join(names))
        torch.save(self.net.state_dict(), folder / "lightgcn.pt")

    def _load_state(self, folder: Path) -> None:
        import pandas as pd

        self.item_features = np.load(folder / "item_features.npy")
        self.n_items = len(self.item_features)
        self.edges = pd.read_parquet(folder / "edges.parquet")
        names = [n for n in (folder / "profile_users.txt").read_text().split("\n") if n]
        self.profiles = dict(zip(names, np.load(folder / "profiles.npy"), strict=True))
        self.net = ItemGraphNet(self.item_features, normalized_adjacency(self.edges, self.n_items), self.config)
        self.net.load_state_dict(torch.load(folder / "lightgcn.pt", weights_only=True))
        self.net.eval()
