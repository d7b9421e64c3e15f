"""The image attribute classifier: its pixel features, its stored form, and training on held-in articles only."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrec_core.engines.attributes import AttributeHead, AttributeModel, _spectrum_features
from mmrec_core.textualize.attributes import train_attribute_model


def _stripes(vertical: bool, period: int = 8) -> Image.Image:
    ramp = (np.arange(128) // (period // 2)) % 2 * 200 + 20
    pixels = np.tile(ramp, (128, 1)) if vertical else np.tile(ramp[:, None], (1, 128))
    return Image.fromarray(np.stack([pixels] * 3, axis=-1).astype(np.uint8))


def test_stripes_show_as_a_sharp_peak_in_the_direction_across_them():
    flat = _spectrum_features(Image.new("RGB", (128, 128), (90, 30, 40)))
    vertical, horizontal = _spectrum_features(_stripes(True)), _spectrum_features(_stripes(False))
    assert vertical[-2] > flat[-2] + 3 and horizontal[-2] > flat[-2] + 3  # the peak feature
    bands = vertical[:-2].reshape(5, 4)  # (band, direction): vertical stripes vary along x
    assert bands[:, 0].sum() > 0.8 and _spectrum_features(_stripes(False))[:-2].reshape(5, 4)[:, 2].sum() > 0.8


def _model() -> AttributeModel:
    rng = np.random.default_rng(0)
    head = AttributeHead(["Sweater", "Trousers", "Leggings/Tights"], rng.normal(size=6).astype(np.float32),
                         np.ones(6, np.float32), rng.normal(size=(3, 6)).astype(np.float32),
                         np.zeros(3, np.float32), 1.7)  # fmt: skip
    return AttributeModel({"product type": head}, {"features": "test"})


def test_a_saved_model_loads_with_the_same_probabilities_and_names_its_file(tmp_path):
    model, x = _model(), np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    again = AttributeModel.load(tmp_path / "m.npz")
    assert np.allclose(again.heads["product type"].probabilities(x), model.heads["product type"].probabilities(x),
                       atol=2e-3)  # fmt: skip
    assert again.model_id.startswith("m.npz@") and again.provenance == {"features": "test"}
    facts = again.facts(x)
    assert all(f.kind == "object" and f.source == "attribute-classifier" for row in facts for f in row)
    with pytest.raises(FileNotFoundError, match="mmrec train-attributes"):
        AttributeModel.load(tmp_path / "missing.npz")


def test_the_model_is_used_only_for_a_catalog_whose_product_types_it_knows():
    model = _model()
    assert model.covers(["Sweater", "trousers", "Leggings/Tights", "Bag"])  # 3 of 4 known
    assert not model.covers(["Comedy", "Documentary", "Sweater"])  # a video catalog: its labels would not fit
    assert not model.covers([])


@pytest.mark.slow
def test_trained_on_training_articles_it_beats_the_majority_on_held_out_ones(sample_workspace):
    model, report = train_attribute_model(sample_workspace, "sample")
    parts = sample_workspace.store.item_split("sample", model.provenance["split_id"])
    assert model.provenance["test articles"] == sum(p == "test" for p in parts.values())
    table = report.set_index("attribute")
    for attribute in ("product type", "pattern", "colour"):
        row = table.loc[attribute]
        assert row["balanced accuracy"] > row["majority balanced"] + 0.1, attribute
        assert abs(row["mean confidence"] - row["accuracy"]) < 0.2, attribute  # calibrated on held-back articles
    assert table.loc["product type", "accuracy"] > table.loc["product type", "majority accuracy"]
