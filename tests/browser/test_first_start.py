"""A fresh data folder, as after `make run` on a fresh clone: every page shows real results at once.

The first start ingests sample_data/ and imports its bundled results (sample_data/state, `make sample-state`),
so nothing has to be run: descriptions and keywords on the Catalog, a profile on Customers, the ego network on
Item graph, a leaderboard on Evaluate, and on Recommend a customer scored with rationales.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from mmrec_core.config import SAMPLE_STATE_DIR
from tests.browser.conftest import Server
from tests.browser.test_walkthrough import assert_no_errors, open_page, settle


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fresh")
    srv = Server(root / "data", root / "streamlit.log")  # an empty folder: the first start fills it
    yield srv
    srv.stop()


@pytest.fixture
def fresh_page(browser, fresh):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def test_the_bundle_is_in_the_checkout():
    assert (SAMPLE_STATE_DIR / "manifest.json").is_file(), "run `make sample-state` and commit sample_data/state"


def test_every_page_shows_real_results_on_a_fresh_start(fresh_page: Page, fresh) -> None:
    page, start = fresh_page, time.monotonic()
    page.goto(fresh.url)
    settle(page, timeout=60)
    expect(page.get_by_text("These results are precomputed")).to_be_visible()
    expect(page.get_by_text("Every stage is done: textualize, profiles, graph, models, eval")).to_be_visible()

    open_page(page, fresh, "Catalog")
    page.get_by_role("button", name="Details").first.click()
    settle(page)
    expect(page.get_by_text("Description", exact=True)).to_be_visible()
    expect(page.get_by_text("Keywords", exact=True)).to_be_visible()

    open_page(page, fresh, "Item graph")
    expect(page.get_by_text(re.compile(r"direct neighbours of "))).to_be_visible()
    assert page.get_by_role("button", name="Build item graph").count() == 0

    open_page(page, fresh, "Customers")
    expect(page.get_by_text(re.compile(r"^Block 1 · purchases 1–"))).to_be_visible()

    open_page(page, fresh, "Evaluate")
    expect(page.get_by_text(re.compile(r"sasrec")).first).to_be_attached()  # a cell of the leaderboard grid
    assert page.get_by_text("No comparable eval runs yet").count() == 0
    assert time.monotonic() - start < 60, f"{time.monotonic() - start:.0f} s to show every page"
    assert_no_errors(page, fresh)

    open_page(page, fresh, "Recommend")
    page.get_by_role("button", name="Score").click()  # the builtin LLM on one customer: seconds, no job
    expect(page.get_by_text(re.compile(r"^21 candidates · pointwise"))).to_be_visible(timeout=300_000)
    settle(page, timeout=120)
    expect(page.get_by_text("Rationale:").first).to_be_visible()
    assert_no_errors(page, fresh)
