"""A scripted engine for tests of storage and pages: instant, deterministic, no model files.

It writes 'summaries' that name the items in the prompt, so tests can check which items reached
a prompt, and embeds texts as hashed bag-of-words vectors (texts sharing words are close).
"""

from __future__ import annotations

import hashlib
import re
import zlib
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
            "params": {**params, "adapter": self.settings.adapter} if self.settings.adapter else params,
        }

    def generate(self, prompts: Sequence[str], options=None, system: str | None = None) -> list[str]:
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            prompt = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            if "Candidate item" in prompt:
                out.append(self._answer(prompt))
                continue
            items = re.findall(r"^- (.+?)(?: \(|$)", prompt, flags=re.M)
            out.append(f"This shopper keeps choosing {' and '.join(items)} in a consistent style.")
        return out

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vecs = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vecs[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def visual_facts(self, images, vocabulary: Sequence[str] = ()) -> None:
        return None

    def describe_version(self) -> str:
        return "scripted-describe-v1"

    def describe(self, images, items, vocabulary: Sequence[str] = (), domain=None, facts=None) -> list:
        """A 'description' naming the image size and the item's title (no model looks at the pixels)."""
        from mmrec_core.engines.base import Description

        return [
            Description(f"A {im.width}x{im.height} picture of {it.title or 'an item'}.")
            for im, it in zip(images, items, strict=True)
        ]

    def target_logprob(self, prompts, targets: Sequence[str], system: str | None = None) -> np.ndarray:
        """Higher when the target shares words with its prompt (like a model rebuilding a text)."""
        texts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        return np.log(np.asarray([_overlap(p, t) for p, t in zip(texts, targets, strict=True)], dtype=np.float32))

    def llm_source(self) -> str:
        raise NotImplementedError("the scripted engine has no weights to fine-tune; use a tiny model (tiny_models.py)")

    # -- the recommender's calls ---------------------------------------------------------------
    # Scores and answers follow word overlap between a candidate and the context, so tests can
    # predict them; every listwise prompt whose context has an odd number of words gets an
    # out-of-range answer, so the invalid-answer path is exercised too.
    def render_prompt(self, prompt, system: str | None = None) -> str:
        text = prompt if isinstance(prompt, str) else "\n\n".join(m["content"] for m in prompt)
        return f"[system] {system}\n[user] {text}\n[assistant]" if system else f"[user] {text}\n[assistant]"

    def count_tokens(self, prompt, system: str | None = None) -> int:
        return len(self.render_prompt(prompt, system).split())

    def context_length(self) -> int:
        return 2048

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        self.prompts.extend(prefix + s for s in suffixes)
        return np.asarray([_overlap(prefix, s) for s in suffixes], dtype=np.float32)

    def _answer(self, prompt: str) -> str:
        if "Candidate items:" in prompt:
            context, listing = prompt.split("Candidate items:", 1)
            lines = re.findall(r"^\[(\d+)\] (.+)$", listing, flags=re.M)
            if len(context.split()) % 2:
                return f"<think>I am unsure.</think><answer>{len(lines) + 5}</answer>"
            best = max(lines, key=lambda nl: _overlap(context, nl[1]))
            return f"<think>The customer often buys {best[1].split(':')[0]}.</think><answer>{best[0]}</answer>"
        if "Candidate item:" in prompt:
            name = re.search(r"Candidate item: ([^:\n]+)", prompt).group(1)
            return f"The customer likes items like {name}. It is a red wool coat."
        return ""


def _overlap(context: str, candidate: str) -> float:
    words = set(re.findall(r"\w+", context.lower()))
    mine = re.findall(r"\w+", candidate.lower().split("will this customer")[0])
    return (sum(w in words for w in mine) + 0.5) / (len(mine) + 1.0)


class TunedScripted(ScriptedEngine):
    """Stands in for the LLM with an adapter: other scores (overlap squared plus a per-candidate jitter)."""

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        base = super().score_yes_no(prefix, suffixes, system)
        jitter = np.asarray([zlib.crc32(s.encode()) % 1000 / 5000 for s in suffixes], dtype=np.float32)
        return base**2 + jitter
