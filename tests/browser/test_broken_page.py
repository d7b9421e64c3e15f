"""The walk-through must catch a broken page: run it against a copy of the app whose Customers page raises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

WALK = "tests/browser/test_walkthrough.py::test_every_page_renders_without_errors"


def test_a_broken_page_fails_the_walkthrough_with_a_screenshot(tmp_path: Path) -> None:
    if os.environ.get("MMREC_APP_ROOT"):
        pytest.skip("this is the inner run of the broken-page test")
    app = tmp_path / "app"
    app.mkdir()
    for name in ("app.py", "widgets.py", "pages", ".streamlit"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, app / name)
    (app / "pages" / "customers.py").write_text('raise RuntimeError("deliberately broken page")\n')
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "MMREC_APP_ROOT": str(app), "MMREC_TEST_ARTIFACTS": str(artifacts)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", WALK],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stdout[-3000:]  # failed, not passed, skipped or crashed
    assert "This app has encountered an error" in run.stdout  # the failure shows the (generic) error box
    folder = artifacts / "test_every_page_renders_without_errors"
    assert (folder / "screenshot.png").stat().st_size > 10_000
    # client.showErrorDetails = "none": the browser gets a generic box; the message and traceback are in the log
    assert "deliberately broken page" not in (folder / "page.txt").read_text()
    assert "deliberately broken page" in (folder / "streamlit.log").read_text()
