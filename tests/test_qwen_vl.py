"""Qwen2.5-VL through the `hf` engine without torchvision: a tiny random-weight model laid out as the Hub ships it.

Its processor also builds a video processor, which needs torchvision (absent here: no build exists for the CPU
torch), so AutoProcessor fails for it as for the real 3B/7B downloads; `engines.loading.load_processor` builds the
same processor for images only. Then: describe an image, score yes/no on the shared prefix, and with a LoRA adapter.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrec_core.config import SAMPLE_DATA_DIR, load_settings
from mmrec_core.engines import get_engine
from mmrec_core.engines.base import ItemText
from mmrec_core.engines.loading import load_processor
from tests.conftest import MODEL_CACHE
from tests.tiny_models import make_tiny_qwen25_vl, smollm2_tokenizer

NO_TORCHVISION = importlib.util.find_spec("torchvision") is None
PREFIX = "Customer profile: likes black dresses and denim.\nTheir last purchases:\n- Black midi dress\n"
SUFFIXES = ["Candidate item: Red wool coat\nWill they buy it?", "Candidate item: Blue jeans\nWill they buy it?"]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    smollm2_tokenizer(MODEL_CACHE)
    return make_tiny_qwen25_vl(tmp_path_factory.mktemp("qwen25vl"), MODEL_CACHE / "smollm2-tokenizer")


def engine_for(folder: Path, tmp_path: Path, adapter: str = ""):
    settings = load_settings(tmp_path / "engine")
    return get_engine(replace(settings, engine="hf", vlm=str(folder), device="cpu", adapter=adapter))


def photos() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted((SAMPLE_DATA_DIR / "images").glob("*.jpg"))[:2]]


@pytest.mark.skipif(not NO_TORCHVISION, reason="with torchvision AutoProcessor loads Qwen2.5-VL as it is")
def test_the_processor_loads_for_images_only_where_torchvision_is_missing(qwen_dir: Path) -> None:
    from transformers import AutoProcessor

    with pytest.raises(OSError, match="video processor"):
        AutoProcessor.from_pretrained(qwen_dir)  # the failure a user with real weights met
    processor = load_processor(str(qwen_dir))
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil" and processor.video_processor is None
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=[text], images=[photos()[0]], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == processor.image_token_id).sum())
    assert image_tokens == int(inputs["image_grid_thw"].prod()) // 4 > 0  # one token per merged 2x2 patch


def test_the_hf_engine_describes_photos_with_it(qwen_dir: Path, tmp_path: Path) -> None:
    engine = engine_for(qwen_dir, tmp_path)
    items = [ItemText("Black midi dress", "Dress", "A black dress.", {}), ItemText("Denim jacket", "Jacket", "", {})]
    described = engine.describe(photos(), items)
    assert len(described) == 2 and all(isinstance(d.text, str) for d in described)
    model, processor = engine.vision_model()
    assert type(processor).__mro__[1].__name__ == "Qwen2_5_VLProcessor"
    assert model.config.model_type == "qwen2_5_vl"


def test_shared_prefix_scores_equal_each_full_prompt(qwen_dir: Path, tmp_path: Path) -> None:
    """M-RoPE (three position sections) must continue the prefix's positions as the full prompt does."""
    engine = engine_for(qwen_dir, tmp_path)
    fast = engine.score_yes_no(PREFIX, SUFFIXES)
    naive = engine.lm.score_yes_no_naive(PREFIX, SUFFIXES)
    np.testing.assert_allclose(fast, naive, atol=1e-4)
    assert ((fast > 0) & (fast < 1)).all()


def test_a_lora_adapter_on_it_changes_the_scores(qwen_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(qwen_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    plain = engine_for(qwen_dir, tmp_path).score_yes_no(PREFIX, SUFFIXES)
    tuned = engine_for(qwen_dir, tmp_path, str(tmp_path / "adapter"))
    scores = tuned.score_yes_no(PREFIX, SUFFIXES)
    assert np.abs(scores - plain).max() > 1e-4  # the adapter is applied
    np.testing.assert_allclose(scores, tuned.lm.score_yes_no_naive(PREFIX, SUFFIXES), atol=1e-4)
