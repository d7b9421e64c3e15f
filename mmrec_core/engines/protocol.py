"""`Engine`: what every stage may ask of a model engine, as a `typing.Protocol`.

The real engines (`builtin`, `hf`, both on `base.BaseEngine`) satisfy it, and so does any stand-in
with the same methods (the tests' scripted engine), so stages type their `engine` parameter with it
and never import a model library themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from mmrec_core.config import Settings
from mmrec_core.core.prompts import PRODUCT, Domain
from mmrec_core.engines.base import Description, ItemText
from mmrec_core.engines.llm import GenerationOptions, Prompt


@runtime_checkable
class Engine(Protocol):
    name: str
    settings: Settings

    def model_names(self) -> dict[str, str]:
        """Which model serves each task: {"llm": ..., "vlm": ..., "embedder": ...}."""

    def provenance(self, task: str, prompt_version: str = "", **params: Any) -> dict:
        """engine, model, prompt_version and params: stored beside every output of `task`."""

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 sentence embeddings, one row per text."""

    def describe(
        self,
        images: Sequence[Image.Image],
        items: Sequence[ItemText],
        vocabulary: Sequence[str] = (),
        domain: Domain = PRODUCT,
        facts: Sequence[list] | None = None,
    ) -> list[Description]:
        """A description of each image, with its item's catalog text as context (and `visual_facts` if given)."""

    def describe_version(self) -> str:
        """The prompt (or fact-sheet) version `describe` writes with: provenance of every description."""

    def visual_facts(self, images: Sequence[Image.Image], vocabulary: Sequence[str] = ()) -> list[list] | None:
        """What the engine reads from the pixels before describing, or None when its describe model sees them.

        Safe to call from a second thread while the LLM works: textualization reads the next batch's facts then.
        """

    def generate(
        self, prompts: Sequence[Prompt], options: GenerationOptions | None = None, system: str | None = None
    ) -> list[str]:
        """Text for each prompt (a user message or a chat)."""

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        """p(yes)/(p(yes)+p(no)) per candidate; the user message is `prefix + suffix`."""

    def target_logprob(
        self, prompts: Sequence[Prompt], targets: Sequence[str], system: str | None = None
    ) -> np.ndarray:
        """Mean per-token log-probability of each target as the answer to its prompt."""

    def render_prompt(self, prompt: Prompt, system: str | None = None) -> str:
        """The exact text the LLM reads for `prompt`."""

    def count_tokens(self, prompt: Prompt, system: str | None = None) -> int:
        """Tokens of the rendered prompt."""

    def context_length(self) -> int:
        """The LLM's context window in tokens."""

    def llm_source(self) -> str:
        """The text LLM's folder or Hub id, to load a fresh trainable copy (fine-tuning)."""
