"""Export one data set with everything derived from it as Parquet files plus a manifest; import it back.

The export is the interchange format: pandas, polars, DuckDB or Spark read its files directly, and
`import_dataset` loads it into another data folder. Layout of an export folder:

    manifest.json           format, schema and code version, the data set, and per file its rows and sha256
    tables/<table>.parquet  the data set's rows of each table (columns as in `schema.py`)
    images/<sha[:2]>/...    the image files its items point at (content-addressed, as in the image store)
    runs/<run_id>/...       each run's artifact folder (trained model or adapter) where it has one

Import checks every file against the manifest before it touches the store, then replaces the data set's
rows in one transaction, so a tampered or incomplete export changes nothing and importing twice gives
the same store.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmrec_core.store.database import Store
from mmrec_core.store.images import ImageStore
from mmrec_core.store.schema import LATEST_VERSION

FORMAT = "mmrec-export-v1"
_OF_DATASET = "WHERE dataset = $dataset"
_OF_PROTOCOLS = "WHERE protocol_id IN (SELECT protocol_id FROM protocols WHERE dataset = $dataset)"
_OF_RUNS = "WHERE run_id IN (SELECT run_id FROM runs WHERE dataset = $dataset)"
# Each table's rows that belong to one data set, in an order that respects what refers to what.
TABLES = {
    "datasets": _OF_DATASET,
    "images": "WHERE sha256 IN (SELECT image_sha256 FROM items WHERE dataset = $dataset)",
    "items": _OF_DATASET,
    "users": _OF_DATASET,
    "interactions": _OF_DATASET,
    "protocols": _OF_DATASET,
    "splits": _OF_PROTOCOLS,
    "negatives": _OF_PROTOCOLS,
    "item_splits": _OF_DATASET,
    "descriptions": _OF_DATASET,
    "keywords": _OF_DATASET,
    "embeddings": _OF_DATASET,
    "profiles": _OF_DATASET,
    "graph_edges": _OF_DATASET,
    "runs": _OF_DATASET,
    "metrics": _OF_RUNS,
    "user_ranks": _OF_RUNS,
    "llm_scores": _OF_DATASET,
    "attributions": _OF_DATASET,
    "scenarios": _OF_DATASET,
}
# Tables newer than the first export format: an export from an older schema has none (imported as empty).
SINCE_VERSION = {"attributions": 8, "scenarios": 8}


def _tables_of(manifest: dict) -> list[str]:
    """The tables an export of this manifest's schema version holds."""
    return [t for t in TABLES if manifest.get("schema_version", 0) >= SINCE_VERSION.get(t, 0)]


class ExportError(ValueError):
    """An export folder that cannot be imported (unreadable manifest, wrong version, a changed file)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_version() -> str:
    try:
        return version("mmrec-studio")
    except PackageNotFoundError:
        return "unknown"


def export_dataset(store: Store, images: ImageStore, dataset: str, folder: Path, with_images: bool = True) -> dict:
    """Write `dataset` and everything derived from it to `folder` (must be empty or new); returns the manifest.

    Without images the export is much smaller; importing it then needs the image files in the target's
    image store already (ingest the data set's source there first).
    """
    store.require_dataset(dataset)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ExportError(f"Export folder {folder} is not empty; choose a new folder or empty this one.")
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    cur = store.cursor()
    files, counts = {}, {}
    for table, where in TABLES.items():
        rows = cur.sql(f"SELECT * FROM {table} {where}", params={"dataset": dataset}).to_arrow_table()
        if table == "runs":  # where the artifact will be inside the export
            rows = rows.set_column(rows.schema.get_field_index("artifact_path"), "artifact_path",
                                   pa.array(_export_runs(rows, folder), pa.string()))  # fmt: skip
        pq.write_table(rows, folder / "tables" / f"{table}.parquet")
        counts[table] = rows.num_rows
    shas = cur.execute(f"SELECT sha256, ext FROM images {TABLES['images']}", {"dataset": dataset}).fetchall()
    for row in shas if with_images else []:
        source = images.path(*row)
        if source.is_file():
            target = folder / "images" / source.relative_to(images.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[path.relative_to(folder).as_posix()] = _sha256(path)
    manifest = {
        "format": FORMAT,
        "schema_version": LATEST_VERSION,
        "code_version": _code_version(),
        "dataset": dataset,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": counts,
        "images": "included" if with_images else "not included",
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _export_runs(runs: pa.Table, folder: Path) -> list[str | None]:
    """Copy each run's artifact folder to runs/<run_id>; its new relative path (other values are kept)."""
    out = []
    for run_id, path in zip(runs.column("run_id").to_pylist(), runs.column("artifact_path").to_pylist(), strict=True):
        if path and Path(path).is_dir():
            shutil.copytree(path, folder / "runs" / run_id)
            out.append(f"runs/{run_id}")
        else:
            out.append(path)
    return out


def read_manifest(folder: Path) -> dict:
    """The export's manifest, checked: a readable file of this format and a schema this code knows."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no manifest.json; point import at a folder written by `mmrec export`.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path} is not a readable manifest ({exc}); export the data set again.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"{path} is not an {FORMAT} manifest; export the data set again with this mmrec.")
    if not isinstance(manifest.get("schema_version"), int) or manifest["schema_version"] > LATEST_VERSION:
        raise ExportError(
            f"{path} was written with schema version {manifest.get('schema_version')}, newer than this mmrec's "
            f"({LATEST_VERSION}); upgrade mmrec-studio to import it."
        )
    return manifest


def verify(folder: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its sha256, and every table is listed."""
    folder = Path(folder)
    for table in _tables_of(manifest):
        if f"tables/{table}.parquet" not in manifest.get("files", {}):
            raise ExportError(f"The manifest in {folder} lists no tables/{table}.parquet; export the data set again.")
    for name, digest in manifest["files"].items():
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ExportError(f"The manifest in {folder} names a file outside the export ({name}); refused.")
        if not path.is_file():
            raise ExportError(f"{path} is missing from the export; copy the whole export folder again.")
        if _sha256(path) != digest:
            raise ExportError(f"{path} differs from the manifest (sha256); the export was changed or damaged.")


def import_dataset(store: Store, images: ImageStore, folder: Path, runs_dir: Path) -> dict:
    """Load an export into this store, replacing the data set's rows in one transaction; returns the manifest.

    Images go into the image store (content-addressed: kept once), run folders under `runs_dir`.
    Files are checked first, so a damaged export changes nothing.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    verify(folder, manifest)
    dataset = manifest["dataset"]
    tables = {t: pq.read_table(folder / "tables" / f"{t}.parquet") for t in _tables_of(manifest)}
    datasets = tables["datasets"].column("dataset").to_pylist()
    if datasets != [dataset]:
        raise ExportError(f"{folder}: tables/datasets.parquet holds {datasets}, not the manifest's '{dataset}'.")
    for name in manifest["files"]:
        if name.startswith("images/"):
            target = images.root / Path(name).relative_to("images")
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / name, target)
    image_rows = tables["images"].select(["sha256", "ext"]).to_pylist()
    missing = [r["sha256"] for r in image_rows if not images.path(r["sha256"], r["ext"]).is_file()]
    if missing:
        raise ExportError(
            f"{len(missing)} image file(s) of '{dataset}' are neither in {folder} (exported without images) nor in "
            f"this image store ({images.root}), e.g. {missing[0]}; ingest the data set's source here first."
        )
    runs = tables["runs"]
    paths = []
    for path in runs.column("artifact_path").to_pylist():
        if path and path.startswith("runs/"):  # copied into the export: place it in this data folder
            target = runs_dir / Path(path).name
            if not target.is_dir():
                shutil.copytree(folder / path, target)
            path = str(target)
        paths.append(path)
    tables["runs"] = runs.set_column(runs.schema.get_field_index("artifact_path"), "artifact_path",
                                     pa.array(paths, pa.string()))  # fmt: skip
    with store.transaction() as tx:
        store._delete_dataset(tx, dataset)
        for table, rows in tables.items():
            tx.register("_import", rows)
            if table == "images":  # shared between data sets: add the ones not yet known
                tx.execute(
                    "INSERT INTO images BY NAME SELECT * FROM _import WHERE sha256 NOT IN (SELECT sha256 FROM images)"
                )
            else:
                tx.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _import")
            tx.unregister("_import")
        _record_import(tx, folder, manifest)
    return manifest


def _record_import(tx, folder: Path, manifest: dict) -> None:
    """A run row saying where the data set's results came from (the Overview shows it)."""
    run_id = "import-" + _sha256(folder / "manifest.json")[:10]
    params = {k: manifest[k] for k in ("exported_at", "code_version", "schema_version", "images", "rows")}
    tx.execute("DELETE FROM runs WHERE run_id = ?", [run_id])  # an export of an import holds it already
    tx.execute(
        "INSERT INTO runs (run_id, dataset, kind, method, status, finished_at, engine, model, params) "
        "VALUES (?, ?, 'import', 'import', 'done', current_timestamp, 'mmrec export', ?, ?)",
        [run_id, manifest["dataset"], FORMAT, json.dumps({**params, "folder": str(folder)})],
    )
