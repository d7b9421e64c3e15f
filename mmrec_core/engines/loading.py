"""Loading Hugging Face models the same way for real and test models: local folders, quantization, adapters."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mmrec_core.config import CHOICES
from mmrec_core.engines.assets import MissingModelError

QUANTIZATIONS, DEVICES, DTYPES = CHOICES["quantization"], CHOICES["device"], CHOICES["dtype"]


def offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"Unknown device '{device}'; use one of {', '.join(DEVICES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but PyTorch sees no CUDA GPU; set device to 'auto' or 'cpu'.")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}.")
    if dtype == "auto":  # bf16 halves memory on GPUs that support it; CPUs are fastest and exact in fp32
        return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, dtype)


def quantization_config(quantization: str):
    """bitsandbytes settings: 4bit is QLoRA's NF4 with double quantization and bf16 compute (None: not bitsandbytes)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization '{quantization}'; use one of {', '.join(QUANTIZATIONS)}.")
    if quantization in ("none", "int8"):  # int8 is applied after loading (`quantize_for_cpu`)
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def resolve_model_source(name: str, setting: str) -> str:
    """A local folder, or a Hub id available here; otherwise one line saying where we looked and what to do."""
    if not name:
        raise MissingModelError(f"No model set for '{setting}'; set MMREC_{setting.upper()} to a Hub id or a folder.")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingModelError(
                f"Model folder {path.resolve()} has no config.json; point {setting} at the folder "
                "that save_pretrained() wrote (config.json, weights, tokenizer)."
            )
        return str(path)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path:
        raise MissingModelError(f"Model folder {path.resolve()} does not exist; fix {setting} or copy the model there.")
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if offline() and not isinstance(cached, str):
        raise MissingModelError(
            f"Model '{name}' is not a folder ({path.resolve()}) and not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and downloads are off (HF_HUB_OFFLINE); on a machine with internet run "
            f"`hf download {name} --local-dir DIR`, copy DIR here and set {setting} to it."
        )
    return name


def quantize_for_cpu(model, quantization: str):
    """`int8`: every linear layer with int8 weights and dynamically quantized int8 activations (CPU inference).

    Faster on CPUs with VNNI, at a cost in accuracy that `bench/pipeline_throughput.py` measures against fp32.
    Other settings leave the model as loaded.
    """
    if quantization != "int8":
        return model
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("quantization=int8 is for CPU inference; on CUDA use 8bit or 4bit (bitsandbytes).")
    import warnings

    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    model, head = model.float(), model.get_output_embeddings()
    # the output layer stays float: the yes/no scorer reads two of its rows (`scoring.py`)
    spec = {
        n: default_dynamic_qconfig for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head
    }
    with warnings.catch_warnings():  # torch.ao's dynamic quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def from_pretrained(auto_class, name: str, setting: str, device: str, dtype: str, quantization: str):
    """Load `name` with `auto_class` on the resolved device, dtype and bitsandbytes quantization."""
    source = resolve_model_source(name, setting)
    device = resolve_device(device)
    kwargs: dict = {"dtype": resolve_dtype(dtype, device), "device_map": {"": device}}
    if (quant := quantization_config(quantization)) is not None:
        kwargs["quantization_config"] = quant
    try:
        return auto_class.from_pretrained(source, local_files_only=offline(), **kwargs)
    except OSError as exc:  # e.g. a Hub id with the network down: keep it to one readable line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingModelError(f"Could not load model '{name}' for {setting}: {first}") from exc


def attach_adapter(model, adapter: str, trainable: bool = False):
    """Wrap `model` with a LoRA adapter folder written by PEFT (adapter_config.json + weights)."""
    if not adapter:
        return model
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise MissingModelError(
            f"Adapter folder {path.resolve()} has no adapter_config.json; set adapter to a "
            "folder saved by PEFT (e.g. a Train page run) or leave it empty."
        )
    from peft import PeftModel

    if trainable:  # training goes on from it (GRPO after SFT)
        return PeftModel.from_pretrained(model, str(path), is_trainable=True)
    wrapped = PeftModel.from_pretrained(model, str(path)).eval()
    if getattr(model, "is_quantized", False):  # merging into 4/8-bit weights would round the update away
        return wrapped
    return wrapped.merge_and_unload()  # scoring only: fold the update in, no LoRA branch per layer


def load_processor(source: str):
    """The VLM's processor. Qwen2-VL and Qwen2.5-VL processors also build a video processor, which needs torchvision;
    where torchvision is missing (no build exists for the CPU torch pinned here) the same processor class is built for
    images only: its PIL image processor, the tokenizer and the chat template, no video processor."""
    import importlib.util

    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source, local_files_only=offline())
    except (OSError, ImportError, ValueError) as exc:
        if importlib.util.find_spec("torchvision") is not None:
            raise
        try:
            return _images_only_processor(source)
        except Exception as again:
            raise again from exc


def images_only(processor_class: type) -> type:
    """`processor_class` without its video processor: built from an image processor and a tokenizer alone."""

    class ImagesOnly(processor_class):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

    return ImagesOnly


def _images_only_processor(source: str):
    import json

    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES, processor_class_from_name

    folder = Path(source)
    name = None
    for file in ("processor_config.json", "preprocessor_config.json"):
        if (folder / file).is_file():
            name = name or json.loads((folder / file).read_text(encoding="utf-8")).get("processor_class")
    if name is None:
        name = PROCESSOR_MAPPING_NAMES.get(AutoConfig.from_pretrained(source, local_files_only=offline()).model_type)
    base = processor_class_from_name(name) if name else None
    if base is None or "video_processor" not in base.get_attributes():
        raise ValueError(f"No processor could be loaded from {source}, and it is not one that only lacks video.")

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline())
    template = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "chat_template.json").is_file():
        template = json.loads((folder / "chat_template.json").read_text(encoding="utf-8"))["chat_template"]
    template = template or tokenizer.chat_template
    image = AutoImageProcessor.from_pretrained(source, local_files_only=offline())  # the PIL flavour, no torchvision
    processor = images_only(base)(image_processor=image, tokenizer=tokenizer, chat_template=template)
    processor.video_processor = None  # a video asked of it fails by name, not deep in the call
    return processor
