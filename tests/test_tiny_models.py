"""The tiny test models (tests/tiny_models.py) load and run through the ordinary Hugging Face Auto* code paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BitsAndBytesConfig,
)

from mmrec_core.config import SAMPLE_DATA_DIR
from tests.conftest import MODEL_CACHE
from tests.tiny_models import CAUSAL_ARCHS, TEXT_DIMS, make_tiny_causal_lm, make_tiny_vlm, smollm2_tokenizer

SMOLLM2_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
)
IMAGE_MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this product."}]}]
TEXT_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Is this a dress? Answer yes or no."}]}]


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    smollm2_tokenizer(MODEL_CACHE)
    return MODEL_CACHE / "smollm2-tokenizer"


@pytest.fixture(scope="module", params=CAUSAL_ARCHS)
def causal_lm_dir(request, tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param, tokenizer_dir)


@pytest.fixture(scope="module", params=[False, True], ids=["one-crop", "split"])
def vlm_dir(request, tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_vlm(tmp_path_factory.mktemp("idefics3"), tokenizer_dir=tokenizer_dir, split_images=request.param)


@pytest.fixture(scope="module")
def vlm(vlm_dir: Path):
    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir).eval()
    return processor, model


def sample_image() -> Image.Image:
    return Image.open(sorted((SAMPLE_DATA_DIR / "images").glob("*.jpg"))[0]).convert("RGB")


def assert_decoder_scores_match_logits(model, inputs: dict) -> None:
    """Decoder hidden state x selected lm_head rows == the full model's logits (how the project scores yes/no)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    rows = torch.tensor([0, 5, 100])
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits[:, -1, rows]
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model.get_decoder()(
            input_ids=ids, attention_mask=mask, position_ids=position_ids, past_key_values=None, use_cache=True
        )
        picked = out.last_hidden_state[:, -1] @ model.get_output_embeddings().weight[rows].T
    assert out.past_key_values is not None
    torch.testing.assert_close(picked, full, rtol=1e-4, atol=1e-4)


def test_tokenizer_is_smollm2(tokenizer_dir: Path):
    tokenizer = smollm2_tokenizer(MODEL_CACHE)
    assert len(tokenizer) == 49152
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]


def test_causal_lm_loads_chats_and_generates(causal_lm_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(causal_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(causal_lm_dir).eval()
    assert type(model).__name__ in ("LlamaForCausalLM", "Qwen2ForCausalLM")
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # GQA, as in the real models
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == SMOLLM2_PROMPT
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5  # random weights: eos is essentially never sampled
    assert_decoder_scores_match_logits(model, inputs)


def test_vlm_config_matches_processor(vlm):
    processor, model = vlm
    tokenizer = processor.tokenizer
    assert type(model).__name__ == "Idefics3ForConditionalGeneration"
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>") == processor.image_token_id
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    for tag in ("<fake_token_around_image>", "<global-img>", "<row_1_col_1>"):
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("image", ["sample", "300x200"])
def test_vlm_generates_from_image(vlm, image: str):
    processor, model = vlm
    picture = sample_image() if image == "sample" else Image.new("RGB", (300, 200), (180, 40, 40))
    prompt = processor.apply_chat_template(IMAGE_MESSAGES, add_generation_prompt=True)
    assert prompt == "<|im_start|>User:<image>Describe this product.<end_of_utterance>\nAssistant:"
    inputs = processor(text=prompt, images=[[picture]], return_tensors="pt")
    crops = inputs["pixel_values"].shape[1]
    assert inputs["pixel_values"].shape[-2:] == (64, 64)
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 4 * crops
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


def test_vlm_runs_text_only_and_scores_through_its_decoder(vlm):
    processor, model = vlm
    prompt = processor.apply_chat_template(TEXT_MESSAGES, add_generation_prompt=True)
    assert prompt == "<|im_start|>User: Is this a dress? Answer yes or no.<end_of_utterance>\nAssistant:"
    inputs = processor(text=prompt, return_tensors="pt")
    assert "pixel_values" not in inputs
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5
    assert type(model.get_decoder()).__name__ == "LlamaModel"
    assert model.get_output_embeddings() is model.lm_head
    assert_decoder_scores_match_logits(model, inputs)


def test_causal_lm_loads_in_4bit_on_cpu(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    import bitsandbytes as bnb

    folder = make_tiny_causal_lm(tmp_path_factory.mktemp("llama4bit"), "llama", tokenizer_dir)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map="cpu")
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[1, 28, 2, 198]])).logits
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        pytest.skip(f"bitsandbytes 4-bit does not run on this CPU: {type(exc).__name__}: {exc}")
    quantized = [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert len(quantized) == 7 * TEXT_DIMS["num_hidden_layers"]  # q k v o gate up down; the tied lm_head stays
    assert logits.shape == (1, 4, 49152)
    assert torch.isfinite(logits).all()
