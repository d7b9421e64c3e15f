"""The Customers page, driven with AppTest: the customer list, blocks with summaries, building profiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mmrec_core.engines
from mmrec_core.config import SAMPLE_DATASET, load_settings
from mmrec_core.data.splits import create_protocol
from mmrec_core.profiles import customers
from mmrec_core.profiles.build import ProfileConfig, build_profiles
from mmrec_core.store.workspace import open_workspace
from tests.app_helpers import rerun_until, run_app
from tests.fakes import ScriptedEngine

PAGE = "pages/customers.py"


def longest_customers(data_dir: Path, n: int, profile: bool) -> list[dict]:
    """The n customers with the longest history (scripted profiles stored for them when `profile`)."""
    ws = open_workspace(load_settings(data_dir))
    try:
        protocol = create_protocol(ws.store, SAMPLE_DATASET)
        users = customers.customer_list(ws.store, SAMPLE_DATASET, protocol)["user_id"].tolist()[:n]
        if profile:
            build_profiles(ws, ScriptedEngine(ws.settings), SAMPLE_DATASET, protocol, ProfileConfig(users=users))
        return [customers.customer_view(ws.store, SAMPLE_DATASET, protocol, u) for u in users]
    finally:
        ws.close()


def texts(at, kind: str) -> list[str]:
    return [e.value for e in at.get(kind)]


def test_a_customer_shows_blocks_summaries_and_drift(data_dir: Path) -> None:
    first, second = longest_customers(data_dir, 2, profile=True)
    at = run_app(PAGE)
    assert at.title[0].value == f"Customers · {SAMPLE_DATASET}"
    radio = at.radio(key="customer_selected")
    assert radio.options[:2] == [f"{v['user_id'][:16]} · {len(v['history'])} items ✓" for v in (first, second)]
    assert radio.value == first["user_id"]  # the longest history is open first

    radio.set_value(second["user_id"]).run()
    assert not at.exception
    assert at.subheader[0].value == f"Customer {second['user_id'][:16]}"
    assert {m.label: m.value for m in at.metric} == {
        "Training purchases": str(len(second["history"])),
        "Blocks summarised": str(len(second["blocks"])),
        "Held out (valid/test)": "2",
    }
    shown = [plain(t) for t in texts(at, "markdown")]
    assert shown.count(second["profile"]) == 2  # the profile, and the summary after the last block
    for b, summary in zip(second["blocks"]["block"], second["blocks"]["summary"], strict=True):
        assert shown[shown.index(f"*Summary after block {b}:*") + 1] == summary  # claims marked, words unchanged
    assert any("checkable claims" in c for c in texts(at, "caption"))
    n_images = len(second["history"]) + len(second["held_out"])
    assert len([c for img in at.image for c in img.captions]) == n_images  # every purchase has a thumbnail
    assert "Keyword weights over time" in at.get("plotly_chart")[0].proto.spec

    at.text_input(key="customer_query").input("no-such-customer").run()
    assert [e.value for e in at.info] == ["No customer matches that id."]


def plain(markdown: str) -> str:
    """The words of a marked-up text (claims lose their colour directives, escapes are undone)."""
    return re.sub(r"\\(.)", r"\1", re.sub(r":(?:blue|violet|red-background)\[(.*?)\]", r"\1", markdown))


def test_build_profiles_runs_as_a_job_and_fills_the_page(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (first,) = longest_customers(data_dir, 1, profile=False)
    monkeypatch.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)  # instant, deterministic summaries
    at = run_app(PAGE)
    assert "No profile yet" in at.info[0].value
    [b for b in at.button if b.label == "Build profiles"][0].click().run()
    assert not at.exception
    rerun_until(at, lambda at: any("profiles for 293 users" in s.value for s in at.success), timeout=120)
    assert any(plain(m).startswith("This shopper keeps choosing") for m in texts(at, "markdown"))
    assert {m.label: m.value for m in at.metric}["Blocks summarised"] == str(first["history"]["block"].max())
