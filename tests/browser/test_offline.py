"""The app works offline: opening every page makes the browser ask nothing of any host but the app's server.

(A ":material/...:" page icon made Chromium fetch the favicon from fonts.gstatic.com; app.py uses an emoji.)
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page

from tests.browser.test_walkthrough import assert_no_errors, open_page, settle

LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}
TITLES = ["Overview", "Catalog", "Customers", "Item graph", "Recommend", "Train", "Evaluate"]
PATHS = ["", "catalog", "customers", "item_graph", "recommend", "train", "evaluate"]


@pytest.fixture
def outside(browser, server):
    """A page whose every request and WebSocket leaving this machine is recorded (and refused: no waiting on it)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    seen: list[str] = []

    def record(url: str) -> bool:
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL:
            return False
        seen.append(url)
        return True

    context.route("**/*", lambda route: route.abort() if record(route.request.url) else route.continue_())
    context.on("request", lambda request: record(request.url))  # also what a route may not see (service workers)
    pg = context.new_page()
    pg.on("websocket", lambda ws: record(ws.url))
    pg.set_default_timeout(60_000)
    yield pg, seen
    context.close()


def test_every_page_loads_from_localhost_only(outside: tuple[Page, list[str]], server) -> None:
    page, seen = outside
    page.goto(server.url)
    settle(page)
    for title in TITLES:
        open_page(page, server, title)
        assert_no_errors(page, server)
    for path in PATHS:  # a fresh load of each address too: favicons and fonts are fetched then
        page.goto(f"{server.url}/{path}")
        settle(page)
        page.wait_for_timeout(1000)  # the favicon is set after the first script run
    favicon = page.evaluate("document.querySelector(\"link[rel='shortcut icon']\")?.href ?? ''")
    assert urlparse(favicon).hostname in LOCAL or favicon.startswith("data:"), favicon
    assert not sorted(set(seen)), f"requests that left the machine: {sorted(set(seen))}"
