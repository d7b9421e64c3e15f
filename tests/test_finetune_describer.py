"""The describer's LoRA SFT on H&M's human descriptions (a tiny random Llama trains it in seconds), and the
builtin engine's tuned describers with an adapter (a fresh random LoRA on SmolLM2): training articles only,
no withheld text in a prompt, an fp16 adapter with its provenance, checked output, a clear error without one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from safetensors import safe_open

from mmrec_core.data.splits import item_split
from mmrec_core.finetune.configs import DescriberConfig
from mmrec_core.finetune.describer import describer_examples, describer_folder, train_describer
from mmrec_core.grounding.claims import catalog_texts, check
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.quality import WITHHELD, available_describers, withheld_context

CONFIG = DescriberConfig(n_items=12, valid_items=4, max_steps=2, batch_size=4, eval_steps=1, max_length=256)


def test_describer_sft_learns_from_training_articles_and_writes_an_fp16_adapter(
    sample_workspace: Workspace, tiny_engine
) -> None:
    run_id = train_describer(sample_workspace, tiny_engine, "sample", CONFIG)
    row = sample_workspace.store.sql_df("SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0]
    assert (row["kind"], row["method"]) == ("train", "llm-describer")
    adapter = Path(row["artifact_path"])
    meta = json.loads((adapter / "mmrec_adapter.json").read_text())
    split_id, parts = item_split(sample_workspace.store, "sample")
    assert meta["item_split"] == split_id and meta["precision"] == "float16" and meta["steps"] == 2
    assert meta["data"] == {"fit": 12, "valid": 4} and [v["step"] for v in meta["valid"]] == [1, 2]
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.float16"}

    folder = describer_folder(sample_workspace, "sample", tiny_engine.llm_source(), CONFIG)
    _, examples = describer_examples(sample_workspace, tiny_engine, "sample", CONFIG, folder)
    assert set(json.loads((folder / "facts.json").read_text())) == set(examples["item_id"])  # kept for a resume
    items = sample_workspace.store.items("sample").set_index("item_id")
    for ex in examples.itertuples():
        assert parts[ex.item_id] == "train"  # never a held-out article
        desc = json.loads(items.loc[ex.item_id, "attributes"])[WITHHELD]
        prompt = ex.prompt[-1]["content"]
        assert ex.completion[0]["content"] == desc.strip() and desc.strip() not in prompt
        assert "colour group" not in prompt and "graphical appearance" not in prompt  # no field names


def test_without_human_descriptions_training_says_what_it_needs(rec_ws: Workspace, tiny_engine) -> None:
    rec_ws.store.cursor().execute("UPDATE items SET attributes = NULL WHERE dataset = 'sample'")
    with pytest.raises(ValueError, match="no training articles with a detail_desc"):
        train_describer(rec_ws, tiny_engine, "sample", CONFIG)


@pytest.fixture(scope="module")
def random_describer(tmp_path_factory: pytest.TempPathFactory, builtin_engine) -> Path:
    """A LoRA on the builtin LLM with random B (so it changes the output), saved as PEFT writes one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(builtin_engine.llm_source())
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("describer") / "adapter"
    peft.half().save_pretrained(folder)
    return folder


def test_the_tuned_describer_keeps_the_template_and_only_supported_sentences(
    sample_workspace: Workspace, builtin_engine, random_describer: Path
) -> None:
    rows = sample_workspace.store.items_with_images("sample").head(4).to_dict("records")
    for r in rows:
        r["attributes"] = json.loads(r["attributes"])
    items = [withheld_context(r) for r in rows]
    images = [sample_workspace.images.open(r["image_sha256"], r["ext"]) for r in rows]
    template = builtin_engine.with_describer("template").describe(images, items)
    settings = replace(builtin_engine.settings, describer_adapter=str(random_describer))
    tuned = builtin_engine.with_describer("tuned")
    tuned.settings = replace(settings, describer="tuned")
    written = tuned.describe(images, items)
    for t, w, item in zip(template, written, items, strict=True):
        assert w.text.startswith(t.text)
        evidence = catalog_texts(item.title, item.category, item.text, item.attributes)
        assert not check(w.text, evidence, w.facts).unsupported
    assert written[0].prompt_version.startswith("factsheet-v1+describe-tuned-v1+adapter-")

    missing = builtin_engine.with_describer("tuned")
    missing.settings = replace(settings, describer="tuned", describer_adapter=str(random_describer.parent / "none"))
    with pytest.raises(FileNotFoundError, match="mmrec train describer"):
        missing.describe(images, items)
    unset = builtin_engine.with_describer("tuned")  # the default: no adapter is shipped
    with pytest.raises(FileNotFoundError, match="describer_adapter is not set"):
        unset.describe(images, items)
    assert available_describers(builtin_engine) == ("free", "template", "filtered")
    assert available_describers(tuned) == ("free", "template", "filtered", "tuned-free", "tuned")
