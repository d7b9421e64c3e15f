"""Item photo vectors (`graph.images`) and content-SASRec reading them beside the item texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmrec_core.config import SAMPLE_DATASET
from mmrec_core.data.ingest import ingest
from mmrec_core.graph.images import ITEM_IMAGE_KIND, embed_item_images, item_image_matrix
from mmrec_core.models.data import load_train_data
from mmrec_core.models.registry import attach_item_vectors
from mmrec_core.models.sasrec import ContentSASRec, ContentSASRecConfig
from mmrec_core.store.workspace import default_protocol

from .test_ingest import SMALL, make_generic, make_microlens


@pytest.mark.slow
def test_sample_photos_are_embedded_once_with_provenance_and_a_broken_one_is_skipped(sample_workspace):
    ws = sample_workspace
    items = ws.store.items_with_images(SAMPLE_DATASET)
    broken = items.iloc[7]
    ws.images.path(broken["image_sha256"], broken["ext"]).write_bytes(b"not an image at all")

    report = embed_item_images(ws, SAMPLE_DATASET)
    assert (report.embedded, report.reused, report.without_image) == (len(items) - 1, 0, 0)
    assert [item for item, _ in report.failed] == [broken["item_id"]] and "unreadable" in str(report)
    stored = ws.store.embeddings(SAMPLE_DATASET, ITEM_IMAGE_KIND)
    assert len(stored) == len(items) - 1 and broken["item_id"] not in set(stored["key"])
    vectors = np.stack(stored["vector"].map(np.asarray))
    assert vectors.shape[1] == 1280
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert stored["model"].str.startswith("efficientnet-lite0 pooled features").all()

    # the vectors say what the photo shows: garments of one product type look more alike than two types do
    types = items.set_index("item_id")["attributes"].map(lambda a: json.loads(a).get("product_type_name"))
    kinds = types.loc[stored["key"]].to_numpy()
    similar = vectors @ vectors.T
    same = kinds[:, None] == kinds[None, :]
    off_diagonal = ~np.eye(len(kinds), dtype=bool)
    assert similar[same & off_diagonal].mean() > similar[~same].mean() + 0.05

    again = embed_item_images(ws, SAMPLE_DATASET)  # a re-run embeds nothing it has (the broken photo is retried)
    assert (again.embedded, again.reused, len(again.failed)) == (0, len(items) - 1, 1)


def test_items_without_a_photo_get_zeros_and_a_catalog_without_photos_is_refused_by_name(workspace, tmp_path):
    ingest(workspace.store, workspace.images, "generic", make_generic(tmp_path / "g"), name="g", **SMALL)
    report = embed_item_images(workspace, "g")
    assert (report.embedded, report.without_image) == (1, 9)  # make_generic gives item "a" its one photo
    ids = list("abcdefghij")
    matrix, has = item_image_matrix(workspace, "g", ids)
    assert has.tolist() == [True] + [False] * 9
    assert np.linalg.norm(matrix[0]) == pytest.approx(1.0, abs=1e-5) and not matrix[1:].any()

    ingest(workspace.store, workspace.images, "microlens", make_microlens(tmp_path / "m"), name="m", **SMALL)
    assert embed_item_images(workspace, "m").embedded == 0
    with pytest.raises(KeyError, match="No item photo vectors are stored for m.*--content text"):
        item_image_matrix(workspace, "m", ["10", "11"])

    # content-sasrec on a catalog without photos reads the text alone and says so in its run
    from mmrec_core.graph.build import build_item_graph
    from mmrec_core.models.registry import train_model
    from tests.fakes import ScriptedEngine

    pid = default_protocol(workspace, "m")
    build_item_graph(workspace, ScriptedEngine(workspace.settings), "m", pid)
    train_model(workspace, "m", "content-sasrec", pid, ContentSASRecConfig(epochs=1, patience=1, hidden=8))
    params = json.loads(workspace.store.latest_train_run("m", pid, "content-sasrec")["params"])
    assert (params["content"], params["content_used"]) == ("text+image", "text")


@pytest.mark.slow
def test_content_sasrec_reads_text_and_photo_vectors_trains_and_reloads(sample_workspace, tmp_path):
    from mmrec_core.data.splits import create_protocol
    from mmrec_core.graph.build import build_item_graph
    from tests.fakes import ScriptedEngine

    ws = sample_workspace
    pid = create_protocol(ws.store, SAMPLE_DATASET)
    build_item_graph(ws, ScriptedEngine(ws.settings), SAMPLE_DATASET, pid)  # the item text vectors
    text = attach_item_vectors(ws, load_train_data(ws.store, SAMPLE_DATASET, pid)).item_features
    texts_made = ws.store.newest_created("embeddings", SAMPLE_DATASET, kinds=("item:text",))
    assert ws.store.newest_created("embeddings", SAMPLE_DATASET, kinds=("item:image",)) is None
    with pytest.raises(KeyError, match="train content-sasrec sample` embeds the photos"):  # not embedded yet
        attach_item_vectors(ws, load_train_data(ws.store, SAMPLE_DATASET, pid), "text+image")
    embed_item_images(ws, SAMPLE_DATASET)
    data = attach_item_vectors(ws, load_train_data(ws.store, SAMPLE_DATASET, pid), "text+image")
    # the photos are embedded now; models reading the item texts alone (lightgcn) are not made stale by them
    assert ws.store.newest_created("embeddings", SAMPLE_DATASET, kinds=("item:image",)) > texts_made
    assert ws.store.newest_created("embeddings", SAMPLE_DATASET, kinds=("item:text",)) == texts_made
    assert data.item_features.shape == (text.shape[0], text.shape[1] + 1280)
    np.testing.assert_array_equal(data.item_features[:, : text.shape[1]], text)  # the text part is unchanged
    photos, _ = item_image_matrix(ws, SAMPLE_DATASET, list(data.item_ids))
    np.testing.assert_array_equal(data.item_features[:, text.shape[1] :], photos)

    model = ContentSASRec(ContentSASRecConfig(content="text+image", epochs=1, patience=1, hidden=16))
    model.fit(data)
    model.save(tmp_path / "m")
    test = data.parts["test"]
    again = ContentSASRec.load(tmp_path / "m", ContentSASRecConfig)
    np.testing.assert_allclose(again.score(test.users, test.histories), model.score(test.users, test.histories))
    with pytest.raises(ValueError, match="Unknown content 'pixels'"):
        attach_item_vectors(ws, load_train_data(ws.store, SAMPLE_DATASET, pid), "pixels")


def test_a_run_made_before_a_setting_existed_counts_with_what_it_used_then(sample_workspace):
    from mmrec_core.pipeline.stages import trained_current

    ws = sample_workspace
    pid = default_protocol(ws, SAMPLE_DATASET)
    folder = ws.settings.data_dir / "runs" / "x"
    now = vars(ContentSASRecConfig())
    assert now["content"] == "text+image"

    def current(**params) -> bool:
        ws.store.record_run(SAMPLE_DATASET, pid, "train", "content-sasrec", params, folder)
        return trained_current(ws, SAMPLE_DATASET, pid, "content-sasrec")

    before = {k: v for k, v in now.items() if k != "content"}
    assert not current(**before)  # made before --content existed: it read text only, so it is behind
    assert current(**now)
    assert not current(**{**now, "content": "text"})
    assert not current(**{k: v for k, v in now.items() if k != "patience"})  # a field that says nothing: behind


def test_train_cli_offers_the_content_choices_by_name(sample_workspace, capsys):
    from mmrec_core.cli.main import main

    ws = sample_workspace
    ws.close()
    with pytest.raises(SystemExit) as stop:
        main(["--data-dir", str(ws.settings.data_dir), "train", "content-sasrec", "sample", "--content", "pixels"])
    assert stop.value.code == 2
    assert "--content: invalid choice: 'pixels' (choose from 'text', 'text+image')" in capsys.readouterr().err
