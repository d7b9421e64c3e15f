"""Repeat: the customer's own past items first (most often bought, then most recent), then popularity.

The floor any sequential model must clear where customers re-buy (H&M basics, groceries): it needs no
training beyond item counts, and on repeat targets it is hard to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmrec_core.models.popularity import Popularity


@dataclass
class RepeatConfig:
    pass


class Repeat(Popularity):
    """Popularity's item counts (its `fit` and state), scored with the customer's own items on top."""

    name = "repeat"

    def score(self, users: list[str], histories: list[list[int]]) -> np.ndarray:
        # popularity squeezed into [0, 1): below every history item, whose score is at least 1
        base = self.counts / (self.counts.max() + 1.0) if len(self.counts) else self.counts
        scores = np.tile(base, (len(users), 1))
        for row, history in enumerate(histories):
            if not history:
                continue
            times = np.bincount(history, minlength=self.n_items)
            last = np.zeros(self.n_items)  # the newest position of each item, scaled into (0, 1)
            np.maximum.at(last, history, (np.arange(len(history)) + 1) / (len(history) + 1))
            seen = times > 0
            scores[row, seen] = 1.0 + times[seen] + last[seen]  # count first; recency (< 1) breaks ties
        return scores
