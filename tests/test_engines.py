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
