"""Model engines: one protocol (embed, describe, generate, score yes/no), two implementations.

engine = get_engine(settings)          # builtin (offline, default) or hf, from the settings
engine.score_yes_no(prefix, suffixes)  # p(yes)/(p(yes)+p(no)) per candidate
engine.provenance("llm", "rec-v1")     # store this beside every output
"""

from __future__ import annotations

import threading

from mmrec_core.config import CHOICES, Settings
from mmrec_core.engines.assets import MissingModelError
from mmrec_core.engines.base import BaseEngine, Description, ItemText
from mmrec_core.engines.llm import GenerationOptions
from mmrec_core.engines.protocol import Engine

ENGINES = CHOICES["engine"]
_cache: dict[tuple, BaseEngine] = {}
_cache_lock = threading.Lock()

__all__ = [
    "ENGINES",
    "BaseEngine",
    "Description",
    "Engine",
    "GenerationOptions",
    "ItemText",
    "MissingModelError",
    "get_engine",
]


def get_engine(settings: Settings) -> Engine:
    """The engine for these settings, created once per process (models inside load on first use)."""
    if settings.engine not in ENGINES:
        raise ValueError(f"Unknown engine '{settings.engine}'; use one of {', '.join(ENGINES)}.")
    key = (str(settings.model_cache_dir), *sorted(settings.provenance().items()))
    with _cache_lock:
        if key not in _cache:
            if settings.engine == "builtin":
                from mmrec_core.engines.builtin import BuiltinEngine

                _cache[key] = BuiltinEngine(settings)
            else:
                from mmrec_core.engines.hf import HFEngine

                _cache[key] = HFEngine(settings)
        return _cache[key]
