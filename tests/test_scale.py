"""The Ray backend (`scale/`): the same texts and scores as the single-process path, resumable by shard.

A local Ray instance (2 CPUs) runs the jobs; its workers import `tests.fakes` through PYTHONPATH. The
scripted engine gives the exact comparisons in seconds; one slow test runs the real builtin engine.
"""

from __future__ import annotations

import shutil
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.cli.main import main
from mmrec_core.config import load_settings
from mmrec_core.evaluate.llm import evaluate_llm, pick_users, prepare_task, scored_by
from mmrec_core.models.data import load_train_data
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.scale.jobs import ScaleConfig, ShardJob
from mmrec_core.scale.scoring import ray_scorer
from mmrec_core.scale.textualize import textualize_on_ray
from mmrec_core.store.workspace import Workspace, default_protocol, open_workspace
from mmrec_core.textualize.build import TextualizeConfig, textualize
from tests.fakes import ScriptedEngine

ray = pytest.importorskip("ray", reason="the scale extra is not installed: pip install -e '.[scale]'")
ROOT = Path(__file__).resolve().parents[1]
RAY = ScaleConfig(backend="ray", actors=2)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 2**20,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield
    ray.shutdown()


def _copies(source: Path, tmp_path: Path) -> tuple[Workspace, Workspace]:
    """Two private copies of a data folder: one for the local run, one for the Ray run."""
    out = []
    for name in ("local", "ray"):
        shutil.copytree(source, tmp_path / name)
        out.append(open_workspace(load_settings(tmp_path / name)))
    return out[0], out[1]


def _table(ws: Workspace, table: str) -> pd.DataFrame:
    return ws.store.sql_df(f"SELECT * EXCLUDE (created_at) FROM {table} ORDER BY ALL").astype(str)


def _break_image(ws: Workspace, item_id: str) -> None:
    row = ws.store.items_with_images("sample", [item_id]).iloc[0]
    ws.images.path(row["image_sha256"], row["ext"]).write_bytes(b"not an image at all")


def test_textualize_on_ray_stores_what_the_local_run_stores(sample_db, tmp_path):
    local, remote = _copies(sample_db, tmp_path)
    items = sorted(local.store.items("sample")["item_id"])[:20]
    for ws in (local, remote):  # one bad image: recorded and skipped by both, the batch goes on
        _break_image(ws, items[3])
    config = TextualizeConfig(batch_size=8)
    expected = textualize(local, ScriptedEngine(local.settings), "sample", items, config)
    seen = []
    report = textualize_on_ray(
        remote, ScriptedEngine(remote.settings), "sample", items, config, RAY,
        lambda done, total, msg: seen.append((done, total)), partial(ScriptedEngine, remote.settings),
    )  # fmt: skip
    assert (report.done, len(report.failed)) == (expected.done, 1) == (19, 1)
    assert report.failed[0][0] == items[3] and "cannot be read" in report.failed[0][1]
    assert report.failed[0][1].replace(str(remote.settings.data_dir), "") == expected.failed[0][1].replace(
        str(local.settings.data_dir), ""
    )
    for table in ("descriptions", "keywords"):
        pd.testing.assert_frame_equal(_table(remote, table), _table(local, table))
    assert seen[-1] == (20, 20)  # every shard came back
    assert not any((remote.settings.data_dir / "jobs").iterdir())  # imported, then the job folder removed
    again = textualize_on_ray(remote, ScriptedEngine(remote.settings), "sample", items, config, RAY)
    assert (again.done, again.skipped) == (0, 19)  # the stored texts are what a re-run checks, as locally


def test_an_interrupted_ray_job_resumes_by_shard(sample_workspace, monkeypatch):
    ws = sample_workspace
    items = sorted(ws.store.items("sample")["item_id"])[:24]
    config, make = TextualizeConfig(batch_size=8), partial(ScriptedEngine, ws.settings)
    monkeypatch.setattr(ShardJob, "remove", lambda self: None)  # keep the folder to look at
    crash = RuntimeError("the driver died before the import")
    monkeypatch.setattr("mmrec_core.scale.textualize.write_rows", lambda *a: (_ for _ in ()).throw(crash))
    with pytest.raises(RuntimeError, match="died"):
        textualize_on_ray(ws, make(), "sample", items, config, RAY, make_engine=make)
    (job,) = [ShardJob(p) for p in (ws.settings.data_dir / "jobs").iterdir()]
    assert len(job.shards()) == 3 and job.pending() == []
    shutil.rmtree(job.outputs / job.shards()[1])  # as if that shard had not come back
    monkeypatch.undo()
    messages = []
    report = textualize_on_ray(
        ws, make(), "sample", items, config, RAY, lambda d, t, m: messages.append((d, m)), make_engine=make
    )
    assert messages[0] == (16, "1 of 3 shards to map, 16 items came back before")
    assert report.done == 24 and len(ws.store.keyword_hashes("sample")) == 24
    assert not (ws.settings.data_dir / "jobs" / job.root.name).exists()


def test_the_pipeline_textualizes_on_ray(sample_workspace):
    """`mmrec pipeline --backend ray`: the stage's actors build this engine's class (here the scripted one)."""
    from mmrec_core.pipeline.stages import run_pipeline

    ws = sample_workspace
    pid = default_protocol(ws, "sample")
    ((stage, summary, _),) = run_pipeline(ws, ScriptedEngine(ws.settings), "sample", pid, ["textualize"], scale=RAY)
    assert stage == "textualize" and summary.startswith("textualized 562 items")
    assert ws.store.textualized_count("sample") == 562
    assert set(ws.store.latest_keywords("sample")["engine"]) == {"scripted"}


class BrokenFor(ScriptedEngine):
    """Fails to score the one prompt whose prefix is `bad_prefix` (one odd user); scores the others."""

    def __init__(self, settings, bad_prefix: str) -> None:
        super().__init__(settings)
        self.bad_prefix = bad_prefix

    def score_yes_no(self, prefix, suffixes, system=None):
        if prefix == self.bad_prefix:
            raise ValueError("this prompt breaks the model")
        return super().score_yes_no(prefix, suffixes, system)


def _first_prompt(ws: Workspace, config: RecommendConfig, n_users: int) -> str:
    """The prompt prefix of the first user an eval of `n_users` scores."""
    pid = default_protocol(ws, "sample")
    data = load_train_data(ws.store, "sample", pid)
    user = pick_users(data.parts["test"].users, n_users)[0]
    builder = ContextBuilder.for_config(ws, "sample", pid, config, data=data)
    recommender = LLMRecommender(ScriptedEngine(ws.settings), builder, config)
    return prepare_task(recommender, user, builder.candidates(user), scored_by(recommender)).prompt.prefix


# (mode, similar users shown, whether one user's prompt breaks the engine): each run on Ray and in this process
SCORING_CASES = [("pointwise", 1, False), ("listwise", 1, False), ("pointwise", 0, True)]


@pytest.mark.parametrize(("mode", "n_similar", "one_fails"), SCORING_CASES)
def test_eval_llm_on_ray_scores_what_the_local_run_scores(rec_db, tmp_path, mode, n_similar, one_fails):
    local, remote = _copies(rec_db, tmp_path)
    config, n_users = RecommendConfig(mode=mode, n_similar=n_similar), 20
    engine_class = partial(BrokenFor, bad_prefix=_first_prompt(local, config, n_users)) if one_fails else ScriptedEngine
    expected = evaluate_llm(local, engine_class(local.settings), "sample", None, config, n_users)
    make = partial(engine_class, remote.settings)
    got = evaluate_llm(remote, make(), "sample", None, config, n_users, scorer=ray_scorer(RAY, make))
    assert got.failed == expected.failed and len(got.failed) == int(one_fails)
    assert "this prompt breaks the model" in "".join(reason for _, reason in got.failed) or not one_fails
    assert got.scored == expected.scored == n_users - int(one_fails)
    pd.testing.assert_frame_equal(got.per_user.drop(columns="seconds"), expected.per_user.drop(columns="seconds"))
    pd.testing.assert_frame_equal(
        got.table.drop(columns="seconds_per_user"), expected.table.drop(columns="seconds_per_user")
    )
    pid = default_protocol(local, "sample")
    columns = ["user_id", "item_ids", "scores", "valid", "answer", "prompt_tokens", "input_hash"]
    stored = [
        ws.store.llm_scores("sample", pid, mode)[columns].sort_values("user_id").astype(str) for ws in (local, remote)
    ]
    pd.testing.assert_frame_equal(stored[1].reset_index(drop=True), stored[0].reset_index(drop=True))
    again = evaluate_llm(remote, make(), "sample", None, config, n_users, scorer=ray_scorer(RAY, make))
    assert again.scored == 0 and again.reused == got.scored  # read back: nothing is shipped twice


def test_backend_ray_without_ray_says_how_to_install(sample_db, tmp_path, monkeypatch, capsys):
    shutil.copytree(sample_db, tmp_path / "data")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(["--data-dir", str(tmp_path / "data"), "textualize", "sample", "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray" in err and "pip install -e '.[scale]'" in err
    assert not (tmp_path / "data" / "jobs").exists()  # refused before any work
    assert main(["--data-dir", str(tmp_path / "data"), "eval", "sasrec", "sample", "--backend", "ray"]) == 2
    assert "`mmrec eval llm DATASET --backend ray`" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_textualizes_twenty_items_as_the_builtin_engine_does_alone(sample_db, tmp_path, builtin_engine):
    """The real offline engine in an actor: the descriptions of one process, and its keywords but for a rare
    borderline token.

    The worker runs vision, then the LLM, on its shard's batch, with this process's thread count. A float LLM
    is still not bit-reproducible across processes (summation order depends on threads and memory alignment),
    so greedy decoding of a borderline keyword can flip: seen in 1 of 20 items, either way between runs.
    """
    import torch

    local, remote = _copies(sample_db, tmp_path)
    items = sorted(local.store.items("sample")["item_id"])[::28][:20]
    config = TextualizeConfig(batch_size=10, serial_vision=True)  # as in a worker: vision, then the LLM
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the local Ray instance has 2 CPUs
    try:
        assert textualize(local, builtin_engine, "sample", items, config).done == 20
    finally:
        torch.set_num_threads(threads)
    make = partial(type(builtin_engine), builtin_engine.settings)
    scale = ScaleConfig(backend="ray", actors=1, cpus_per_actor=2)
    assert textualize_on_ray(remote, builtin_engine, "sample", items, config, scale, make_engine=make).done == 20
    pd.testing.assert_frame_equal(_table(remote, "descriptions"), _table(local, "descriptions"))
    mine, theirs = _table(remote, "keywords"), _table(local, "keywords")
    same = ["item_id", "engine", "model", "prompt_version", "params", "input_hash"]
    pd.testing.assert_frame_equal(mine[same], theirs[same])  # the same items, provenance and inputs
    assert (mine["keywords"] == theirs["keywords"]).sum() >= 18
