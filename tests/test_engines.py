"""Engines: settings, clear errors for missing models, and the builtin engine end to end on real data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrec_core.config import SAMPLE_DATA_DIR, load_settings, save_settings
from mmrec_core.engines import GenerationOptions, ItemText, MissingModelError, get_engine
from mmrec_core.engines.hf import HFEngine
from mmrec_core.grounding import check

# A realistic recommendation prompt: profile + history in the shared prefix, ragged candidate suffixes.
PREFIX = (
    "Customer profile: prefers dark, plain basics in cotton; buys mostly trousers and tops.\n"
    "Recent purchases: black slim jeans; dark blue hoodie; white t-shirt; black ankle socks; grey sweater.\n"
    "Candidate item: "
)
CANDIDATES = [
    "black jersey t-shirt",
    "light pink floral summer dress with lace details, thin straps and a flared skirt in soft viscose",
    "socks",
    "dark blue denim jacket with metal buttons",
    "bikini top",
]
QUESTION = "\nWill the customer buy the candidate item? Answer Yes or No."


def sample_images(n: int) -> tuple[list[Image.Image], list[ItemText]]:
    import pandas as pd

    articles = pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str).head(n)
    images = [Image.open(SAMPLE_DATA_DIR / "images" / f"{a}.jpg") for a in articles["article_id"]]
    items = [ItemText(title=r.prod_name, category=r.product_type_name) for r in articles.itertuples()]
    return images, items


# -- settings ---------------------------------------------------------------------------------


def test_settings_reject_bad_values_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MMREC_QUANTIZATION", "3bit")
    with pytest.raises(ValueError, match=r"quantization='3bit' is not one of: none, 8bit, 4bit"):
        load_settings(tmp_path)
    monkeypatch.setenv("MMREC_QUANTIZATION", "4bit")
    monkeypatch.setenv("MMREC_SCORE_BATCH_SIZE", "many")
    with pytest.raises(ValueError, match="score_batch_size='many' must be a whole number"):
        load_settings(tmp_path)
    monkeypatch.setenv("MMREC_SCORE_BATCH_SIZE", "8")
    assert load_settings(tmp_path).score_batch_size == 8


def test_saved_settings_reload_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MMREC_ENGINE", raising=False)
    saved = save_settings(load_settings(tmp_path), engine="hf", llm="/models/x", score_batch_size=4)
    assert (saved.engine, saved.llm, saved.score_batch_size) == ("hf", "/models/x", 4)
    assert json.loads((tmp_path / "settings.json").read_text())["llm"] == "/models/x"
    monkeypatch.setenv("MMREC_ENGINE", "builtin")
    assert load_settings(tmp_path).engine == "builtin"
    with pytest.raises(ValueError, match="Not an engine setting"):
        save_settings(saved, data_dir="/elsewhere")


def test_provenance_names_engine_model_prompt_and_parameters(builtin_engine):
    prov = builtin_engine.provenance("llm", "rec-v1", temperature=0.0)
    assert prov["engine"] == "builtin" and "SmolLM2-135M-Instruct" in prov["model"]
    assert prov["prompt_version"] == "rec-v1"
    assert prov["params"]["temperature"] == 0.0 and prov["params"]["quantization"] == "none"
    assert "all-MiniLM-L6-v2" in builtin_engine.provenance("embedder")["model"]


# -- missing models: one readable line saying where we looked -----------------------------------


def hf_engine(tmp_path: Path, **settings) -> HFEngine:
    return get_engine(replace(load_settings(tmp_path), engine="hf", **settings))


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"llm": "/no/such/model"}, r"Model folder /no/such/model does not exist"),
        ({"llm": "someorg/not-downloaded-7b"}, r"'someorg/not-downloaded-7b' is not a folder .* not in the Hugging"),
        ({}, r"The hf engine has no model: set llm"),
        ({"llm": "{empty}"}, r"has no config.json"),
    ],
    ids=["missing-folder", "hub-id-offline", "nothing-set", "folder-without-config"],
)
def test_missing_model_is_one_clear_line(tmp_path, monkeypatch, settings, expected):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if settings.get("llm") == "{empty}":
        (tmp_path / "empty").mkdir()
        settings = {"llm": str(tmp_path / "empty")}
    engine = hf_engine(tmp_path, **settings)
    with pytest.raises(MissingModelError, match=expected) as err:
        engine.generate(["hello"])
    assert "\n" not in str(err.value)


def test_missing_adapter_and_vlm_are_clear(tmp_path, builtin_engine):
    engine = get_engine(replace(builtin_engine.settings, adapter=str(tmp_path / "no-adapter")))
    with pytest.raises(MissingModelError, match="no-adapter has no adapter_config.json"):
        engine.score_yes_no(PREFIX, CANDIDATES)
    with pytest.raises(MissingModelError, match="needs a vision-language model"):
        hf_engine(tmp_path).describe(*sample_images(1))


def test_engine_is_created_once_per_settings(builtin_engine):
    assert get_engine(builtin_engine.settings) is builtin_engine
    assert get_engine(replace(builtin_engine.settings, score_batch_size=3)) is not builtin_engine


# -- the builtin engine, end to end (offline, CPU) ------------------------------------------------


@pytest.mark.slow
def test_builtin_llm_loads_from_the_cached_copy_without_the_gguf(builtin_engine, monkeypatch):
    import mmrec_core.engines.builtin as builtin

    def no_gguf():
        raise AssertionError("the GGUF must not be read again once the safetensors copy exists")

    monkeypatch.setattr(builtin, "smollm2_gguf", no_gguf)
    engine = get_engine(replace(builtin_engine.settings, score_batch_size=7))  # a fresh engine, same cache
    assert engine.lm.model.config.model_type == "llama"
    assert (builtin.smollm2_cache_dir(engine.settings.model_cache_dir) / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_processes_converting_the_gguf_at_once_share_one_copy(builtin_engine, tmp_path, monkeypatch):
    """A Ray job's actors may convert at the same time: the one that finishes second uses the first one's copy."""
    import shutil

    import mmrec_core.engines.builtin as builtin

    done = builtin.smollm2_cache_dir(builtin_engine.settings.model_cache_dir)
    rename = Path.rename

    def beaten_to_it(self, target):  # the other process's copy lands just before ours
        shutil.copytree(done, target)
        return rename(self, target)  # fails: the target exists and is not empty

    monkeypatch.setattr(Path, "rename", beaten_to_it)
    copy = builtin.ensure_smollm2_copy(tmp_path / "cache")
    assert (copy / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [copy.name]  # our half copy is gone


@pytest.mark.slow
def test_builtin_generation_is_greedy_chat_and_repeatable(builtin_engine):
    rendered = builtin_engine.lm.render("Name a colour.", system="Be brief.")
    assert rendered.startswith("<|im_start|>system\nBe brief.") and rendered.endswith("<|im_start|>assistant\n")
    options = GenerationOptions(max_new_tokens=12)
    first = builtin_engine.generate(["Name a colour.", "What is a sweater?"], options)
    assert (
        len(first) == 2
        and all(first)
        and first == builtin_engine.generate(["Name a colour.", "What is a sweater?"], options)
    )
    sampled = builtin_engine.generate(["Name a colour."], GenerationOptions(max_new_tokens=12, do_sample=True, seed=3))
    assert sampled == builtin_engine.generate(
        ["Name a colour."], GenerationOptions(max_new_tokens=12, do_sample=True, seed=3)
    )


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [32, 2])
def test_builtin_shared_prefix_scores_equal_single_unpadded_prompts(builtin_engine, batch_size):
    suffixes = [c + QUESTION for c in CANDIDATES]
    lm = builtin_engine.lm
    prefix_ids, suffix_ids = lm.encode_candidates(PREFIX, suffixes)
    assert len({len(s) for s in suffix_ids}) >= 3  # ragged: padding must not shift positions
    fast = lm.score_yes_no(PREFIX, suffixes, batch_size=batch_size)
    reference = lm.score_yes_no_naive(PREFIX, suffixes)
    assert np.abs(fast - reference).max() <= 1e-4
    assert ((fast > 0) & (fast < 1)).all() and np.ptp(fast) > 1e-3  # real, candidate-dependent probabilities


@pytest.mark.slow
def test_builtin_embeddings_are_normalised_and_meaningful(builtin_engine):
    vecs = builtin_engine.embed(["black denim jeans", "dark trousers made of denim", "pink bikini top"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert builtin_engine.embed([]).shape == (0, 384)


# -- the hf engine on tiny random-weight models of real architectures ------------------------------


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders laid out like Hub downloads: two text LLMs, a SmolVLM-style VLM, and a LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tests.conftest import MODEL_CACHE
    from tests.tiny_models import make_tiny_causal_lm, make_tiny_vlm, smollm2_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    tok_dir = MODEL_CACHE / "smollm2-tokenizer"
    smollm2_tokenizer(MODEL_CACHE)
    dirs = {
        "llama": make_tiny_causal_lm(root / "llama", "llama", tokenizer_dir=tok_dir),
        "qwen2": make_tiny_causal_lm(root / "qwen2", "qwen2", tokenizer_dir=tok_dir),
        "idefics3": make_tiny_vlm(root / "idefics3", tokenizer_dir=tok_dir),
    }
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # non-zero: it must show
    get_peft_model(AutoModelForCausalLM.from_pretrained(dirs["llama"]), lora).save_pretrained(root / "lora")
    dirs["lora"] = root / "lora"
    return dirs


# One row per way a text LLM reaches the engine (PEFT-style shared table of cases).
TEXT_CASES = {
    "llama": {"llm": "llama"},
    "qwen2": {"llm": "qwen2"},
    "idefics3-as-llm": {"vlm": "idefics3"},
    "llama+lora": {"llm": "llama", "adapter": "lora"},
}


def tiny_engine(tmp_path: Path, tiny_models: dict[str, Path], case: dict, **extra) -> HFEngine:
    settings = {key: str(tiny_models[name]) for key, name in case.items()}
    return hf_engine(tmp_path, device="cpu", dtype="float32", score_batch_size=2, **settings, **extra)


@pytest.mark.parametrize("case", TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_hf_shared_prefix_scores_equal_single_unpadded_prompts(tmp_path, tiny_models, case):
    engine = tiny_engine(tmp_path, tiny_models, case)
    suffixes = [c + QUESTION for c in CANDIDATES]
    fast = engine.score_yes_no(PREFIX, suffixes, system="You are a recommender.")  # 3 batches of <= 2
    reference = engine.lm.score_yes_no_naive(PREFIX, suffixes, system="You are a recommender.")
    assert np.abs(fast - reference).max() <= 1e-4
    assert len({len(s) for s in engine.lm.encode_candidates(PREFIX, suffixes)[1]}) >= 3  # ragged
    assert "PREFIX" not in engine.lm.render(PREFIX) and "Customer profile" in engine.lm.render(PREFIX)


@pytest.mark.parametrize("case", TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_hf_generates_and_measures_target_likelihood(tmp_path, tiny_models, case):
    engine = tiny_engine(tmp_path, tiny_models, case)
    texts = engine.generate(["Name a colour.", "Describe a sweater in one line."], GenerationOptions(max_new_tokens=6))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    targets = ["Black slim jeans.", "A long pink summer dress with lace details and thin straps."]
    prompts = ["Keywords: jeans", "Keywords: dress"]
    batched = engine.target_logprob(prompts, targets)
    alone = [engine.target_logprob([p], [t])[0] for p, t in zip(prompts, targets, strict=True)]
    assert np.abs(batched - np.array(alone)).max() <= 1e-4 and (batched < 0).all()


def test_hf_adapter_changes_the_scores(tmp_path, tiny_models):
    base = tiny_engine(tmp_path, tiny_models, TEXT_CASES["llama"]).score_yes_no(PREFIX, CANDIDATES)
    adapted = tiny_engine(tmp_path, tiny_models, TEXT_CASES["llama+lora"]).score_yes_no(PREFIX, CANDIDATES)
    assert np.abs(base - adapted).max() > 1e-4
    assert "adapter" in tiny_engine(tmp_path, tiny_models, TEXT_CASES["llama+lora"]).provenance("llm")["params"]


def test_hf_4bit_loads_with_bitsandbytes_on_cpu(tmp_path, tiny_models):
    pytest.importorskip("bitsandbytes")
    engine = tiny_engine(tmp_path, tiny_models, TEXT_CASES["llama"], quantization="4bit")
    try:
        lm = engine.lm
    except (RuntimeError, ImportError, ValueError) as exc:
        pytest.skip(f"bitsandbytes 4-bit does not load on this machine: {exc}")
    layers = [m for m in lm.model.modules() if type(m).__name__ == "Linear4bit"]
    assert layers and layers[0].weight.quant_type == "nf4"
    scores = engine.score_yes_no(PREFIX, CANDIDATES)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    assert engine.provenance("llm")["params"]["quantization"] == "4bit"


def test_hf_vlm_describes_real_images(tmp_path, tiny_models):
    engine = hf_engine(tmp_path, vlm=str(tiny_models["idefics3"]), device="cpu", dtype="float32")
    images, items = sample_images(3)
    descriptions = engine.describe(images, items, options=GenerationOptions(max_new_tokens=5, batch_size=2))
    assert len(descriptions) == 3 and all(isinstance(d.text, str) and d.text for d in descriptions)
    assert engine.provenance("vlm", descriptions[0].prompt_version)["model"] == str(tiny_models["idefics3"])


@pytest.mark.slow
def test_builtin_describes_real_images_from_visual_facts(builtin_engine):
    import pandas as pd

    images, items = sample_images(3)
    vocabulary = pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str)["product_type_name"].unique().tolist()
    descriptions = builtin_engine.describe(images, items, vocabulary=vocabulary)
    assert len(descriptions) == 3
    for description, item in zip(descriptions, items, strict=True):
        # the default describer writes from the fact sheet: the title, the catalog's product, nothing unsupported
        assert description.text.startswith(item.title) and description.prompt_version == "factsheet-v1"
        assert check(description.text, [item.title, item.category], description.facts).unsupported == []
        kinds = {f.kind for f in description.facts}
        assert "colour" in kinds and all(0 <= f.confidence <= 1 for f in description.facts)
    assert builtin_engine.provenance("vlm")["model"].startswith("visual-facts + SmolLM2")


def test_the_real_engines_and_the_scripted_one_satisfy_the_engine_protocol() -> None:
    from mmrec_core.config import Settings
    from mmrec_core.engines import Engine
    from mmrec_core.engines.builtin import BuiltinEngine
    from mmrec_core.engines.hf import HFEngine
    from tests.fakes import ScriptedEngine, TunedScripted

    settings = Settings()
    for engine_type in (BuiltinEngine, HFEngine, ScriptedEngine, TunedScripted):
        assert isinstance(engine_type(settings), Engine), engine_type  # no model is loaded by creating one

    members = {name: getattr(ScriptedEngine, name) for name in dir(ScriptedEngine) if not name.startswith("_")}
    members["settings"] = settings
    no_scoring = type("NoScoring", (), {k: v for k, v in members.items() if k != "score_yes_no"})
    assert isinstance(type("Complete", (), members)(), Engine)
    assert not isinstance(no_scoring(), Engine)  # one method short is not an engine


def test_the_llm_loads_in_the_precision_its_provenance_names(tiny_engine) -> None:
    """dtype and the CPU int8 option change the loaded weights (the settings are recorded with every output)."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from mmrec_core.engines import get_engine

    bf16 = get_engine(replace(tiny_engine.settings, dtype="bfloat16"))
    assert bf16.lm.model.dtype == torch.bfloat16 and bf16.provenance("llm")["params"]["dtype"] == "bfloat16"
    int8 = get_engine(replace(tiny_engine.settings, quantization="int8"))
    layers = list(int8.lm.model.modules())
    assert any(isinstance(m, DynamicInt8Linear) for m in layers)
    assert type(int8.lm.model.get_output_embeddings()) is torch.nn.Linear  # the scorer reads its yes/no rows
    candidates = [" Red dress? Yes or No.", " Blue hat? Yes or No."]
    scores = int8.score_yes_no("A customer who likes red. ", candidates)
    assert ((scores > 0) & (scores < 1)).all() and scores.shape == (2,)
    assert int8.provenance("llm")["params"]["quantization"] == "int8"


def test_bitsandbytes_quantization_on_the_builtin_engine_is_refused_by_name(tmp_path) -> None:
    from mmrec_core.config import load_settings
    from mmrec_core.engines.builtin import BuiltinEngine

    engine = BuiltinEngine(replace(load_settings(tmp_path), quantization="4bit"))
    with pytest.raises(ValueError, match="quantization=4bit needs bitsandbytes on CUDA"):
        engine.generate(["Hello"])
