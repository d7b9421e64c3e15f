"""What the real engines share (`BaseEngine`): lazy, locked model loading, embeddings, generation, scoring.

The protocol the stages type against is `protocol.Engine`: embed, describe, generate, score yes/no.

An engine loads its models lazily (the app starts fast; the CLI `info` never loads a model) and once per
process. Every output a stage stores carries `engine.provenance(task)`, so two engines' or two prompt
versions' results can sit side by side.
"""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from mmrec_core.config import Settings
from mmrec_core.core.prompts import PRODUCT, Domain, Template
from mmrec_core.engines.llm import GenerationOptions, Prompt, TextLM

# The describe prompt is the engines' own (each wraps it for its model); its wording names the catalog's domain.
DESCRIBE = Template(
    version="describe-v2",
    system=(
        "You write short, factual {item} descriptions for a {name} catalog. Use only the information given. "
        "Do not invent brands, sizes or prices."
    ),
    text="",
)


@dataclass
class ItemText:
    """What the catalog already says about an item: context for describing its image."""

    title: str = ""
    category: str = ""
    text: str = ""
    attributes: dict = field(default_factory=dict)  # the catalog's own fields, where it has them (H&M)

    def as_text(self) -> str:
        parts = [
            f"Title: {self.title}" if self.title else "",
            f"Category: {self.category}" if self.category else "",
            f"Details: {self.text}" if self.text else "",
        ]
        return "\n".join(p for p in parts if p) or "(no catalog text)"


@dataclass
class Description:
    """A generated item description and the evidence it was written from."""

    text: str
    facts: list = field(default_factory=list)  # visual facts with confidences (builtin engine), else empty
    prompt_version: str = DESCRIBE.version


class BaseEngine(ABC):
    """Base class: text LLM and embedder handling shared by all engines; subclasses load models and describe."""

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()  # one model call at a time: app sessions share the engine
        self._lm: TextLM | None = None
        self._embedder = None

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def _load_lm(self) -> TextLM: ...

    @abstractmethod
    def describe(
        self,
        images: Sequence[Image.Image],
        items: Sequence[ItemText],
        vocabulary: Sequence[str] = (),
        domain: Domain = PRODUCT,
        facts: Sequence[list] | None = None,
    ) -> list[Description]:
        """Describe each image, with its item's catalog text as context and `vocabulary` as the catalog's terms."""

    def with_describer(self, describer: str) -> BaseEngine:
        """This engine writing descriptions another way (Settings.describer), sharing its loaded models."""
        self.lm  # noqa: B018 (load once here, so the copies share it)
        clone = copy.copy(self)
        clone.settings = replace(self.settings, describer=describer)
        return clone

    def describe_version(self) -> str:
        """The prompt version `describe` writes with (stored as provenance; a change re-runs textualization)."""
        return DESCRIBE.version

    def visual_facts(self, images: Sequence[Image.Image], vocabulary: Sequence[str] = ()) -> list[list] | None:
        """Facts read from the pixels ahead of `describe` (None: this engine's describe model sees the pixels)."""
        return None

    @abstractmethod
    def llm_source(self) -> str:
        """The text LLM's folder or Hub id, to load a fresh trainable copy (fine-tuning)."""

    @abstractmethod
    def model_names(self) -> dict[str, str]:
        """Which model serves each task: {"llm": ..., "vlm": ..., "embedder": ...}."""

    # -- shared behaviour ---------------------------------------------------------------------
    @property
    def lm(self) -> TextLM:
        with self._lock:
            if self._lm is None:
                self._lm = self._load_lm()
            return self._lm

    def _load_embedder(self):
        from sentence_transformers import SentenceTransformer

        from mmrec_core.engines.assets import minilm_dir
        from mmrec_core.engines.loading import offline, resolve_device, resolve_model_source

        source = resolve_model_source(self.settings.embedder, "embedder") if self.settings.embedder else minilm_dir()
        return SentenceTransformer(str(source), device=resolve_device(self.settings.device), local_files_only=offline())

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 sentence embeddings, one row per text."""
        with self._lock:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            if not texts:
                dim = getattr(self._embedder, "get_embedding_dimension", None)  # renamed in sentence-transformers 6
                dim = dim() if dim else self._embedder.get_sentence_embedding_dimension()
                return np.zeros((0, dim), dtype=np.float32)
            vecs = self._embedder.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vecs.astype(np.float32)

    def generate(
        self, prompts: Sequence[Prompt], options: GenerationOptions | None = None, system: str | None = None
    ) -> list[str]:
        """Text for each prompt (a user message or a chat), chat template applied when the model has one."""
        with self._lock:
            return self.lm.generate(prompts, options, system)

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        """p(yes)/(p(yes)+p(no)) per candidate; the user message is `prefix + suffix`, the prefix computed once."""
        with self._lock:
            return self.lm.score_yes_no(prefix, suffixes, system, batch_size=self.settings.score_batch_size)

    def render_prompt(self, prompt: Prompt, system: str | None = None) -> str:
        """The exact text the LLM reads for `prompt` (chat template and system message applied)."""
        return self.lm.render(prompt, system)

    def count_tokens(self, prompt: Prompt, system: str | None = None) -> int:
        """Tokens of the rendered prompt: what must fit in the model's context."""
        return self.lm.count_tokens(prompt, system)

    def context_length(self) -> int:
        """The LLM's context window in tokens."""
        return self.lm.context_length()

    def target_logprob(
        self, prompts: Sequence[Prompt], targets: Sequence[str], system: str | None = None
    ) -> np.ndarray:
        """Mean per-token log-probability of each target as the LLM's answer to its prompt (for R_recon)."""
        with self._lock:
            return self.lm.target_logprob(prompts, targets, system)

    def provenance(self, task: str, prompt_version: str = "", **params) -> dict:
        """What to store beside an output of `task` ("llm", "vlm" or "embedder"): engine, model, parameters."""
        s = self.settings
        base = {"quantization": s.quantization, "device": s.device, "dtype": s.dtype}
        if task != "embedder" and s.adapter:
            base["adapter"] = s.adapter
        return {
            "engine": self.name,
            "model": self.model_names()[task],
            "prompt_version": prompt_version,
            "params": {**base, **params},
        }
