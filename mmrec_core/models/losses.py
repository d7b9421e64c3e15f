"""Next-item training losses for sequential models, given hidden states and the item embedding table.

- `ce`: softmax cross-entropy over the whole catalog (RecBole's default for SASRec; the strongest
  choice while a full score row fits, up to ~20k items on a CPU).
- `gbce`: gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023, eq. 8-10): k uniformly sampled
  negatives, the positive's probability raised to beta so that the model stays calibrated as if it
  had seen the whole catalog; for catalogs too large for `ce`.
- `bce`: the SASRec paper's BCE with one sampled negative per position (Kang & McAuley, eq. 7).
- `bpr_loss`: the pairwise loss of BPR-MF and LightGCN (Rendle et al., UAI 2009, eq. 5).

Every loss takes `hidden` (N, H): the states at the N positions that have a next item, `positive`
(N,): that item's row in `items` (the embedding table, row 0 the padding), and `negatives` (N, k):
sampled rows for the sampled losses (unused by `ce`).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("ce", "gbce", "bce")


def ce_loss(hidden: torch.Tensor, positive: torch.Tensor, items: torch.Tensor, negatives=None) -> torch.Tensor:
    logits = hidden @ items[1:].T  # every real item; row 0 is padding
    return F.cross_entropy(logits, positive - 1)


def bce_loss(
    hidden: torch.Tensor, positive: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = (hidden * items[positive]).sum(-1)
    neg = (hidden.unsqueeze(1) * items[negatives]).sum(-1)
    return -(F.logsigmoid(pos).mean() + F.logsigmoid(-neg).mean())


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (|I| - 1): t = 0 is plain BCE, t = 1 full calibration."""
    alpha = n_negatives / max(n_items - 1, 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce_loss(
    hidden: torch.Tensor, positive: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor, t: float = 0.75
) -> torch.Tensor:
    beta = gbce_beta(negatives.shape[1], items.shape[0] - 1, t)
    pos = (hidden * items[positive]).sum(-1)
    neg = (hidden.unsqueeze(1) * items[negatives]).sum(-1)
    # -log(sigmoid(pos) ** beta) - sum log(1 - sigmoid(neg)), averaged over positions
    return -(beta * F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()


def bpr_loss(user: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(u . i - u . j): the bought item i above the sampled one j, per row."""
    return -F.logsigmoid((user * positive).sum(-1) - (user * negative).sum(-1)).mean()
