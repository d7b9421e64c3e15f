"""Importers: one table of broken inputs per format, each must name the problem and leave the
database exactly as it was; idempotent re-ingest; real-data counts from the SOURCE files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.config import SAMPLE_DATA_DIR
from mmrec_core.data.ingest import IngestError, ingest
from mmrec_core.store.database import Store
from mmrec_core.store.workspace import Workspace

from .conftest import HM_DIR, MICROLENS_DIR, needs_hm, needs_microlens

SAMPLE_IMAGE = sorted((SAMPLE_DATA_DIR / "images").glob("*.jpg"))[0]


# -- good fixtures, one per format (small, in the real layouts) -------------------------------------
def make_hm(root: Path) -> Path:
    shutil.copytree(SAMPLE_DATA_DIR, root)
    return root


def make_microlens(root: Path) -> Path:
    root.mkdir()
    (root / "MicroLens-50k_pairs.tsv").write_text("1\t10 11 12 13 14\n2\t11 12 15 16 10 13\n3\t14 15 16 10 11\n")
    titles = pd.DataFrame({"item": range(10, 22), "title": [f"video {i} # funny # food" for i in range(10, 22)]})
    titles.to_csv(root / "MicroLens-50k_titles.csv", index=False)
    return root


def make_movielens(root: Path) -> Path:
    (root / "posters").mkdir(parents=True)
    flags = ["0"] * 19
    rows = []
    for movie, title in ((1, "Toy Story (1995)"), (2, "GoldenEye (1995)"), (3, "Four Rooms (1995)"),
                         (4, "Get Shorty (1995)"), (5, "Copycat (1995)"), (6, "Shanghai Triad (1995)"),
                         (7, "Twelve Monkeys (1995)"), (8, "Babe (1995)"), (9, "Dead Man Walking (1995)"),
                         (10, "Richard III (1995)")):
        f = flags.copy()
        f[movie % 19] = "1"
        rows.append("|".join([str(movie), title, "01-Jan-1995", "", "http://imdb", *f]))
    (root / "u.item").write_text("\n".join(rows) + "\n", encoding="latin-1")
    data = [(u, m, 3, 881250949 + 60 * (u * 10 + m)) for u in (196, 186, 22) for m in range(1, 6)]
    (root / "u.data").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in data))
    shutil.copy(SAMPLE_IMAGE, root / "posters" / "1.jpg")
    return root


ITEMS_RB = (242, 302, 377, 51, 346, 474, 265, 465, 451, 86)


def make_recbole(root: Path) -> Path:
    root.mkdir()
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{i}\t4\t{881250949 + 100 * (u + i)}" for u in (1, 2, 3) for i in ITEMS_RB[:5]]
    (root / "ml-tiny.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    item += [f"{i}\tMovie {i}\t1995\tDrama Comedy" for i in ITEMS_RB]
    (root / "ml-tiny.item").write_text("\n".join(item) + "\n")
    return root


def make_generic(root: Path) -> Path:
    (root / "img").mkdir(parents=True)
    shutil.copy(SAMPLE_IMAGE, root / "img" / "a.jpg")
    pd.DataFrame({"item_id": list("abcdefghij"), "title": [f"Item {c}" for c in "abcdefghij"], "text": "a thing",
                  "category": "tops", "image": ["img/a.jpg"] + [""] * 9}).to_csv(root / "items.csv", index=False)
    rows = [(u, it, f"2020-01-{d:02d}") for u in ("u1", "u2") for d, it in enumerate("abcde", start=1)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(root / "interactions.csv", index=False)
    return root


# The tiny fixtures have 5-7 items: too few for the default 20 negatives per user.
SMALL = {"n_negatives": 2}

MAKERS: dict[str, Callable[[Path], Path]] = {"hm": make_hm, "microlens": make_microlens,
                                             "movielens": make_movielens, "recbole": make_recbole,
                                             "generic": make_generic}


# -- ways to break them ---------------------------------------------------------------------------
def edit_csv(name: str, fn: Callable[[pd.DataFrame], pd.DataFrame], **to_csv) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        df = pd.read_csv(root / name, dtype=str, keep_default_na=False)
        fn(df).to_csv(root / name, index=False, **to_csv)
    return apply


def set_cell(name: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set the value at 1-based data row `row`."""
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row - 1, column] = value
        return df
    return edit_csv(name, fn)


def rewrite(name: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / name
        path.write_text(fn(path.read_text(encoding="latin-1")), encoding="latin-1")
    return apply


def not_an_image(name: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / name).write_text("this is not a JPEG")
    return apply


FIRST_HM_IMAGE = sorted((SAMPLE_DATA_DIR / "images").glob("*.jpg"))[0].name

# (format, how to break it, what the error must say)
BROKEN = [
    ("hm", edit_csv("articles.csv", lambda d: d.drop(columns="prod_name")), ["articles.csv", "prod_name"]),
    ("hm", edit_csv("transactions.csv", lambda d: d, sep=";"), ["transactions.csv", "semicolon"]),
    ("hm", set_cell("transactions.csv", 7, "article_id", "0999999999"),
     ["transactions.csv", "row 7", "article_id", "0999999999"]),
    ("hm", not_an_image(f"images/{FIRST_HM_IMAGE}"), [FIRST_HM_IMAGE, "not a readable image"]),
    ("hm", set_cell("transactions.csv", 3, "customer_id", ""), ["transactions.csv", "row 3", "customer_id"]),
    ("hm", set_cell("transactions.csv", 5, "t_dat", "yesterday"), ["transactions.csv", "row 5", "t_dat"]),
    ("hm", rewrite("transactions.csv", lambda s: s + '2020-01-01,"a,b,c,d,e,f,g\n'), ["transactions.csv", "broken"]),
    ("microlens", rewrite("MicroLens-50k_pairs.tsv", lambda s: s.replace("2\t", "2 ")),
     ["pairs.tsv", "row 2", "tab"]),
    ("microlens", rewrite("MicroLens-50k_pairs.tsv", lambda s: s + "4\t10 99 11 12 13\n"),
     ["pairs.tsv", "row 4", "'99'"]),
    ("microlens", rewrite("MicroLens-50k_titles.csv", lambda s: s.replace("item,title", "item;title", 1)),
     ["titles.csv"]),
    ("movielens", rewrite("u.data", lambda s: s.replace("\t", ",")), ["u.data", "tab-separated"]),
    ("movielens", rewrite("u.data", lambda s: s + "22\t77\t3\t881250949\n"), ["u.data", "row 16", "'77'"]),
    ("movielens", rewrite("u.data", lambda s: s.replace("\t3\t", "\tgood\t", 1)), ["u.data", "row 1", "rating"]),
    ("movielens", not_an_image("posters/1.jpg"), ["posters/1.jpg", "not a readable image"]),
    ("movielens", rewrite("u.item", lambda s: s.replace("|", ";")), ["u.item", "pipe-separated"]),
    ("recbole", rewrite("ml-tiny.inter", lambda s: s.replace("\t", ",")), ["ml-tiny.inter", "item_id"]),
    ("recbole", rewrite("ml-tiny.inter", lambda s: s + "4\t999\t3\t881250949\n"),
     ["ml-tiny.inter", "row 16", "'999'"]),
    ("recbole", rewrite("ml-tiny.inter", lambda s: s.replace("\t4\t8", "\t4\tsoon8", 1)),
     ["ml-tiny.inter", "row 1", "timestamp"]),
    ("generic", edit_csv("items.csv", lambda d: d.rename(columns={"item_id": "id"})), ["items.csv", "item_id"]),
    ("generic", edit_csv("interactions.csv", lambda d: d, sep=";"), ["interactions.csv", "semicolon"]),
    ("generic", set_cell("interactions.csv", 4, "item_id", "zz"), ["interactions.csv", "row 4", "'zz'"]),
    ("generic", set_cell("items.csv", 2, "image", "img/missing.jpg"), ["items.csv", "row 2", "image"]),
    ("generic", not_an_image("img/a.jpg"), ["a.jpg", "not a readable image"]),
    ("generic", set_cell("interactions.csv", 2, "timestamp", "31/31/2020"), ["interactions.csv", "row 2", "timestamp"]),
]


def snapshot(ws: Workspace) -> dict:
    """Everything an ingest could touch: every table's rows, and the files in the image store."""
    store: Store = ws.store
    tables = store.sql_df("SELECT table_name FROM information_schema.tables")["table_name"]
    rows = {t: store.sql_df(f"SELECT * FROM {t}").to_csv() for t in tables if t != "schema_version"}
    files = sorted(str(p.relative_to(ws.images.root)) for p in ws.images.root.rglob("*")) \
        if ws.images.root.exists() else []
    return {"rows": rows, "files": files}


@pytest.mark.parametrize(("fmt", "breaker", "expected"), BROKEN,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BROKEN)])
def test_broken_input_is_named_and_changes_nothing(workspace: Workspace, tmp_path: Path, fmt: str,
                                                   breaker: Callable[[Path], None], expected: list[str]) -> None:
    good = MAKERS[fmt](tmp_path / "good")
    ingest(workspace.store, workspace.images, fmt, good, name="base", **SMALL)  # a database with data in it
    before = snapshot(workspace)
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    breaker(broken)
    with pytest.raises(IngestError) as err:
        ingest(workspace.store, workspace.images, fmt, broken, name="other", **SMALL)
    for text in expected:
        assert text in str(err.value), f"{text!r} not in {err.value}"
    # and the same broken data under the existing name must not damage it either
    with pytest.raises(IngestError):
        ingest(workspace.store, workspace.images, fmt, broken, name="base", replace=True, **SMALL)
    assert snapshot(workspace) == before


@pytest.mark.parametrize("fmt", list(MAKERS))
def test_reingest_is_idempotent_and_changed_data_needs_replace(workspace: Workspace, tmp_path: Path,
                                                               fmt: str) -> None:
    src = MAKERS[fmt](tmp_path / "src")
    first = ingest(workspace.store, workspace.images, fmt, src, name="d", **SMALL)
    assert first.status == "ingested" and first.n_interactions > 0 and first.protocol_id
    before = snapshot(workspace)
    assert ingest(workspace.store, workspace.images, fmt, src, name="d", **SMALL).status == "unchanged"
    assert snapshot(workspace) == before

    inter = workspace.store.interactions("d")
    victim = inter.iloc[0]  # drop one source interaction: different content
    _drop_first_interaction(fmt, src)
    with pytest.raises(IngestError, match="already exists with different content"):
        ingest(workspace.store, workspace.images, fmt, src, name="d", **SMALL)
    assert snapshot(workspace) == before
    report = ingest(workspace.store, workspace.images, fmt, src, name="d", replace=True, **SMALL)
    assert report.status == "ingested"
    assert report.n_raw_rows == first.n_raw_rows - (victim["n_rows"] if fmt == "hm" else 1)


def _drop_first_interaction(fmt: str, root: Path) -> None:
    """Remove every source row of the first user's first interaction."""
    if fmt == "hm":
        df = pd.read_csv(root / "transactions.csv", dtype=str)
        first = df.sort_values(["customer_id", "t_dat", "article_id"]).iloc[0]
        same = (df.customer_id == first.customer_id) & (df.article_id == first.article_id) & (df.t_dat == first.t_dat)
        df[~same].to_csv(root / "transactions.csv", index=False)
        return
    name = {"microlens": "MicroLens-50k_pairs.tsv", "movielens": "u.data", "recbole": "ml-tiny.inter",
            "generic": "interactions.csv"}[fmt]
    lines = (root / name).read_text().splitlines(keepends=True)
    if fmt == "microlens":
        user, items = lines[0].rstrip("\n").split("\t")
        lines[0] = f"{user}\t{' '.join(items.split()[1:])}\n"
    else:
        header = 1 if fmt in ("recbole", "generic") else 0
        del lines[header]
    (root / name).write_text("".join(lines))


def test_posters_and_generic_images_land_in_the_content_addressed_store(workspace: Workspace,
                                                                        tmp_path: Path) -> None:
    for fmt in ("movielens", "generic"):
        report = ingest(workspace.store, workspace.images, fmt, MAKERS[fmt](tmp_path / fmt), name=fmt, **SMALL)
        assert report.n_images == 1
    shas = workspace.store.sql_df("SELECT DISTINCT image_sha256 FROM items WHERE image_sha256 IS NOT NULL")
    assert len(shas) == 1  # the same picture, stored once
    stored = workspace.images.find(shas.iloc[0, 0])
    assert stored is not None and stored.read_bytes() == SAMPLE_IMAGE.read_bytes()


@pytest.mark.slow
@needs_hm
def test_hm_counts_match_source(workspace: Workspace) -> None:
    report = ingest(workspace.store, workspace.images, "hm", HM_DIR)
    assert (report.n_items, report.n_images, report.n_users, report.n_raw_rows) == (4116, 4116, 1037, 9925)
    assert report.n_interactions == 8874  # same user/item/day rows collapsed
    attrs = workspace.store.sql_df("SELECT attributes->>'colour_group_name' AS c FROM items WHERE dataset='hm'")
    assert attrs["c"].notna().all()


@pytest.mark.slow
@needs_microlens
def test_microlens_counts_match_source(workspace: Workspace) -> None:
    report = ingest(workspace.store, workspace.images, "microlens", MICROLENS_DIR)
    assert (report.n_users, report.n_items, report.n_interactions) == (50000, 19220, 359708)
    lengths = workspace.store.sql_df("SELECT count(*) AS n FROM interactions GROUP BY user_id")["n"]
    assert (lengths.min(), lengths.max()) == (5, 218)
