"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Item embeddings plus learned positions go through causal self-attention blocks; the hidden state at
position t scores the next item by a dot product with its embedding (eq. 6: r_{i,t} = F_t . M_i).
The block and initialisation follow RecBole's SASRec (post-norm, 4x GELU feed-forward, dropout 0.5,
N(0, 0.02) weights), which trained better here than the paper's pre-norm block.
The loss is a choice (`losses.py`): softmax over the whole catalog (default, as RecBole), gSASRec's
gBCE with sampled negatives, or the paper's BCE with one negative (eq. 7). Training runs until valid
NDCG@10 over the stored candidates stops improving. `user_vectors` (the last hidden state) feeds
MMSRARec's similar-user retrieval.

`ContentSASRec` is the hybrid of UniSRec/MISSRec-style models: an item's vector is its ID embedding
plus a learned projection of its content vector, and an item never seen in training (a cold item)
keeps only the content part, so it is ranked by what it is rather than pushed to the bottom. The content
vector is the item text's embedding, or (`--content text+image`) that beside its photo's embedding.
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
from mmrec_core.models.losses import LOSSES, bce_loss, ce_loss, gbce_loss

ARCH = 2  # bumped when the network changes: a stored state of another version is refused, not misread


@dataclass
class SASRecConfig:
    hidden: int = field(default=64, metadata={"help": "Embedding and hidden size."})
    layers: int = field(default=2, metadata={"help": "Self-attention blocks."})
    heads: int = field(default=2, metadata={"help": "Attention heads per block."})
    max_len: int = field(default=50, metadata={"help": "Most recent items the model reads."})
    dropout: float = field(default=0.5, metadata={"help": "Dropout on embeddings, attention and in the blocks."})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    batch_size: int = field(default=128, metadata={"help": "Sequences per step."})
    bucket: bool = field(
        default=True,
        metadata={"help": "Batch sequences of similar length (a batch is as wide as its longest sequence)."},
    )
    loss: str = field(
        default="ce",
        metadata={
            "help": "ce: softmax over the whole catalog; gbce: gSASRec's gBCE over sampled negatives (large "
            "catalogs); bce: the paper's BCE with one negative.",
            "choices": LOSSES,
        },
    )
    negatives: int = field(default=256, metadata={"help": "Sampled negatives per position (gbce)."})
    gbce_t: float = field(default=0.75, metadata={"help": "gBCE calibration t: 0 is plain BCE, 1 fully calibrated."})
    epochs: int = field(default=0, metadata={"help": "Most epochs; 0: no cap, train until early stopping."})
    patience: int = field(default=10, metadata={"help": "Stop after this many epochs without a valid gain."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, batches and negatives."})



@dataclass
class ContentSASRecConfig(SASRecConfig):
    content: str = field(
        default="text+image",  # better on valid than text alone: sample and H&M, README "Item photos"
        metadata={
            "help": "What the content part projects: the item text vector, or text+image (the text vector beside "
            "the photo's EfficientNet-lite0 vector; zeros for an item without a photo; text alone for a catalog "
            "without photos).",
            "choices": ("text", "text+image"),
            "before": "text",  # what runs made before this setting existed used
        },
    )

class FastDropout(nn.Module):
    """Dropout whose mask comes from random bytes, p rounded to a multiple of 1/256 (0.5 is exact).

    On CPU, torch's dropout draws one random number per element (`bernoulli_`): that was 60% of SASRec's
    training forward pass (issue 21). Eight mask bytes per 64-bit draw cost about a tenth of it; kept values
    are scaled by 1 / (1 - p) as in `nn.Dropout`, so the expected output is the same.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.cut = round(p * 256)  # a byte below this is dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        draws = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
        keep = draws.view(torch.uint8)[:n].view(x.shape) >= self.cut
        return x * keep * (256 / (256 - self.cut))


def _small_init(module: nn.Module) -> None:
    """N(0, 0.02) weights, zero biases (RecBole's): an item never seen in training keeps a near-zero vector,
    so it lands mid-list instead of wherever a large random vector puts it."""
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight.data.normal_(0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
    if isinstance(module, nn.MultiheadAttention):
        module.in_proj_weight.data.normal_(0.0, 0.02)
        module.in_proj_bias.data.zero_()
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        module.weight.data[module.padding_idx].zero_()


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig, content: np.ndarray | None = None, warm=None) -> None:
        """`content` (n_items, d): item text vectors for the hybrid; `warm` (n_items,) bool: items seen in
        training, the only ones whose ID embedding is used."""
        super().__init__()
        self.item = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # index 0 pads; item i is i + 1
        if content is None:
            self.content = None
        else:  # buffers: saved with the state, so a reloaded model scores the same
            self.register_buffer("content", torch.from_numpy(np.asarray(content, dtype=np.float32)))
            self.register_buffer("warm", torch.from_numpy(np.concatenate([[False], warm])).unsqueeze(-1))
            self.project = nn.Linear(content.shape[1], cfg.hidden, bias=False)  # text vectors are unit length
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        # RecBole's block, which beat the paper's pre-norm block with a 2x ReLU FFN on sample and H&M (issue 21):
        # post-norm, a 4x GELU FFN, dropout on attention and hidden states alike
        block = nn.TransformerEncoderLayer(
            cfg.hidden, cfg.heads, cfg.hidden * 4, cfg.dropout, "gelu", 1e-12, batch_first=True
        )
        self.blocks = nn.TransformerEncoder(block, cfg.layers, enable_nested_tensor=False)
        for layer in self.blocks.layers:  # the hidden-state dropouts (attention's own stays torch's)
            layer.dropout, layer.dropout1, layer.dropout2 = (FastDropout(cfg.dropout) for _ in range(3))
        self.norm = nn.LayerNorm(cfg.hidden, eps=1e-12)  # on item + position, before the blocks
        self.drop = FastDropout(cfg.dropout)
        self.heads = cfg.heads
        self.apply(_small_init)
        self.register_buffer("causal", torch.triu(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool), 1))

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, H) item vectors, row 0 padding: the ID embedding, plus the content part in the hybrid."""
        if self.content is None:
            return self.item.weight
        return self.item.weight * self.warm + nn.functional.pad(self.project(self.content), (0, 0, 1, 0))

    def forward(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) left-padded item ids (+1) -> (B, L, H) hidden states; padded positions are zero.

        Pads are masked as keys, so a user's state does not depend on how much padding the batch has;
        a pad may attend to itself only (a row with every key masked would give NaN).
        """
        L = seqs.shape[1]
        real = seqs > 0
        keep = real.unsqueeze(-1)
        # positions count from the user's oldest item (as RecBole's), whatever the padding in front
        positions = (real.cumsum(1) - 1).clamp(min=0)
        table = self.item_table() if table is None else table
        x = self.drop(self.norm(table[seqs] + self.pos(positions))) * keep
        blocked = self.causal[:L, :L].unsqueeze(0) | ~real.unsqueeze(1)
        blocked = blocked & ~torch.eye(L, dtype=torch.bool, device=seqs.device)
        mask = blocked.repeat_interleave(self.heads, dim=0)  # (B * heads, L, L), as nn.MultiheadAttention wants
        return self.blocks(x, mask=mask) * keep


class SASRec(Recommender):
    name = "sasrec"

    @staticmethod
    def _trim(*padded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Drop the left-padding columns every row shares (short sequences: most of max_len)."""
        used = (padded[0] > 0).any(0).nonzero()
        start = int(used[0]) if len(used) else padded[0].shape[1] - 1
        return tuple(t[:, start:] for t in padded)

    def _pad(self, histories: list[list[int]]) -> torch.Tensor:
        L = self.config.max_len
        out = np.zeros((len(histories), L), dtype=np.int64)
        for r, h in enumerate(histories):
            h = h[-L:]
            if h:
                out[r, L - len(h) :] = np.asarray(h) + 1
        return torch.from_numpy(out)

    def _net(self, data: TrainData) -> SASRecNet:
        return SASRecNet(data.n_items, self.config)

    def fit(self, data: TrainData, progress: Progress | None = None) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.n_items = data.n_items
        self.net = self._net(data)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
        seqs = [s[-(cfg.max_len + 1) :] for s in data.sequences.values() if len(s) >= 2]
        inputs, targets = self._pad([s[:-1] for s in seqs]), self._pad([s[1:] for s in seqs])
        seen, lengths = [set(s) for s in seqs], np.asarray([len(s) for s in seqs])

        def run_epoch() -> float:
            total = 0.0
            for rows in self._batches(rng, lengths):
                x, pos = self._trim(inputs[rows], targets[rows])
                table = self.net.item_table()  # once per step: the hybrid's projection is not free
                mask = pos > 0
                hidden, positive = self.net(x, table)[mask], pos[mask]
                if cfg.loss == "ce":
                    loss = ce_loss(hidden, positive, table)
                elif cfg.loss == "gbce":
                    negatives = torch.from_numpy(rng.integers(1, self.n_items + 1, size=(len(positive), cfg.negatives)))
                    loss = gbce_loss(hidden, positive, table, negatives, cfg.gbce_t)
                else:
                    negatives = torch.from_numpy(self._negatives(rng, [seen[r] for r in rows], pos.shape[1]))
                    loss = bce_loss(hidden, positive, table, negatives[mask].unsqueeze(-1))
                total += self.step(opt, loss) * len(rows)
            return total / len(seqs)

        self.train_epochs(data, self.net, run_epoch, progress)

    def _batches(self, rng: np.random.Generator, lengths: np.ndarray, pool: int = 50) -> list[np.ndarray]:
        """One epoch's batches of row indices in random order. With `bucket`, each random pool of `pool`
        batches is sorted by length before it is cut (a bucket iterator): on MicroLens, where a random batch
        almost always holds one 50-item sequence among 7-item ones, that is most of the padding gone."""
        size, order = self.config.batch_size, rng.permutation(len(lengths))
        if not self.config.bucket:
            return [order[first : first + size] for first in range(0, len(order), size)]
        batches = []
        for start in range(0, len(order), size * pool):
            chunk = order[start : start + size * pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[first : first + size] for first in range(0, len(chunk), size)]
        return [batches[b] for b in rng.permutation(len(batches))]

    def _negatives(self, rng: np.random.Generator, seen: list[set[int]], length: int) -> np.ndarray:
        """One negative per position (+1 ids), none of them the user's own items (the paper's sampling)."""
        neg = rng.integers(0, self.n_items, size=(len(seen), length))
        for r, s in enumerate(seen):  # redraw the few that hit the user's own items
            for c in np.flatnonzero(np.isin(neg[r], list(s))):
                while neg[r, c] in s:
                    neg[r, c] = rng.integers(0, self.n_items)
        return neg + 1

    @torch.no_grad()
    def user_vectors(self, histories: list[list[int]], batch_size: int = 1024) -> np.ndarray:
        """The last hidden state per history (what the next item is scored against).

        Histories go in batches of similar length, so a batch is only as wide as its longest history: most
        users are short (MicroLens: 7 items on average, max_len 50). A state does not depend on the padding.
        """
        self.net.eval()
        if not histories:
            return np.zeros((0, self.config.hidden), dtype=np.float32)
        order = np.argsort([min(len(h), self.config.max_len) for h in histories], kind="stable")
        batches = [
            [histories[i] for i in order[first : first + batch_size]] for first in range(0, len(order), batch_size)
        ]
        out = torch.cat([self.net(self._trim(self._pad(batch))[0])[:, -1] for batch in batches])
        vectors = torch.empty_like(out)
        vectors[torch.from_numpy(order)] = out
        return vectors.numpy()

    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        vectors = torch.from_numpy(self.user_vectors(histories))
        with torch.no_grad():
            return (vectors @ self.net.item_table()[1:].T).numpy()

    def _save_state(self, folder: Path) -> None:
        torch.save({"n_items": self.n_items, "arch": ARCH, "state": self.net.state_dict()}, folder / "sasrec.pt")

    def _load_state(self, folder: Path) -> None:
        stored = torch.load(folder / "sasrec.pt", weights_only=True)
        if stored.get("arch") != ARCH:
            raise ValueError(f"{folder} holds a SASRec of an older version; retrain it: `mmrec train {self.name} ...`.")
        self.n_items, state = stored["n_items"], stored["state"]
        if "content" in state:  # the hybrid: shapes from the stored buffers, values by load_state_dict
            content, warm = state["content"].numpy(), state["warm"][1:, 0].numpy()
            self.net = SASRecNet(self.n_items, self.config, content, warm)
        else:
            self.net = SASRecNet(self.n_items, self.config)
        self.net.load_state_dict(state)
        self.net.eval()


class ContentSASRec(SASRec):
    """SASRec whose item vectors add a projection of the item's content vector (`data.item_features`)."""

    name = "content-sasrec"

    def _net(self, data: TrainData) -> SASRecNet:
        if data.item_features is None:
            raise ValueError("content-sasrec needs item text vectors; `mmrec graph DATASET` embeds the item texts.")
        return SASRecNet(data.n_items, self.config, data.item_features, data.item_counts() > 0)
