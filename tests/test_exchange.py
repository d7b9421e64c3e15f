"""`mmrec export` / `mmrec import`: Parquet + manifest round trip of a data set with every stage's results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mmrec_core.cli import main
from mmrec_core.data.ingest import ensure_sample_dataset
from mmrec_core.data.splits import create_protocol
from mmrec_core.evaluate import leaderboard as lb
from mmrec_core.store.exchange import TABLES, ExportError, export_dataset, import_dataset
from mmrec_core.store.workspace import Workspace


@pytest.fixture
def exported(eval_ws: Workspace, tmp_path: Path) -> Path:
    export_dataset(eval_ws.store, eval_ws.images, "sample", tmp_path / "export")
    return tmp_path / "export"


def _board(ws: Workspace) -> pd.DataFrame:
    table = lb.leaderboard(ws, "sample", create_protocol(ws.store, "sample")).table
    return table.drop(columns=["finished_at"]).sort_values("label", ignore_index=True)


def _counts(ws: Workspace) -> dict[str, int]:
    return {t: int(ws.store.scalar(f"SELECT count(*) FROM {t}")) for t in TABLES}


def test_an_import_reproduces_the_leaderboard_and_every_row(eval_ws, exported, workspace):
    manifest = import_dataset(workspace.store, workspace.images, exported, workspace.settings.data_dir / "runs")
    source = _counts(eval_ws)
    assert _counts(workspace) == {**source, "runs": source["runs"] + 1}  # + the import's own record
    imports = workspace.store.imports("sample")
    assert len(imports) == 1 and json.loads(imports["params"][0])["rows"] == manifest["rows"]
    pd.testing.assert_frame_equal(_board(workspace), _board(eval_ws))
    assert len(_board(workspace)) >= 4  # popularity, repeat, SASRec, the LLM (zero-shot and with the adapter)
    sasrec = workspace.store.latest_train_run("sample", create_protocol(workspace.store, "sample"), "sasrec")
    assert Path(sasrec["artifact_path"]).parent == workspace.settings.data_dir / "runs"  # moved with the data
    assert any(Path(sasrec["artifact_path"]).iterdir())
    item = workspace.store.items("sample").iloc[0]
    assert workspace.images.open(item["image_sha256"], "jpg").size[0] > 0


def test_importing_twice_changes_nothing(exported, workspace):
    runs = workspace.settings.data_dir / "runs"
    import_dataset(workspace.store, workspace.images, exported, runs)
    once = _counts(workspace)
    main(["--data-dir", str(workspace.settings.data_dir), "import", str(exported)])
    assert _counts(workspace) == once


def test_a_tampered_table_is_refused_by_name_and_the_store_is_untouched(exported, sample_workspace, capsys):
    path = exported / "tables" / "metrics.parquet"
    frame = pq.read_table(path).to_pandas()
    frame.loc[0, "value"] += 0.1  # one figure changed by hand
    frame.to_parquet(path)
    before = _counts(sample_workspace)
    code = main(["--data-dir", str(sample_workspace.settings.data_dir), "import", str(exported)])
    assert code == 2 and "metrics.parquet differs from the manifest" in capsys.readouterr().err
    assert _counts(sample_workspace) == before


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "manifest.json").write_text("{not json"), "not a readable manifest"),
        (lambda folder: (folder / "manifest.json").unlink(), "no manifest.json"),
        (lambda folder: _edit_manifest(folder, schema_version=999), "newer than this mmrec"),
        (lambda folder: _edit_manifest(folder, format="other"), "is not an mmrec-export-v1 manifest"),
        (lambda folder: (folder / "tables" / "profiles.parquet").unlink(), "profiles.parquet is missing"),
        (lambda folder: _edit_manifest(folder, files={"../../etc/passwd": "0"}), "lists no tables/datasets.parquet"),
    ],
)
def test_an_export_that_cannot_be_read_is_refused_with_what_to_do(exported, workspace, damage, message):
    damage(exported)
    with pytest.raises(ExportError, match=message):
        import_dataset(workspace.store, workspace.images, exported, workspace.settings.data_dir / "runs")
    assert workspace.store.datasets().empty


def test_a_path_outside_the_export_is_refused(exported, workspace):
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["files"]["../outside.txt"] = "0" * 64
    (exported / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="outside the export"):
        import_dataset(workspace.store, workspace.images, exported, workspace.settings.data_dir / "runs")


def test_without_images_the_data_set_must_be_ingested_first(eval_ws, tmp_path, workspace):
    folder = tmp_path / "small"
    manifest = export_dataset(eval_ws.store, eval_ws.images, "sample", folder, with_images=False)
    assert manifest["images"] == "not included" and not (folder / "images").exists()
    with pytest.raises(ExportError, match="ingest the data set's source here first"):
        import_dataset(workspace.store, workspace.images, folder, workspace.settings.data_dir / "runs")
    assert workspace.store.datasets().empty
    ensure_sample_dataset(workspace)
    import_dataset(workspace.store, workspace.images, folder, workspace.settings.data_dir / "runs")
    pd.testing.assert_frame_equal(_board(workspace), _board(eval_ws))


def test_export_refuses_a_folder_in_use_and_an_unknown_data_set(eval_ws, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_dataset(eval_ws.store, eval_ws.images, "sample", tmp_path / "used")
    with pytest.raises(KeyError):
        export_dataset(eval_ws.store, eval_ws.images, "nope", tmp_path / "new")


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, **changes}))


@pytest.fixture
def bundle(eval_ws, tmp_path, monkeypatch) -> Path:
    """The sample's results exported as `make sample-state` does (no images), put where the app looks."""
    import mmrec_core.data.ingest as ingest_module

    folder = tmp_path / "state"
    export_dataset(eval_ws.store, eval_ws.images, "sample", folder, with_images=False)
    monkeypatch.setattr(ingest_module, "SAMPLE_STATE_DIR", folder)
    return folder


def test_the_first_start_loads_the_sample_with_its_bundled_results(bundle, eval_ws, workspace):
    said = ensure_sample_dataset(workspace)
    assert "precomputed results imported" in said
    pd.testing.assert_frame_equal(_board(workspace), _board(eval_ws))
    assert ensure_sample_dataset(workspace) is None  # loaded once


def test_a_damaged_bundle_leaves_the_sample_loaded_without_it(bundle, workspace):
    (bundle / "tables" / "profiles.parquet").write_bytes(b"not parquet")
    said = ensure_sample_dataset(workspace)
    assert "precomputed results were not loaded" in said and "profiles.parquet differs" in said
    assert workspace.store.count("interactions", "sample") > 0 and workspace.store.count("runs", "sample") == 0


def test_explanations_travel_and_an_older_export_imports_without_them(eval_ws, workspace, tmp_path):
    from mmrec_core.core.provenance import Provenance
    from mmrec_core.store.exchange import SINCE_VERSION
    from mmrec_core.store.workspace import default_protocol

    pid, prov = default_protocol(eval_ws, "sample"), Provenance("scripted", "scripted-llm", "rec-v1", {"k": 1})
    rows = pd.DataFrame([{"item_id": "i1", "piece_kind": "purchase", "piece_key": "i0", "piece_text": "Top: black",
                          "score": 0.7, "score_without": 0.5, "rank": 2, "rank_without": 7}])  # fmt: skip
    eval_ws.store.write_attribution("sample", pid, "u1", rows, prov, "key1")
    eval_ws.store.save_scenario("sample", pid, "u1", "no swimwear", {"profile": "x"}, [{"item_id": "i1"}], prov)
    export_dataset(eval_ws.store, eval_ws.images, "sample", tmp_path / "new")
    import_dataset(workspace.store, workspace.images, tmp_path / "new", workspace.settings.data_dir / "runs")
    assert workspace.store.attribution("sample", pid, "u1", "key1")["score_without"].tolist() == [0.5]
    assert workspace.store.scenarios("sample", pid, "u1")["name"].tolist() == ["no swimwear"]
    # an export made before the explanation tables existed (an older schema, no such files) imports with none of them
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "new", old)
    manifest = json.loads((old / "manifest.json").read_text())
    for table in SINCE_VERSION:
        (old / "tables" / f"{table}.parquet").unlink()
        manifest["files"].pop(f"tables/{table}.parquet")
        manifest["rows"].pop(table, None)
    manifest["schema_version"] = min(SINCE_VERSION.values()) - 1
    (old / "manifest.json").write_text(json.dumps(manifest))
    main(["--data-dir", str(workspace.settings.data_dir), "import", str(old)])
    assert workspace.store.attribution("sample", pid, "u1", "key1").empty
