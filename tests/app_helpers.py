"""Driving the app with streamlit.testing (AppTest): start it, and wait for background jobs."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "app.py"


def run_app(page: str | None = None, timeout: float = 60) -> AppTest:
    """Run app.py once (the landing page), then switch to `page` (e.g. "pages/catalog.py") if given."""
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def rerun_until(at: AppTest, done, timeout: float = 300, poll: float = 1.0) -> AppTest:
    """Rerun the script (as the page's polling fragment would) until `done(at)` holds; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, (
            f"still waiting after {timeout:g} s: {[p.value for p in at.get('progress')]}"
        )
        time.sleep(poll)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at
