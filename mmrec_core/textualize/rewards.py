"""Summary-quality rewards for an item's keyword set (MMSRARec), shared by textualization and GRPO.

A good keyword set is informative (close in meaning to the source text), lets the LLM rebuild the
source text, and is short:

    R_info  = cos(e(keywords), e(source))                       sentence embeddings, in [-1, 1]
    R_recon = exp(mean_t log p(source_t | keywords, source_<t))  1 / perplexity of the source, in (0, 1]
    R_len   = -n_keywords / keyword_budget                       0 for none, -1 at the budget
    reward  = w_info * R_info + w_recon * R_recon + w_len * R_len
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmrec_core.config import Settings
from mmrec_core.core.prompts import PRODUCT, Domain
from mmrec_core.engines import Engine
from mmrec_core.textualize.prompts import RECONSTRUCT

REWARD_VERSION = "rewards-v1"


@dataclass(frozen=True)
class Rewards:
    r_info: float
    r_recon: float
    r_len: float
    reward: float


def keywords_text(keywords: Sequence[str]) -> str:
    return ", ".join(keywords)


def length_reward(keywords: Sequence[str], budget: int) -> float:
    return -len(keywords) / max(budget, 1)


def keyword_rewards(
    engine: Engine,
    keyword_sets: Sequence[Sequence[str]],
    sources: Sequence[str],
    settings: Settings,
    domain: Domain = PRODUCT,
) -> list[Rewards]:
    """Rewards of each keyword set against its source text (one embedding batch, one LLM batch)."""
    if len(keyword_sets) != len(sources):
        raise ValueError(f"{len(keyword_sets)} keyword sets but {len(sources)} source texts.")
    if not sources:
        return []
    w_info, w_recon, w_len = settings.reward_weight_values
    texts = [keywords_text(k) or "(none)" for k in keyword_sets]
    vectors = engine.embed([*texts, *sources])
    r_info = np.sum(vectors[: len(texts)] * vectors[len(texts) :], axis=1)
    prompts = [RECONSTRUCT.format(domain, keywords=t) for t in texts]
    r_recon = np.exp(engine.target_logprob(prompts, [s or "(empty)" for s in sources]))
    out = []
    for keywords, info, recon in zip(keyword_sets, r_info, r_recon, strict=True):
        r_len = length_reward(keywords, settings.keyword_budget)
        total = w_info * float(info) + w_recon * float(recon) + w_len * r_len
        out.append(Rewards(float(info), float(recon), r_len, total))
    return out


def reward_params(settings: Settings) -> dict:
    """What the rewards depend on, stored as provenance beside them."""
    w_info, w_recon, w_len = settings.reward_weight_values
    return {
        "reward_version": f"{REWARD_VERSION}/{RECONSTRUCT.version}",
        "weights": [w_info, w_recon, w_len],
        "budget": settings.keyword_budget,
    }
