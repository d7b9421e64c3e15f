"""Hostile and awkward images: bombs, non-images, 16-bit PNGs, EXIF rotation, MPO photos, oversize files and
batches, two sessions uploading the same image at once, memory under a hard limit, and orphaned files.

Each drill names the file and the limit or problem in its message and leaves the database as it was, or
stores the image correctly (right pixels, right orientation).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmrec_core.cli.main import main
from mmrec_core.config import IMAGE_LIMITS, SAMPLE_DATASET, load_settings
from mmrec_core.store.gc import collect_garbage
from mmrec_core.store.images import BadImageError, inspect_image, read_image_file
from mmrec_core.store.workspace import Workspace, open_workspace
from mmrec_core.textualize import catalog
from tests.app_helpers import run_app

REPO = Path(__file__).resolve().parent.parent
BOMB_SIDE = 13000  # 169 megapixels: under Pillow's own bomb limit, over ours; 1-bit, so the PNG is ~20 KB
HOUR = 3600


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def bomb_png() -> bytes:
    return png(Image.new("1", (BOMB_SIDE, BOMB_SIDE)))


def grey16_png() -> bytes:
    """A 16-bit greyscale gradient (mode I;16): a naive convert("RGB") makes it 99.6% white."""
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    return png(Image.fromarray(values))


def rotated_jpeg() -> bytes:
    """60x20 pixels stored, with EXIF orientation 6 ("rotate 90 clockwise to view"): upright it is 20x60."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), (200, 20, 20)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def mpo() -> bytes:
    """A two-frame MPO (as many cameras write): a JPEG whose first frame is the photo."""
    buf = io.BytesIO()
    first, second = Image.new("RGB", (40, 30), (10, 160, 10)), Image.new("RGB", (40, 30), (250, 250, 250))
    first.save(buf, format="MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def small_png(i: int) -> bytes:
    return png(Image.new("RGB", (8, 8), (i % 256, 7, 99)))


def row_counts(ws: Workspace) -> tuple[int, int]:
    return ws.store.count("items", SAMPLE_DATASET), ws.store.scalar("SELECT count(*) FROM images")


def image_files(ws: Workspace) -> list[Path]:
    return sorted(p for p in ws.images.root.rglob("*") if p.is_file())


def stored_item(ws: Workspace, data: bytes) -> dict:
    item = ws.store.item(SAMPLE_DATASET, f"upload-{hashlib.sha256(data).hexdigest()[:12]}")
    image = ws.store.sql_df("SELECT * FROM images WHERE sha256 = ?", [item["image_sha256"]]).iloc[0]
    return {**item, "width": int(image["width"]), "height": int(image["height"])}


# -- checks on what was stored ------------------------------------------------------------------------
def check_grey16(ws: Workspace, data: bytes) -> None:
    item = stored_item(ws, data)
    pixels = np.asarray(ws.images.open(item["image_sha256"], item["ext"]))
    assert pixels.shape == (48, 64, 3)
    assert (pixels == 255).mean() < 0.05 and 100 < pixels.mean() < 155  # the gradient, not a white sheet
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255


def check_rotated(ws: Workspace, data: bytes) -> None:
    item = stored_item(ws, data)
    assert (item["width"], item["height"]) == (20, 60)
    assert ws.images.open(item["image_sha256"], item["ext"]).size == (20, 60)


def check_mpo(ws: Workspace, data: bytes) -> None:
    item = stored_item(ws, data)
    assert item["ext"] == "jpg" and (item["width"], item["height"]) == (40, 30)
    r, g, b = np.asarray(ws.images.open(item["image_sha256"], item["ext"])).reshape(-1, 3).mean(axis=0)
    assert g > 120 and r < 60 and b < 60  # the first frame (green), not the second (white)


# Each drill: the batch to upload, then either the message it must raise (the database then unchanged)
# or a check of what was stored.
Drill = tuple[Callable[[], list[tuple[str, bytes]]], str | None, Callable[[Workspace, bytes], None] | None]
DRILLS: dict[str, Drill] = {
    "13000 px PNG bomb": (
        lambda: [("bomb.png", bomb_png())],
        r"bomb\.png: 13000x13000 pixels \(169 megapixels\) is over the 50 megapixel image limit",
        None,
    ),
    "not an image": (
        lambda: [("scarf.png", small_png(1)), ("notes.jpg", b"shopping list: socks, tights\n")],
        r"notes\.jpg: not a readable image \(not a known image format\)\. Replace or remove the file\.$",
        None,
    ),
    "16-bit PNG": (lambda: [("grey16.png", grey16_png())], None, check_grey16),
    "EXIF-rotated JPEG": (lambda: [("phone.jpg", rotated_jpeg())], None, check_rotated),
    "MPO photo": (lambda: [("camera.jpg", mpo())], None, check_mpo),
    "file over 20 MB": (
        lambda: [("scarf.png", small_png(2)), ("poster.jpg", b"\xff\xd8" + bytes(IMAGE_LIMITS.max_bytes))],
        r"poster\.jpg: 21\.0 MB is over the 20 MB image limit; downscale it first\.",
        None,
    ),
    "too many files": (
        lambda: [(f"swatch {i}.png", small_png(i)) for i in range(IMAGE_LIMITS.max_upload_files + 1)],
        rf"{IMAGE_LIMITS.max_upload_files + 1} files in one upload is over the limit of "
        rf"{IMAGE_LIMITS.max_upload_files} images per upload",
        None,
    ),
}


@pytest.mark.parametrize("drill", DRILLS.values(), ids=DRILLS.keys())
def test_drill(sample_workspace: Workspace, drill: Drill) -> None:
    ws = sample_workspace
    make, message, check = drill
    batch = make()
    before, files = row_counts(ws), image_files(ws)
    if message is not None:
        with pytest.raises(BadImageError, match=message) as caught:
            catalog.add_uploads(ws, SAMPLE_DATASET, batch)
        assert "object at 0x" not in str(caught.value)  # the file's name, not a Python object's address
        assert row_counts(ws) == before and image_files(ws) == files
    else:
        ids = catalog.add_uploads(ws, SAMPLE_DATASET, batch)
        assert len(ids) == 1 and row_counts(ws) == (before[0] + 1, before[1] + 1)
        check(ws, batch[0][1])


def test_a_large_but_allowed_image_is_decoded_reduced(sample_workspace: Workspace) -> None:
    ws = sample_workspace
    data = png(Image.new("1", (6000, 3000), 1))  # 18 megapixels: accepted, decoded at most decode_side wide
    (item_id,) = catalog.add_uploads(ws, SAMPLE_DATASET, [("banner.png", data)])
    item = ws.store.item(SAMPLE_DATASET, item_id)
    assert ws.store.scalar("SELECT width FROM images WHERE sha256 = ?", [item["image_sha256"]]) == 6000
    assert ws.images.open(item["image_sha256"], item["ext"]).size == (IMAGE_LIMITS.decode_side, 1024)


# -- two sessions, one image ------------------------------------------------------------------------
def assert_stored_once(ws: Workspace, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    item_id = f"upload-{sha[:12]}"
    n_items = ws.store.scalar("SELECT count(*) FROM items WHERE dataset = ? AND item_id = ?", [SAMPLE_DATASET, item_id])
    assert n_items == 1 and ws.store.scalar("SELECT count(*) FROM images WHERE sha256 = ?", [sha]) == 1
    path = ws.images.path(sha, "png")
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert not list(ws.images.root.rglob("*.part"))


def in_two_threads(session: Callable[[str], None]) -> None:
    """Run `session("a")` and `session("b")` at once, each in its own thread, and wait for both."""
    threads = [threading.Thread(target=session, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_two_sessions_uploading_the_same_image_store_it_once(sample_workspace: Workspace) -> None:
    ws, data = sample_workspace, png(Image.new("RGB", (32, 32), (1, 99, 200)))
    start, results = threading.Barrier(2), {}

    def session(name: str) -> None:
        start.wait(10)
        try:
            results[name] = catalog.add_uploads(ws, SAMPLE_DATASET, [(f"{name}.png", data)])
        except Exception as exc:  # a loser may fail, but only with a clear message
            results[name] = exc

    in_two_threads(session)
    ok = [r for r in results.values() if isinstance(r, list)]
    failed = [r for r in results.values() if not isinstance(r, list)]
    assert len(results) == 2 and ok and all(r == ok[0] for r in ok)
    assert all("nothing was stored" in str(r) and "Try again" in str(r) for r in failed), failed
    assert_stored_once(ws, data)


def test_concurrent_transactions_insert_or_get_the_same_rows(sample_workspace: Workspace) -> None:
    """The store's own guarantee, without the process lock: both transactions insert, both reach the commit;
    DuckDB refuses the second commit and the retry finds the rows stored."""
    ws, data = sample_workspace, png(Image.new("RGB", (32, 32), (5, 5, 250)))
    info = inspect_image(data, "same.png")
    item_id = catalog.upload_id(info)
    items = pd.DataFrame([catalog._item_row(item_id, "same.png", info, "", "")])
    images = pd.DataFrame([vars(info)])
    inside, results, calls = threading.Barrier(2), {}, []

    def session(name: str) -> None:
        def write_files() -> None:
            calls.append(name)
            if calls.count(name) == 1:  # first attempt: wait until the other transaction has inserted too
                inside.wait(10)
            ws.images.put(data, info)

        try:
            results[name] = ws.store.add_uploaded_items(SAMPLE_DATASET, images, items, write_files)
        except Exception as exc:
            results[name] = exc

    in_two_threads(session)
    assert results == {"a": [item_id], "b": [item_id]}
    assert len(calls) == 3  # one of the two commits conflicted and was retried
    assert_stored_once(ws, data)


def test_a_failed_upload_keeps_files_that_committed_rows_reference(
    sample_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sample_workspace
    kept, dropped = png(Image.new("RGB", (9, 9), (1, 1, 1))), png(Image.new("RGB", (9, 9), (2, 2, 2)))
    catalog.add_uploads(ws, SAMPLE_DATASET, [("kept.png", kept)])
    kept_path = ws.images.path(hashlib.sha256(kept).hexdigest(), "png")
    kept_path.unlink()  # lost: the next upload of it writes it again, and its committed row references it
    real_put = ws.images.put

    def put(data: bytes, info):
        if data == dropped:
            raise OSError("No space left on device")
        return real_put(data, info)

    monkeypatch.setattr(ws.images, "put", put)
    before = row_counts(ws)
    with pytest.raises(OSError, match="No space left"):
        catalog.add_uploads(ws, SAMPLE_DATASET, [("kept.png", kept), ("dropped.png", dropped)])
    assert row_counts(ws) == before
    assert kept_path.is_file()  # written by the failed upload, but a committed row points to it: kept
    assert not ws.images.path(hashlib.sha256(dropped).hexdigest(), "png").exists()


def test_any_upload_failure_is_a_message_on_the_page(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def conflict(*args, **kwargs):
        raise duckdb.TransactionException("Failed to commit: write-write conflict")

    monkeypatch.setattr(catalog, "add_uploads", conflict)
    at = run_app("pages/catalog.py")
    at.file_uploader[0].upload("scarf.png", small_png(3), "image/png")
    next(b for b in at.button if b.label == "Add and textualize").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The upload failed and nothing was stored (Failed to commit: write-write conflict). Try again."
    ]


# -- memory --------------------------------------------------------------------------------------------
MEMORY_PROBE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GB of address space, imports included
from pathlib import Path
from mmrec_core.store.images import BadImageError, ImageStore, inspect_image, read_image_file

bomb, huge, store_root, sha = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
for what, probe in [
    ("upload", lambda: inspect_image(bomb.read_bytes(), "bomb.png")),
    ("stored", lambda: ImageStore(store_root).open(sha, "png")),
    ("ingest", lambda: read_image_file(huge)),
]:
    try:
        probe()
        print(what, "decoded")
    except BadImageError as exc:
        print(what, "refused:", exc)
"""


def test_a_pixel_bomb_and_a_huge_file_are_refused_within_one_gigabyte(tmp_path: Path) -> None:
    data = bomb_png()
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    stored = tmp_path / "images" / sha[:2] / f"{sha}.png"  # as if an older version had stored it
    stored.parent.mkdir(parents=True)
    stored.write_bytes(data)
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as fh:
        fh.truncate(3 * 2**30)  # 3 GB, sparse: reading it would need 3 GB of memory
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_PROBE), str(bomb), str(huge), str(tmp_path / "images"), sha],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]  # no MemoryError, no kill
    lines = run.stdout.splitlines()
    assert lines[0].startswith("upload refused: bomb.png: 13000x13000 pixels"), lines
    assert lines[1].startswith(f"stored refused: {stored}: 13000x13000 pixels"), lines
    assert lines[2] == f"ingest refused: {huge}: 3221.2 MB is over the 20 MB image limit; downscale it first.", lines
    with pytest.raises(BadImageError, match=r"huge\.jpg: 3221\.2 MB is over the 20 MB image limit"):
        read_image_file(huge)


# -- orphaned files ------------------------------------------------------------------------------------
def plant(ws: Workspace, name: str, age_s: float, data: bytes = b"x") -> Path:
    """A file in the image folder as an interrupted write leaves it, last written `age_s` seconds ago."""
    path = ws.images.root / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_gc_removes_orphans_and_stale_temp_files_only(sample_workspace: Workspace) -> None:
    ws = sample_workspace
    referenced = image_files(ws)
    orphan_sha = hashlib.sha256(b"orphan").hexdigest()
    orphan = plant(ws, f"{orphan_sha}.jpg", HOUR, b"orphan")
    stale_part = plant(ws, f"{orphan_sha}.k2j4h5.part", HOUR)
    fresh_part = plant(ws, f"{orphan_sha}.abc123.part", 0)  # an upload in flight
    fresh_sha = hashlib.sha256(b"fresh").hexdigest()
    fresh = plant(ws, f"{fresh_sha}.png", 0)  # written, its row not committed yet
    other = plant(ws, "notes.txt", HOUR)  # not a name the image store writes: not ours to delete

    dry = collect_garbage(ws, dry_run=True)
    assert (dry.orphans, dry.parts, dry.kept_recent) == ([orphan], [stale_part], 2)
    assert all(p.exists() for p in (orphan, stale_part, fresh_part, fresh, other))

    report = collect_garbage(ws)
    assert (report.orphans, report.parts) == ([orphan], [stale_part])
    assert "removed 1 unreferenced image file(s) and 1 temp file(s)" in str(report)
    assert not orphan.exists() and not stale_part.exists()
    assert all(p.exists() for p in (fresh_part, fresh, other, *referenced))
    assert len(referenced) == ws.store.scalar("SELECT count(*) FROM images")


def test_gc_command_prints_what_it_removes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    ws = open_workspace(load_settings(root))
    orphan = plant(ws, f"{hashlib.sha256(b'o').hexdigest()}.png", 0)
    ws.close()

    assert main(["--data-dir", str(root), "gc", "--dry-run", "--min-age", "0"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {orphan}" in out and "would remove 1 unreferenced image file(s)" in out and orphan.exists()
    assert main(["--data-dir", str(root), "gc"]) == 0  # default: files younger than 10 minutes stay
    assert "kept 1 recent one(s)" in capsys.readouterr().out and orphan.exists()
    assert main(["--data-dir", str(root), "gc", "--min-age", "0"]) == 0
    assert f"removed {orphan}" in capsys.readouterr().out and not orphan.exists()


def test_app_thumbnails_are_reduced_and_a_bomb_is_refused_not_decoded(tmp_path: Path) -> None:
    import widgets  # the app's shared widgets: thumbnails go through a reduced, cached decode

    large = tmp_path / "large.png"
    large.write_bytes(png(Image.new("RGB", (4000, 1000), (200, 30, 30))))
    thumb = Image.open(io.BytesIO(widgets._thumbnail_bytes(str(large))))
    assert thumb.format == "JPEG" and thumb.size == (512, 128)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    with pytest.raises(BadImageError, match="megapixel"):
        widgets._thumbnail_bytes(str(bomb))
