"""A person's walk through the app in Chromium: every page, a customer, an upload on the Catalog page.

Each step waits for Streamlit's script run to finish (the app root's data-test-script-state), then
checks that no page shows an exception or error box and that the server logged no traceback.
On the Recommend page it scores a customer's stored candidates with the builtin model.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from mmrec_core.config import SAMPLE_DATA_DIR

APP = '[data-testid="stApp"]'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def settle(page: Page, timeout: float = 60) -> None:
    """Wait until the app is connected and no script run is in progress, steadily for 0.6 s.

    Steadily, because one click can cause several runs in a row (a callback's st.rerun, the first
    run leaving Streamlit's legacy pages mode) with a moment of 'notRunning' between them.
    """
    deadline, steady = time.monotonic() + timeout, 0
    while steady < 4:
        assert time.monotonic() < deadline, f"the app was still running after {timeout} s"
        app = page.locator(APP)
        idle = app.count() == 1 and app.get_attribute("data-test-script-state") == "notRunning"
        connected = idle and app.get_attribute("data-test-connection-state") == "CONNECTED"
        steady = steady + 1 if connected else 0
        page.wait_for_timeout(200)


def assert_no_errors(page: Page, server) -> None:
    boxes = page.locator(ERRORS)
    assert boxes.count() == 0, f"error on the page: {boxes.first.inner_text()[:500]}"
    log = server.log_text()
    assert "Traceback" not in log, f"the server logged an exception:\n{log[-3000:]}"


def open_page(page: Page, server, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    settle(page)
    expect(page.locator("h1").first).to_contain_text(title)


def test_every_page_renders_without_errors(page: Page, server) -> None:
    page.goto(server.url)
    settle(page)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    titles = [t.strip().splitlines()[-1] for t in links.all_inner_texts()]  # after the icon's name
    assert titles[:7] == ["Overview", "Catalog", "Customers", "Item graph", "Recommend", "Train", "Evaluate"], titles
    for title in titles:
        open_page(page, server, title)
        assert_no_errors(page, server)
    open_page(page, server, "Overview")
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("293")  # users in the sample


def test_open_a_customer(page: Page, server) -> None:
    page.goto(f"{server.url}/customers")
    settle(page)
    options = page.locator('[data-testid="stRadio"] label')
    second = options.nth(1).inner_text()
    user = second.split(" · ")[0]
    options.nth(1).click()
    settle(page)
    expect(page.locator("h3").first).to_have_text(f"Customer {user}")
    expect(page.get_by_text(re.compile(r"^Block 1 · purchases 1–"))).to_be_visible()
    assert page.locator('[data-testid="stImage"]').count() >= 3
    assert_no_errors(page, server)


def test_upload_an_image_and_see_its_description(page: Page, server) -> None:
    page.goto(f"{server.url}/catalog")
    settle(page)
    image = SAMPLE_DATA_DIR / "images" / "0111586001.jpg"
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(image))
    page.get_by_label("Title").fill("Browser upload tights")
    page.get_by_role("button", name="Add and textualize").click()
    settle(page)
    # the one-shot "Added 1 item(s): upload-..." notice, or (a fast job already redrew the page) the new item
    expect(page.get_by_text(re.compile(r"upload-[0-9a-f]{12}")).first).to_be_visible(timeout=30_000)  # a busy machine
    # the job runs in the server; the page polls it and redraws when it is done (builtin engine on CPU)
    expect(page.get_by_text("Description", exact=True)).to_be_visible(timeout=300_000)
    settle(page, timeout=120)
    expect(page.locator("h3").first).to_have_text("Browser upload tights")
    expect(page.get_by_text("Keywords", exact=True)).to_be_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # the rewards chart
    assert_no_errors(page, server)


def test_open_an_items_graph(page: Page, server) -> None:
    page.goto(f"{server.url}/catalog")
    settle(page)
    page.get_by_role("button", name="Details").first.click()
    settle(page)
    title = page.locator("h3").first.inner_text()
    page.get_by_role("button", name="Item graph").click()
    settle(page)
    expect(page.locator("h1").first).to_contain_text("Item graph")
    build = page.get_by_role("button", name="Build item graph")
    if build.count():  # first visit: embed the catalog's texts in a background job
        build.click()
        expect(page.get_by_text("Graph settings")).to_be_visible(timeout=300_000)
        settle(page, timeout=120)
    expect(page.get_by_text(re.compile(rf"direct neighbours of {re.escape(title)} "))).to_be_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1
    assert_no_errors(page, server)


def test_score_a_customer_and_read_the_rationale(page: Page, server) -> None:
    page.goto(f"{server.url}/recommend")
    settle(page)
    expect(page.locator("h1").first).to_contain_text("Recommend")
    page.get_by_role("button", name="Score").click()
    # the builtin LLM scores 21 candidates, then writes rationales for the top 3 (CPU: seconds)
    expect(page.get_by_text(re.compile(r"^21 candidates · pointwise"))).to_be_visible(timeout=300_000)
    settle(page, timeout=120)
    expect(page.get_by_text("Rationale:").first).to_be_visible()
    assert page.get_by_text("Evidence", exact=True).count() == 21
    assert page.locator('[data-testid="stImage"]').count() == 21  # every candidate with its photo
    assert_no_errors(page, server)
    # what moves the score: each piece of context left out in turn (about a dozen scoring passes on CPU)
    page.get_by_role("tab", name="What moves the score").click()
    page.get_by_role("button", name="Explain the scores").click()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_be_visible(timeout=300_000)
    settle(page, timeout=120)
    expect(page.get_by_text(re.compile(r"^Without .* rank \d+ (->|→) \d+")).first).to_be_visible()
    # what if: the profile edited by hand, the new scores beside the old ones
    page.get_by_role("tab", name="What if").click()
    profile = page.get_by_label("Profile", exact=True)  # the what-if's text, not the prompt setting
    profile.fill("Loves black denim skirts and nothing else.")
    profile.press("Control+Enter")
    settle(page)
    page.get_by_role("button", name="Score the what-if").click()
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=120_000)
    settle(page, timeout=60)
    assert page.get_by_role("button", name="Download the card (HTML)").count() == 1
    assert_no_errors(page, server)
