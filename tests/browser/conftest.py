"""Browser tests: the real app served by `streamlit run`, driven in Debian's Chromium with Playwright.

The server runs on a free loopback port with a private copy of the ingested sample. A failing test
leaves a screenshot and the page's text in test-artifacts/<test name>/ (MMREC_TEST_ARTIFACTS moves
it). Without Chromium (scripts/install_chromium.sh installs it) every test here is skipped, and the
session ends with a warning banner: never a silent pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MODEL_CACHE, REPO

APP_ROOT = Path(os.environ.get("MMREC_APP_ROOT", REPO))  # another copy of the app (the broken-page test)
ARTIFACTS = Path(os.environ.get("MMREC_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM = os.environ.get("MMREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).is_file()
NO_CHROMIUM = f"Chromium not found at {CHROMIUM}: browser tests SKIPPED (install it: sh scripts/install_chromium.sh)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if not HAVE_CHROMIUM:
                item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


def pytest_terminal_summary(terminalreporter) -> None:
    if not HAVE_CHROMIUM:
        terminalreporter.write_sep("!", NO_CHROMIUM, red=True, bold=True)


class Server:
    """A `streamlit run app.py` process; `log_text()` is everything it printed so far."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "MMREC_DATA_DIR": str(data_dir),
            "MMREC_MODEL_CACHE": str(MODEL_CACHE),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        args = [
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ]
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(APP_ROOT / "app.py"), *args],
                cwd=APP_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy(timeout=90)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit not healthy after {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(sample_db: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(sample_db, root / "data")
    srv = Server(root / "data", root / "streamlit.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """On a failed test, keep what the browser showed: a full-page screenshot, the page text, the server log."""
    outcome = yield
    report = outcome.get_result()
    pg = getattr(item, "funcargs", {}).get("page")
    if report.when != "call" or not report.failed or pg is None:
        return
    folder = ARTIFACTS / item.name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(folder / "screenshot.png"), full_page=True)
        (folder / "page.txt").write_text(pg.inner_text("body"))
    except Exception as exc:  # the browser itself may be what failed
        (folder / "page.txt").write_text(f"could not read the page: {exc}")
    srv = item.funcargs.get("server")
    if srv is not None:
        (folder / "streamlit.log").write_text(srv.log_text())
    report.sections.append(("browser artifacts", str(folder)))
