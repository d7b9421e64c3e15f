"""A scripted engine for tests of storage and pages: instant, deterministic, no model files.

It writes 'summaries' that name the items in the prompt, so tests can check which items reached
a prompt, and embeds texts as hashed bag-of-words vectors (texts sharing words are close).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from mmrec_core.config import Settings


class ScriptedEngine:
    name = "scripted"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prompts: list[str] = []

    def model_names(self) -> dict[str, str]:
        return {"llm": "scripted-llm", "vlm": "scripted-vlm", "embedder": "scripted-bow"}

    def provenance(self, task: str, prompt_version: str = "", **params) -> dict:
        return {
            "engine": self.name,
            "model": self.model_names()[task],
            "prompt_version": prompt_version,
            "params": params,
        }

    def generate(self, prompts: Sequence[str], options=None, system: str | None = None) -> list[str]:
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            items = re.findall(r"^- (.+?)(?: \(|$)", prompt, flags=re.M)
            out.append(f"This shopper keeps choosing {' and '.join(items)} in a consistent style.")
        return out

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vecs = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vecs[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
