"""The catalog (search, uploads, one item's versions) and the background-job runner, on the real sample data."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from mmrec_core.config import SAMPLE_DATA_DIR, SAMPLE_DATASET
from mmrec_core.core import jobs
from mmrec_core.store.database import Store
from mmrec_core.store.images import MAX_IMAGE_BYTES, BadImageError
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize import catalog

SAMPLE_JPG = SAMPLE_DATA_DIR / "images" / "0111586001.jpg"  # item 0111586001, "Shape Up 30 den 1p Tights"


def new_png(colour: tuple[int, int, int]) -> bytes:
    """An image that is not in the sample yet, so storing it writes a new file."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
    return buf.getvalue()


def stored_state(ws: Workspace) -> tuple[int, int, list[Path]]:
    """What an upload may change: item rows, image rows and image files."""
    items = ws.store.count("items", SAMPLE_DATASET)
    images = ws.store.scalar("SELECT count(*) FROM images")
    return items, images, sorted(p for p in ws.images.root.rglob("*") if p.is_file())


def add_text_version(
    store: Store, item_id: str, keywords: list[str], created_at: str, model: str, description: str = ""
) -> None:
    """A description + keyword set as textualization stores them (rows written directly: no model needed)."""
    key = f"{item_id}-{model}"
    cur = store.cursor()
    cur.execute(
        "INSERT INTO descriptions (dataset, item_id, description, engine, model, prompt_version, input_hash, "
        "created_at) VALUES (?, ?, ?, 'test', ?, 'describe-v1', ?, ?)",
        [SAMPLE_DATASET, item_id, description or f"described by {model}", model, key, created_at],
    )
    cur.execute(
        "INSERT INTO keywords (dataset, item_id, keywords, facets, r_info, r_recon, r_len, reward, engine, model, "
        "prompt_version, input_hash, created_at) VALUES (?, ?, ?, ?, 0.5, 0.25, -0.25, 0.6, 'test', ?, 'kw-v1', ?, ?)",
        [SAMPLE_DATASET, item_id, keywords, json.dumps({"pattern": keywords[:1]}), model, key, created_at],
    )


# -- search -------------------------------------------------------------------------------------------
def test_search_finds_items_by_title_words_in_any_case(sample_workspace: Workspace) -> None:
    store = sample_workspace.store
    everything = catalog.search_items(store, SAMPLE_DATASET, limit=1000)
    assert len(everything) == store.count("items", SAMPLE_DATASET) == everything["matches"].iloc[0]

    found = catalog.search_items(store, SAMPLE_DATASET, "TIGHTS  shape")
    assert "0111586001" in set(found["item_id"])
    assert all("tights" in t.lower() and "shape" in t.lower() for t in found["title"])
    items = store.items(SAMPLE_DATASET)
    expected = items[
        items["title"].str.lower().str.contains("tights") | items["category"].str.lower().str.contains("tights")
    ]
    tights = catalog.search_items(store, SAMPLE_DATASET, "tights", limit=1000)
    assert set(tights["item_id"]) == set(expected["item_id"])  # title or category, nothing else matches
    row = found.set_index("item_id").loc["0111586001"]
    assert row["ext"] == "jpg" and row["image_sha256"] and row["keywords"] == []  # not textualized yet

    page2 = catalog.search_items(store, SAMPLE_DATASET, "tights", limit=3, offset=3)
    assert page2["item_id"].tolist() == tights["item_id"].tolist()[3:6]
    assert catalog.search_items(store, SAMPLE_DATASET, "no-such-word-anywhere").empty


def test_search_finds_items_by_their_newest_keywords(sample_workspace: Workspace) -> None:
    store = sample_workspace.store
    add_text_version(store, "0111586001", ["zebrastripe", "black"], "2024-01-01 10:00", "old-model")
    add_text_version(store, "0111586001", ["polkadot", "black"], "2024-06-01 10:00", "new-model")

    found = catalog.search_items(store, SAMPLE_DATASET, "PolkaDot")
    assert found["item_id"].tolist() == ["0111586001"]
    assert found["keywords"].iloc[0] == ["polkadot", "black"]
    assert catalog.search_items(store, SAMPLE_DATASET, "zebrastripe").empty  # older versions are not searched


def test_item_view_shows_the_row_and_every_version_newest_first(sample_workspace: Workspace) -> None:
    store = sample_workspace.store
    view = catalog.item_view(store, SAMPLE_DATASET, "0111586001")
    assert view["title"] == "Shape Up 30 den 1p Tights" and view["latest"] is None and view["versions"].empty
    assert view["attributes"]["article_id"] == "0111586001"  # parsed JSON

    add_text_version(store, "0111586001", ["zebrastripe"], "2024-01-01 10:00", "old-model")
    add_text_version(store, "0111586001", ["polkadot"], "2024-06-01 10:00", "new-model")
    view = catalog.item_view(store, SAMPLE_DATASET, "0111586001")
    assert view["versions"]["model"].tolist() == ["new-model", "old-model"]
    assert view["latest"]["keywords"] == ["polkadot"] and view["latest"]["facets"] == {"pattern": ["polkadot"]}
    assert view["latest"]["description"] == "described by new-model" and view["latest"]["reward"] == 0.6
    with pytest.raises(KeyError, match="no-such-item"):
        catalog.item_view(store, SAMPLE_DATASET, "no-such-item")


# -- uploads ------------------------------------------------------------------------------------------
def test_uploads_become_items_with_stored_images_and_reuploads_change_nothing(sample_workspace: Workspace) -> None:
    ws = sample_workspace
    items0, images0, files0 = stored_state(ws)
    red = new_png((200, 30, 30))
    ids = catalog.add_uploads(ws, SAMPLE_DATASET, [("red scarf.png", red), ("tights.jpg", SAMPLE_JPG.read_bytes())])

    assert [i.startswith("upload-") and len(i) == len("upload-") + 12 for i in ids] == [True, True]
    scarf = ws.store.item(SAMPLE_DATASET, ids[0])
    assert (scarf["title"], scarf["category"], scarf["ext"]) == ("red scarf", "uploaded", "png")
    assert scarf["text"] == "red scarf. category: uploaded"
    assert ws.images.path(scarf["image_sha256"], "png").read_bytes() == red
    items1, images1, files1 = stored_state(ws)
    assert (items1, images1, len(files1)) == (items0 + 2, images0 + 1, len(files0) + 1)  # the jpg was stored already
    assert catalog.search_items(ws.store, SAMPLE_DATASET, "red scarf")["item_id"].tolist() == [ids[0]]

    again = catalog.add_uploads(ws, SAMPLE_DATASET, [("tights.jpg", SAMPLE_JPG.read_bytes()), ("copy.png", red)])
    assert again == [ids[1], ids[0]]
    assert stored_state(ws) == (items1, images1, files1)

    blue = catalog.add_uploads(
        ws, SAMPLE_DATASET, [("x.png", new_png((0, 0, 200)))], title=" Blue cap ", category="Hats"
    )
    cap = ws.store.item(SAMPLE_DATASET, blue[0])
    assert (cap["title"], cap["category"], cap["text"]) == ("Blue cap", "Hats", "Blue cap. category: Hats")


def test_a_bad_file_in_a_batch_stores_nothing(sample_workspace: Workspace) -> None:
    ws = sample_workspace
    before = stored_state(ws)
    batch = [("tights.jpg", SAMPLE_JPG.read_bytes()), ("notes.jpg", b"shopping list: socks, tights\n")]
    with pytest.raises(BadImageError, match=r"notes\.jpg: not a readable image .* Replace or remove the file"):
        catalog.add_uploads(ws, SAMPLE_DATASET, batch)
    assert stored_state(ws) == before

    huge = b"\xff\xd8" + bytes(MAX_IMAGE_BYTES)
    with pytest.raises(BadImageError, match=r"poster\.jpg: .* over the 20 MB image limit; downscale it first"):
        catalog.add_uploads(ws, SAMPLE_DATASET, [("scarf.png", new_png((1, 2, 3))), ("poster.jpg", huge)])
    assert stored_state(ws) == before


def test_a_failure_while_writing_removes_the_new_image_files(
    sample_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sample_workspace
    before = stored_state(ws)
    real_put, calls = ws.images.put, []

    def put_then_fail(data, info):  # the first file is written, then the disk "fills up"
        calls.append(info.sha256)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return real_put(data, info)

    monkeypatch.setattr(ws.images, "put", put_then_fail)
    with pytest.raises(OSError, match="No space left"):
        catalog.add_uploads(ws, SAMPLE_DATASET, [("a.png", new_png((9, 9, 9))), ("b.png", new_png((8, 8, 8)))])
    assert len(calls) == 2
    assert stored_state(ws) == before  # rows rolled back, the first file deleted again


# -- jobs ---------------------------------------------------------------------------------------------
def test_a_job_records_its_progress_and_result(sample_workspace: Workspace) -> None:
    store = sample_workspace.store
    reported, release = threading.Event(), threading.Event()

    def work(progress: jobs.Progress) -> str:
        progress(1, 3, "first of three")
        reported.set()
        release.wait(10)
        progress(3, 3, "all three")
        return "3 things done"

    job_id = jobs.start_job(store, "test", {"dataset": SAMPLE_DATASET, "n": 3}, work)
    assert reported.wait(10)
    running = jobs.job(store, job_id)
    assert (running["status"], running["done"], running["total"], running["message"]) == (
        "running",
        1,
        3,
        "first of three",
    )
    assert running["params"] == {"dataset": SAMPLE_DATASET, "n": 3} and running["kind"] == "test"
    assert jobs.recent_jobs(store, "test")["job_id"].tolist() == [job_id]
    with pytest.raises(TimeoutError, match="still running"):
        jobs.wait(store, job_id, timeout=0.2)

    release.set()
    done = jobs.wait(store, job_id, timeout=10)
    assert (done["status"], done["done"], done["total"], done["message"], done["error"]) == (
        "done",
        3,
        3,
        "3 things done",
        None,
    )
    assert done["elapsed_s"] > 0 and done["items_per_s"] > 0
    assert jobs.recent_jobs(store, "other-kind").empty


@pytest.mark.parametrize(
    "error, line",
    [
        (ValueError("Model folder /x does not exist.\nTraceback details"), "Model folder /x does not exist."),
        (KeyError("Unknown item(s) ['a'] in data set 'sample'."), "Unknown item(s) ['a'] in data set 'sample'."),
        (RuntimeError(), "RuntimeError"),
    ],
)
def test_a_failed_job_records_one_readable_line(sample_workspace: Workspace, error: Exception, line: str) -> None:
    def work(progress: jobs.Progress) -> None:
        progress(0, 5, "starting")
        raise error

    failed = jobs.wait(sample_workspace.store, jobs.start_job(sample_workspace.store, "test", {}, work), timeout=10)
    assert (failed["status"], failed["error"], failed["total"]) == ("failed", line, 5)


def test_a_job_left_running_by_a_dead_process_reads_as_interrupted(sample_workspace: Workspace) -> None:
    store = sample_workspace.store
    store.cursor().execute(
        "INSERT INTO jobs (job_id, kind, status, done, total) VALUES ('old', 'test', 'running', 2, 9)"
    )
    release = threading.Event()
    live = jobs.start_job(store, "test", {}, lambda progress: release.wait(10))
    try:
        orphan = jobs.job(store, "old")
        assert orphan["status"] == "interrupted" and "start it again" in orphan["error"]
        assert jobs.mark_interrupted(store) == 1  # the dead one only, not the one running here
        assert store.scalar("SELECT status FROM jobs WHERE job_id = 'old'") == "interrupted"
        assert jobs.job(store, live)["status"] == "running"
    finally:
        release.set()
    assert jobs.wait(store, live, timeout=10)["status"] == "done"
    assert jobs.mark_interrupted(store) == 0
