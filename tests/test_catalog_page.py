"""The Catalog page, driven with AppTest: search, item details with every stored version, uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import streamlit as st

from mmrec_core.config import SAMPLE_DATA_DIR, SAMPLE_DATASET, load_settings
from mmrec_core.store.workspace import open_workspace
from mmrec_core.textualize import catalog
from tests.app_helpers import rerun_until, run_app
from tests.conftest import MODEL_CACHE
from tests.test_catalog import add_text_version

PAGE = "pages/catalog.py"
TIGHTS = "0111586001"  # "Shape Up 30 den 1p Tights", black
PAGE_SIZE = 24  # items the grid shows before "Show more"


def captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


def button(at, label: str, item_id: str | None = None):
    keyed = [b for b in at.button if b.label == label and (item_id is None or b.key == f"open_{item_id}")]
    assert keyed, f"no '{label}' button"
    return keyed[0]


def test_grid_search_and_item_details_with_versions(data_dir: Path) -> None:
    ws = open_workspace(load_settings(data_dir))
    try:  # two keyword versions from different models, written before the app opens the file
        add_text_version(ws.store, TIGHTS, ["polkadot", "black"], "2024-06-01 10:00", "new-model")
        add_text_version(ws.store, TIGHTS, ["zebrastripe"], "2024-01-01 10:00", "old-model")
        n_items = ws.store.count("items", SAMPLE_DATASET)
    finally:
        ws.close()

    at = run_app(PAGE)
    assert at.title[0].value == f"Catalog · {SAMPLE_DATASET}"
    assert f"1 of {n_items:,} items textualized" in at.caption[0].value
    assert len(captions(at)) == PAGE_SIZE
    assert f"Showing {PAGE_SIZE} of {n_items:,} matching items." in [c.value for c in at.caption]

    at.text_input(key="catalog_query").input("polkadot").run()
    assert captions(at) == ["Shape Up 30 den 1p Tights"]
    assert "polkadot · black" in [c.value for c in at.caption]  # the card's keywords

    button(at, "Details", TIGHTS).click().run()
    assert not at.exception
    assert at.subheader[0].value == "Shape Up 30 den 1p Tights"
    body = " ".join(m.value for m in at.markdown)
    assert "`new-model`" in body and "*pattern*: polkadot" in body  # the newest version, by facet
    assert "described by new-model" in [m.value for m in at.markdown]
    versions = [df.value for df in at.dataframe if "describe_prompt" in df.value.columns][0]
    assert versions["model"].tolist() == ["new-model", "old-model"]  # side by side, newest first
    chart = at.get("plotly_chart")[0].proto.spec
    assert "R_recon" in chart and "Keyword rewards" in chart

    at.text_input(key="catalog_query").input("no-such-word-anywhere").run()
    assert "Showing 0 of 0 matching items." in [c.value for c in at.caption]
    assert not [b for b in at.button if b.label == "Details"]
    assert at.subheader[0].value == "Shape Up 30 den 1p Tights"  # the open item stays open


def test_a_description_shows_its_claims_marked_beside_the_catalogs_own_text(data_dir: Path) -> None:
    ws = open_workspace(load_settings(data_dir))
    try:  # an older version with no stored grounding: the page checks it against the catalog itself
        add_text_version(ws.store, TIGHTS, ["black"], "2024-06-01 10:00", "m", "Black denim tights in 100 den.")
    finally:
        ws.close()
    at = run_app(PAGE)
    button(at, "Details", TIGHTS).click().run()
    marked = [m.value for m in at.markdown if "tights" in m.value]
    assert ":blue[Black] :red-background[denim] :blue[tights] in :red-background[100 den]." in marked
    tally = [c.value for c in at.caption if "checkable claims" in c.value]
    assert tally and "2 from the catalog" in tally[0] and "2 unsupported" in tally[0] and "“denim”" in tally[0]
    assert "**The catalog's own description**" in [m.value for m in at.markdown]
    assert any(m.value.startswith("Tights with built-in support") for m in at.markdown)


@pytest.mark.slow
def test_uploading_an_image_stores_a_described_item(data_dir: Path, app_env: pytest.MonkeyPatch) -> None:
    app_env.setenv("MMREC_MODEL_CACHE", str(MODEL_CACHE))  # the builtin LLM's converted copy, shared by tests
    app_env.setenv("MMREC_DEVICE", "cpu")
    image = (SAMPLE_DATA_DIR / "images" / f"{TIGHTS}.jpg").read_bytes()
    at = run_app(PAGE)
    at.file_uploader[0].upload("black tights.jpg", image, "image/jpeg")
    at.text_input(key="catalog_category").input("Socks & Tights")
    button(at, "Add and textualize").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Added 1 item(s): upload-") for s in at.success)

    rerun_until(at, lambda at: not at.get("progress") and any("textualized" in s.value for s in at.success))
    body = " ".join(m.value for m in at.markdown)
    assert at.subheader[0].value == "black tights" and "**Keywords**" in body and "black" in body

    item_id = f"upload-{hashlib.sha256(image).hexdigest()[:12]}"
    st.cache_resource.clear()  # close the app's connection, then read what was stored
    ws = open_workspace(load_settings(data_dir))
    try:
        view = catalog.item_view(ws.store, SAMPLE_DATASET, item_id)
    finally:
        ws.close()
    latest = view["latest"]
    assert view["category"] == "Socks & Tights" and view["attributes"]["file_name"] == "black tights.jpg"
    assert latest["description"] and latest["keywords"] and latest["engine"] == "builtin"
    assert all(latest[r] is not None for r in ("r_info", "r_recon", "r_len", "reward"))
    assert "black" in latest["facets"]["colour"]


def test_a_non_image_upload_is_refused_with_a_clear_message(data_dir: Path) -> None:
    at = run_app(PAGE)
    at.file_uploader[0].upload("notes.jpg", b"shopping list: socks, tights\n", "image/jpeg")
    button(at, "Add and textualize").click().run()
    assert [e.value for e in at.error] and "notes.jpg: not a readable image" in at.error[0].value
    assert not at.get("progress")  # no job was started
    at.text_input(key="catalog_query").input("notes").run()
    assert captions(at) == []  # nothing stored
