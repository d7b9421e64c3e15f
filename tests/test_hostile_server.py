"""The server as someone else on the network sees it: bound to loopback, no tracebacks, an optional password.

SECURITY.md says what is and is not protected; these tests hold the settings it describes.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmrec_core.config import SAMPLE_DATASET
from tests.app_helpers import APP
from tests.conftest import REPO

CONFIG = REPO / ".streamlit" / "config.toml"
PASSWORD = "correct horse battery staple"


def config_value(key: str):
    section, name = key.split(".")
    return tomllib.loads(CONFIG.read_text())[section][name]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("server.address", "127.0.0.1"),  # loopback only, whatever starts the server
        ("client.showErrorDetails", "none"),  # a generic error box: no traceback, type or message
        ("client.showErrorLinks", False),  # no links that carry error text to a search engine
        ("server.allowedHosts", ["localhost", "127.0.0.1", "::1"]),  # a rebound attacker's Host is refused
        ("server.enableCORS", True),
        ("server.corsAllowedOrigins", []),
        ("server.enableXsrfProtection", True),
        ("server.enableAgentApi", False),
        ("server.enableStaticServing", False),
        ("server.maxUploadSize", 20),
        ("browser.gatherUsageStats", False),
    ],
)
def test_the_config_file(key: str, expected) -> None:
    assert config_value(key) == expected


def test_streamlit_reads_the_config_file_as_written() -> None:
    """The installed Streamlit accepts these option names and values (a typo would be ignored silently)."""
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"], cwd=REPO, capture_output=True, text=True, timeout=120
    ).stdout
    for line in ('address = "127.0.0.1"', 'showErrorDetails = "none"', "enableAgentApi = false"):
        assert re.search(rf"^{re.escape(line)}$", shown, re.MULTILINE), line
    assert re.search(r'^allowedHosts = \[\s*"localhost",\s*"127\.0\.0\.1",\s*"::1",\s*\]', shown, re.MULTILINE)


def make_run(*overrides: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "run", *overrides], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.replace("\\\n", " ")


@pytest.mark.parametrize(
    ("overrides", "present", "absent"),
    [
        ((), ["--server.address 127.0.0.1"], ["--server.allowedHosts", "0.0.0.0"]),
        (
            ("ADDRESS=0.0.0.0", "ALLOWED_HOSTS=studio.example.org 10.0.0.5"),
            [
                "--server.address 0.0.0.0",
                "--server.allowedHosts 'localhost'",
                "--server.allowedHosts 'studio.example.org'",
                "--server.allowedHosts '10.0.0.5'",
            ],
            [],
        ),
    ],
)
def test_make_run_binds_the_address(overrides: tuple[str, ...], present: list[str], absent: list[str]) -> None:
    run_line = next(line for line in make_run(*overrides).splitlines() if "streamlit run app.py" in line)
    for flag in present:
        assert flag in run_line
    for text in absent:
        assert text not in run_line


def start(path: Path = APP) -> AppTest:
    at = AppTest.from_file(path, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, answer: str) -> AppTest:
    (field,) = at.text_input
    field.input(answer)
    (button,) = at.button
    assert button.label == "Sign in"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assert_gate_only(at: AppTest) -> None:
    """The password form and nothing of the data: no page, no sidebar, no navigation."""
    assert [t.value for t in at.title] == ["MMRec Studio"]
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.metric and not at.dataframe and not at.selectbox and not at.sidebar.children


def assert_overview(at: AppTest) -> None:
    assert at.title[0].value == f"Overview · {SAMPLE_DATASET}"
    assert at.metric  # the data set's counts
    assert not [t for t in at.text_input if t.label == "Password"]


@pytest.mark.parametrize(
    ("answer", "signed_in"),
    [
        ("", False),
        ("wrong", False),
        (PASSWORD.upper(), False),
        (PASSWORD + " ", False),
        (PASSWORD, True),
    ],
)
def test_the_password_gate(data_dir: Path, app_env: pytest.MonkeyPatch, answer: str, signed_in: bool) -> None:
    app_env.setenv("MMREC_APP_PASSWORD", PASSWORD)
    at = start()
    assert_gate_only(at)
    assert not at.error

    sign_in(at, answer)
    if signed_in:
        assert_overview(at)
        at.run()  # stays signed in for this session
        assert_overview(at)
    else:
        assert_gate_only(at)
        assert [e.value for e in at.error] == ["Wrong password."]


def test_a_non_ascii_password(data_dir: Path, app_env: pytest.MonkeyPatch) -> None:
    app_env.setenv("MMREC_APP_PASSWORD", "pässwörd ✓")
    at = start()
    assert_gate_only(at)
    assert_overview(sign_in(at, "pässwörd ✓"))


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/catalog.py", "pages/evaluate.py"])
def test_a_page_run_on_its_own_is_gated_too(data_dir: Path, app_env: pytest.MonkeyPatch, page: str) -> None:
    """Streamlit may run a page file without app.py (its legacy pages-folder mode): get_workspace asks too."""
    app_env.setenv("MMREC_APP_PASSWORD", PASSWORD)
    at = start(REPO / page)
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.metric and not at.dataframe and not at.selectbox


@pytest.mark.parametrize("value", [None, ""])
def test_no_password_no_gate(data_dir: Path, app_env: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        app_env.delenv("MMREC_APP_PASSWORD", raising=False)
    else:
        app_env.setenv("MMREC_APP_PASSWORD", value)
    assert_overview(start())


@pytest.fixture(scope="module")
def served(sample_db: Path, tmp_path_factory: pytest.TempPathFactory):
    """`streamlit run app.py` with no address flag: the port and the log, as the config file alone leaves it."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(sample_db, root / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = root / "streamlit.log"
    env = {**os.environ, "MMREC_DATA_DIR": str(root / "data"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("MMREC_APP_PASSWORD", None)
    args = ["--server.headless", "true", "--server.port", str(port), "--server.fileWatcherType", "none"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", *args], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.mark.slow
def test_the_server_listens_on_loopback_only(served) -> None:
    port, log = served
    assert f"started on 127.0.0.1:{port}" in log.read_text()
    address = outward_address()
    if address is not None:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
            pass


def websocket_status(port: int, host: str, origin: str | None) -> int:
    """The HTTP status of a WebSocket upgrade of the app's stream, as a browser sends it."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
        *([f"Origin: {origin}"] if origin else []),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = s.recv(200).decode(errors="replace").split("\r\n")[0]
    return int(status_line.split()[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("attacker.example:{port}", "http://attacker.example:{port}", 403),  # DNS rebinding: Host and Origin agree
        ("attacker.example:{port}", None, 403),
        ("127.0.0.1:{port}", "http://attacker.example", 403),  # a cross-origin page
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}", 101),
        ("localhost:{port}", "http://localhost:{port}", 101),
    ],
)
def test_the_websocket_checks_host_and_origin(served, host: str, origin: str | None, status: int) -> None:
    port, _ = served
    assert websocket_status(port, host.format(port=port), origin and origin.format(port=port)) == status
