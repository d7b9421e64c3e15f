"""Hostile and sloppy inputs: image paths leaving the data set folder, empty tables, repeated ids and
rows, and a database locked by the running app. One table of drills; each names the problem and what
to do, and leaves the database as it was when it refuses."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.cli.main import main
from mmrec_core.config import SAMPLE_DATA_DIR
from mmrec_core.data.ingest import IngestError, IngestReport, ingest
from mmrec_core.store.workspace import Workspace

IMAGES = sorted((SAMPLE_DATA_DIR / "images").glob("*.jpg"))
GOOD_IMAGES = {"a": IMAGES[0], "c": IMAGES[1]}  # real photos for two generic items
SECRET_IMAGE = IMAGES[2]  # a real image that lives OUTSIDE the data set folder in the drills
SMALL = {"n_negatives": 2}  # ten items: too few for the default 20 negatives
OUTSIDE = "is outside the data set folder"


# -- data set folders ------------------------------------------------------------------------------
def make_generic(root: Path, image_b: str = "", timed: bool = True) -> Path:
    """Ten items (a..j; a and c with photos, b's image path chosen by the drill), three users with eight each."""
    (root / "img").mkdir(parents=True)
    for item, src in GOOD_IMAGES.items():
        shutil.copy(src, root / "img" / f"{item}.jpg")
    images = {"a": "img/a.jpg", "b": image_b, "c": "img/c.jpg"}
    ids = list("abcdefghij")
    pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"Item {i}" for i in ids],
            "category": "tops",
            "image": [images.get(i, "") for i in ids],
        }
    ).to_csv(root / "items.csv", index=False)
    rows = [(u, it, f"2020-01-{d:02d}") for u in ("u1", "u2", "u3") for d, it in enumerate("abcdefgh", start=1)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    (inter if timed else inter.drop(columns="timestamp")).to_csv(root / "interactions.csv", index=False)
    return root


def make_hm(root: Path) -> Path:
    shutil.copytree(SAMPLE_DATA_DIR, root, ignore=shutil.ignore_patterns("state"))
    return root


def outside_file(tmp_path: Path) -> Path:
    """A real image beside, not inside, the data set folder (what an attacker would want copied)."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    shutil.copy(SECRET_IMAGE, folder / "secret.jpg")
    return folder / "secret.jpg"


# -- the drills --------------------------------------------------------------------------------------
@dataclass
class Drill:
    """`build(tmp_path) -> source folder`. `refused`: the ingest must fail naming all of `says`.
    Otherwise it succeeds; `skipped` is the item refused on its own (with its image path as given)."""

    fmt: str
    build: Callable[[Path], Path]
    says: list[str]
    refused: bool = False
    skipped: tuple[str, str] | None = None  # (item id, path as written in the source)
    check: Callable[[IngestReport, Path], None] | None = None


def generic_with(path: str | Callable[[Path], str]) -> Callable[[Path], Path]:
    return lambda tmp: make_generic(tmp / "src", path(tmp) if callable(path) else path)


def generic_symlink(tmp: Path) -> Path:
    src = make_generic(tmp / "src", "img/b.jpg")
    (src / "img" / "b.jpg").symlink_to(outside_file(tmp))
    return src


def generic_symlinked_folder(tmp: Path) -> Path:
    src = make_generic(tmp / "src", "pics/b.jpg")
    (src / "pics").symlink_to(outside_file(tmp).parent, target_is_directory=True)
    return src


FIRST_ARTICLE = pd.read_csv(SAMPLE_DATA_DIR / "articles.csv", dtype=str, nrows=1)["article_id"].iloc[0]


def hm_symlinked_image(tmp: Path) -> Path:
    src = make_hm(tmp / "src")
    (src / "images" / f"{FIRST_ARTICLE}.jpg").unlink()
    (src / "images" / f"{FIRST_ARTICLE}.jpg").symlink_to(outside_file(tmp))
    return src


def header_only(fmt: str, name: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        src = (make_hm if fmt == "hm" else make_generic)(tmp / "src")
        path = src / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
        return src

    return build


def repeat_ids(fmt: str) -> Callable[[Path], Path]:
    """Copy the first two item rows to the end of the item file (two ids, each twice)."""

    def build(tmp: Path) -> Path:
        src = (make_hm if fmt == "hm" else make_generic)(tmp / "src")
        path = src / ("articles.csv" if fmt == "hm" else "items.csv")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        pd.concat([df, df.iloc[:2]]).to_csv(path, index=False)
        return src

    return build


N_REPEATS = 3


def repeat_rows(fmt: str, timed: bool = True) -> Callable[[Path], Path]:
    """Append copies of the first N_REPEATS interaction rows, byte for byte."""

    def build(tmp: Path) -> Path:
        src = make_hm(tmp / "src") if fmt == "hm" else make_generic(tmp / "src", timed=timed)
        path = src / ("transactions.csv" if fmt == "hm" else "interactions.csv")
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines + lines[1 : 1 + N_REPEATS]))
        return src

    return build


def counts_repeats(merged: bool) -> Callable[[IngestReport, Path], None]:
    def check(report: IngestReport, src: Path) -> None:
        # The H&M sample has exact repeats of its own (same day, customer, article, price, channel).
        hm = (src / "transactions.csv").is_file()
        already = int(pd.read_csv(SAMPLE_DATA_DIR / "transactions.csv", dtype=str).duplicated().sum()) if hm else 0
        assert report.n_duplicate_rows == already + N_REPEATS
        assert report.duplicates_merged is merged
        assert f"{already + N_REPEATS:,} exact duplicate source rows" in str(report)

    return check


DRILLS = {
    "relative-escape": Drill("generic", generic_with("../../etc/passwd"), [OUTSIDE], skipped=("b", "../../etc/passwd")),
    "absolute-system-file": Drill("generic", generic_with("/etc/shadow"), [OUTSIDE], skipped=("b", "/etc/shadow")),
    "absolute-missing-file": Drill(
        "generic", generic_with("/nonexistent/nothing.jpg"), [OUTSIDE], skipped=("b", "/nonexistent/nothing.jpg")
    ),
    "absolute-real-image": Drill(
        "generic", generic_with(lambda t: str(outside_file(t))), [OUTSIDE], skipped=("b", "<outside>")
    ),
    "symlink-out": Drill("generic", generic_symlink, [OUTSIDE], skipped=("b", "img/b.jpg")),
    "symlinked-folder-out": Drill("generic", generic_symlinked_folder, [OUTSIDE], skipped=("b", "pics/b.jpg")),
    "hm-symlink-out": Drill(
        "hm", hm_symlinked_image, [OUTSIDE], skipped=(FIRST_ARTICLE, f"images/{FIRST_ARTICLE}.jpg")
    ),
    "hm-header-only-transactions": Drill(
        "hm", header_only("hm", "transactions.csv"), ["transactions.csv", "no data rows", "Add the rows"], refused=True
    ),
    "generic-header-only-interactions": Drill(
        "generic",
        header_only("generic", "interactions.csv"),
        ["interactions.csv", "no data rows", "Add the rows"],
        refused=True,
    ),
    "generic-header-only-items": Drill(
        "generic", header_only("generic", "items.csv"), ["items.csv", "no data rows"], refused=True
    ),
    "hm-repeated-article-ids": Drill(
        "hm",
        repeat_ids("hm"),
        [
            "articles.csv",
            "column 'article_id'",
            f"'{FIRST_ARTICLE}' appears 2 times",
            "rows 1, 563",
            "2 ids are repeated",
            "must be unique",
        ],
        refused=True,
    ),
    "generic-repeated-item-ids": Drill(
        "generic",
        repeat_ids("generic"),
        ["items.csv", "'a' appears 2 times", "rows 1, 11", "'b' (rows 2, 12)"],
        refused=True,
    ),
    "hm-exact-repeated-rows": Drill("hm", repeat_rows("hm"), [], check=counts_repeats(merged=True)),
    "generic-exact-repeated-rows-untimed": Drill(
        "generic", repeat_rows("generic", timed=False), [], check=counts_repeats(merged=False)
    ),
}


def row_counts(ws: Workspace) -> dict[str, int]:
    tables = ws.store.sql_df("SELECT table_name FROM information_schema.tables")["table_name"]
    return {t: int(ws.store.scalar(f"SELECT count(*) FROM {t}")) for t in tables}


def stored_images(ws: Workspace) -> set[str]:
    """sha256 of every file in the image store (by content, whatever the file is called)."""
    root = ws.images.root
    files = root.rglob("*") if root.exists() else []
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(DRILLS))
def test_hostile_input_is_refused_clearly(workspace: Workspace, tmp_path: Path, name: str) -> None:
    drill = DRILLS[name]
    base = make_generic(tmp_path / "base")  # a database with data in it already
    ingest(workspace.store, workspace.images, "generic", base, name="base", **SMALL)
    before_rows, before_files = row_counts(workspace), stored_images(workspace)
    src = drill.build(tmp_path)
    secret = sha(SECRET_IMAGE)

    if drill.refused:
        with pytest.raises(IngestError) as err:
            ingest(workspace.store, workspace.images, drill.fmt, src, name="d", **SMALL)
        for text in drill.says:
            assert text in str(err.value), f"{text!r} not in {err.value}"
        assert "min_history" not in str(err.value)
        assert row_counts(workspace) == before_rows and stored_images(workspace) == before_files
        return

    report = ingest(workspace.store, workspace.images, drill.fmt, src, name="d", **SMALL)
    assert report.status == "ingested"
    text = str(report)
    for expected in drill.says:
        assert expected in text
    stored_items = set(workspace.store.item_ids("d"))
    if drill.skipped is not None:
        item, given = drill.skipped
        given = str(tmp_path / "outside" / "secret.jpg") if given == "<outside>" else given
        items_file = src / ("articles.csv" if drill.fmt == "hm" else "items.csv")
        column = "article_id" if drill.fmt == "hm" else "image"
        row = 1 if drill.fmt == "hm" else 2
        # One message shape for every outside path, existing or not: nothing about the file itself.
        assert report.skipped == [
            f"{items_file.resolve()}, row {row}, column '{column}': item '{item}' skipped: its image path "
            f"'{given}' {OUTSIDE} {src.resolve()}. Copy the image into that folder and give its path relative "
            "to it (a symlink that points outside is refused too)."
        ]
        assert f"skipped 1 item(s) and their {report.n_skipped_rows} interaction row(s)" in text
        assert item not in stored_items
        assert item not in set(workspace.store.interactions("d")["item_id"])
        if drill.fmt == "generic":  # the batch went on: every other item, with its own photo
            assert stored_items == set("acdefghij") and report.n_images == 2
            assert report.n_skipped_rows == 3 and report.n_interactions == 3 * 7
            assert stored_images(workspace) == before_files | {sha(p) for p in GOOD_IMAGES.values()}
        else:
            assert len(stored_items) == 561
    # Whatever happened, the file outside the folder never reached the store (unless it was stored before
    # from inside a folder, which only the H&M sample does: it ships that very photo).
    if drill.fmt == "generic":
        assert secret not in stored_images(workspace)
    if drill.check is not None:
        drill.check(report, src)


def test_outside_path_from_the_command_line_is_reported_per_item(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_generic(tmp_path / "src", "../../etc/passwd")
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "ingest", "generic", str(src), "--negatives", "2"]) == 0
    out = capsys.readouterr().out
    assert "src: ingested - 9 items (2 with images)" in out
    assert "skipped 1 item(s)" in out and "item 'b' skipped: its image path '../../etc/passwd'" in out
    assert OUTSIDE in out and "root:" not in out  # the file's content is never echoed either


# -- the database held by another process (the app) ---------------------------------------------------
HOLD = (
    "import sys, time\n"
    "from mmrec_core.config import load_settings\n"
    "from mmrec_core.store import Store\n"
    "from mmrec_core.store.workspace import open_workspace\n"
    "root = sys.argv[1]\n"
    "held = Store(root + '/mmrec.duckdb', read_only=True) if sys.argv[2] == 'reader' "
    "else open_workspace(load_settings(root))\n"
    "print('open', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def loaded_folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert (
        main(["--data-dir", str(data), "ingest", "generic", str(make_generic(tmp_path / "shop")), "--negatives", "2"])
        == 0
    )
    return data


def hold(data: Path, how: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data), how], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "open"
    return proc


@pytest.mark.parametrize(
    ("given", "names", "not_names"),
    [
        ("--data-dir", "(data folder given with --data-dir)", "MMREC_DATA_DIR"),
        ("env", "(data folder from MMREC_DATA_DIR)", "--data-dir"),
    ],
)
def test_info_while_the_app_holds_the_database(
    loaded_folder: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
    names: str,
    not_names: str,
) -> None:
    app = hold(loaded_folder, "writer")
    try:
        capsys.readouterr()
        if given == "env":
            monkeypatch.setenv("MMREC_DATA_DIR", str(loaded_folder))
            argv = ["info"]
        else:
            monkeypatch.delenv("MMREC_DATA_DIR", raising=False)
            argv = ["--data-dir", str(loaded_folder), "info"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("mmrec info: error: The database ") and err.count("\n") == 1
        assert str(loaded_folder / "mmrec.duckdb") in err and names in err and not_names not in err
        assert f"PID {app.pid}" in err and "run this command again when that process has finished" in err

        # A writing command is told how to use another folder the same way it chose this one.
        assert main([*argv[:-1], "protocol", "shop"]) == 2
        err = capsys.readouterr().err
        advice = "pass another folder to --data-dir" if given == "--data-dir" else "set MMREC_DATA_DIR to another"
        assert advice in err and not_names not in err
    finally:
        app.kill()
        app.wait()


def test_info_reads_beside_another_reader(loaded_folder: Path, capsys: pytest.CaptureFixture) -> None:
    reader = hold(loaded_folder, "reader")  # e.g. another `mmrec info`: no write lock, so both may read
    try:
        capsys.readouterr()
        assert main(["--data-dir", str(loaded_folder), "info"]) == 0
        assert "== shop (generic" in capsys.readouterr().out
    finally:
        reader.kill()
        reader.wait()
