"""`mmrec eval ablations`: what each part of the LLM's context is worth, as paired eval runs.

The papers report their pipelines with one part taken away at a time (MLLM-MSR and MLLMRec: without
images; MMSRARec: without similar users and keywords against full descriptions; MLLMRec: without the
profile). Here each ablation is the LLM recommender with one setting of `RecommendConfig` changed,
scored by `evaluate_llm` on the protocol's stored candidates, so every run is compared user by user with
the full prompt (`mmrec report --markdown`: "Ablations"). The full setting is scored first; stored scores
are read back, so a re-run only scores what is missing.

The item-graph model's ablation is a model of its own, `lightgcn-no-graph` (`mmrec train lightgcn-no-graph D`,
then `mmrec eval lightgcn-no-graph D`), reported against `lightgcn` in the same section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mmrec_core.core.progress import Progress
from mmrec_core.engines.protocol import Engine
from mmrec_core.evaluate.llm import LLMEvalResult, evaluate_llm
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.store.workspace import Workspace

# name -> the settings it changes (everything else as the full setting)
ABLATIONS: dict[str, dict] = {
    "no-images": {"item_text": "catalog-keywords"},
    "catalog-text": {"item_text": "catalog"},
    "descriptions": {"item_text": "description"},
    "no-profile": {"profile": False},
    "no-similar": {"n_similar": 0},
}
# trained models that are ablations of another: method -> (the full model, what was taken away)
MODEL_ABLATIONS = {"lightgcn-no-graph": ("lightgcn", "without the item graph")}
# what the leaderboard says of a run with an item text other than keywords
ITEM_TEXT_NAMES = {
    "catalog-keywords": "without images",
    "catalog": "catalog text, no textualization",
    "description": "descriptions instead of keywords",
}


def full_setting(method: str, params: dict) -> tuple[str, dict]:
    """A run's method and params with its ablation settings back at the full setting's."""
    if method in MODEL_ABLATIONS:
        return MODEL_ABLATIONS[method][0], params
    ablated = {"profile", "item_text", *(("n_similar",) if params.get("n_similar") == 0 else ())}
    return method, {k: v for k, v in params.items() if k not in ablated}


def ablation_name(params: dict, method: str = "") -> str:
    """How a run's settings (its method and stored params) differ from the full setting: '' when they do not."""
    if method in MODEL_ABLATIONS:
        return MODEL_ABLATIONS[method][1]
    parts = []
    if params.get("item_text", "keywords") != "keywords":
        parts.append(ITEM_TEXT_NAMES.get(params["item_text"], f"item text {params['item_text']}"))
    if params.get("profile") is False:
        parts.append("without profiles")
    if params.get("n_similar") == 0:
        parts.append("without similar customers")
    return ", ".join(parts)


def run_ablations(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: RecommendConfig | None = None,
    n_users: int | None = None,
    names: list[str] | None = None,
    progress_for: Callable[[str], Progress | None] = lambda _name: None,
) -> list[tuple[str, LLMEvalResult]]:
    """The full setting (`config`), then each ablation (all, or `names`), each an eval run on the same users."""
    config = config or RecommendConfig()
    unknown = sorted(set(names or ()) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"Unknown ablation(s) {unknown}; use: {', '.join(ABLATIONS)}.")
    if ablation_name({"item_text": config.item_text, "profile": config.profile, "n_similar": config.n_similar}):
        raise ValueError("The full setting must show every part of the context (profile, keywords, similar customers).")
    settings = [("full", config), *((n, replace(config, **ABLATIONS[n])) for n in names or ABLATIONS)]
    return [
        (name, evaluate_llm(ws, engine, dataset, protocol_id, setting, n_users, progress=progress_for(name)))
        for name, setting in settings
    ]
