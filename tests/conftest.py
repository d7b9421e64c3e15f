"""Shared fixtures: a fresh workspace per test, the sample data set ingested once per session."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mmrec_core.config import ENGINE_FIELDS, SAMPLE_DATA_DIR, load_settings
from mmrec_core.data.ingest import ensure_sample_dataset
from mmrec_core.store.workspace import Workspace, open_workspace

REPO = Path(__file__).resolve().parent.parent
# Real data sets shipped beside the repository (absent on some machines: those tests skip, loudly).
SHARED_DATASETS = Path(os.environ.get("MMREC_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
HM_DIR = SHARED_DATASETS / "hm"
MICROLENS_DIR = SHARED_DATASETS / "microlens50k"

# Converted model copies (the builtin LLM's safetensors) survive between test runs here, not per test.
MODEL_CACHE = Path(os.environ.get("MMREC_TEST_MODEL_CACHE", REPO / ".cache" / "models"))

needs_hm = pytest.mark.skipif(not HM_DIR.is_dir(), reason=f"H&M data not found at {HM_DIR}")
needs_microlens = pytest.mark.skipif(not MICROLENS_DIR.is_dir(), reason=f"MicroLens not found at {MICROLENS_DIR}")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty workspace in a temporary data folder."""
    ws = open_workspace(load_settings(tmp_path / "data"))
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with sample_data ingested once; tests copy it rather than re-ingesting."""
    root = tmp_path_factory.mktemp("sample") / "data"
    ws = open_workspace(load_settings(root))
    ensure_sample_dataset(ws, with_results=False)
    ws.close()
    return root


def _private_copy(source: Path, tmp_path: Path, name: str = "data"):
    root = tmp_path / name
    shutil.copytree(source, root)
    ws = open_workspace(load_settings(root))
    yield ws
    ws.close()


@pytest.fixture
def sample_workspace(sample_db: Path, tmp_path: Path) -> Workspace:
    """A private copy of the ingested sample workspace (safe to modify)."""
    yield from _private_copy(sample_db, tmp_path)


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of sample_data/ (for tests that break a file on purpose)."""
    dst = tmp_path / "sample_src"
    shutil.copytree(SAMPLE_DATA_DIR, dst)
    return dst


@pytest.fixture(scope="session")
def builtin_engine(tmp_path_factory: pytest.TempPathFactory):
    """The default offline engine, loaded once per test session (CPU, float32)."""
    from mmrec_core.engines import get_engine

    settings = replace(load_settings(tmp_path_factory.mktemp("engine")), model_cache=MODEL_CACHE, device="cpu")
    return get_engine(settings)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """For AppTest tests: default engine settings, and Streamlit caches emptied before and after.

    st.cache_* live as long as the pytest process. Clearing the resource cache runs the app's
    on_release, which closes the DuckDB connection, so the next test (or this test's own checks)
    can open the file.
    """
    import streamlit as st

    for name in ENGINE_FIELDS:  # the sidebar assertions expect the default engine settings
        monkeypatch.delenv(f"MMREC_{name.upper()}", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield monkeypatch
    st.cache_resource.clear()
    st.cache_data.clear()


def app_data_dir(source: Path, tmp_path: Path, app_env: pytest.MonkeyPatch) -> Path:
    """A private copy of the data folder `source`, set as the app's data folder."""
    root = tmp_path / "data"
    shutil.copytree(source, root)
    app_env.setenv("MMREC_DATA_DIR", str(root))
    return root


@pytest.fixture
def data_dir(sample_db: Path, tmp_path: Path, app_env: pytest.MonkeyPatch) -> Path:
    """A private copy of the ingested sample, set as the app's data folder."""
    return app_data_dir(sample_db, tmp_path, app_env)


@pytest.fixture(scope="session")
def rec_db(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample ingested, with scripted profiles, a scripted-embedding item graph and a briefly trained SASRec."""
    from mmrec_core.data.splits import create_protocol
    from mmrec_core.graph.build import build_item_graph
    from mmrec_core.graph.edges import GraphConfig
    from mmrec_core.models.registry import train_model
    from mmrec_core.models.sasrec import SASRecConfig
    from mmrec_core.profiles.build import build_profiles
    from tests.fakes import ScriptedEngine

    root = tmp_path_factory.mktemp("rec") / "data"
    shutil.copytree(sample_db, root)
    ws = open_workspace(load_settings(root))
    engine = ScriptedEngine(ws.settings)
    pid = create_protocol(ws.store, "sample")
    build_profiles(ws, engine, "sample", pid)
    build_item_graph(ws, engine, "sample", pid, GraphConfig(alpha=0.3))
    train_model(ws, "sample", "sasrec", pid, SASRecConfig(epochs=3, patience=1))
    ws.close()
    return root


@pytest.fixture
def rec_ws(rec_db: Path, tmp_path: Path) -> Workspace:
    """A private copy of `rec_db` (safe to modify)."""
    yield from _private_copy(rec_db, tmp_path)


@pytest.fixture
def tiny_engine(tmp_path: Path):
    """The hf engine on a tiny random-weight Llama (SmolLM2's tokenizer): the training paths in seconds."""
    from mmrec_core.engines import get_engine
    from tests.tiny_models import make_tiny_causal_lm, smollm2_tokenizer

    smollm2_tokenizer(MODEL_CACHE)
    folder = make_tiny_causal_lm(tmp_path / "tiny-llama", "llama", MODEL_CACHE / "smollm2-tokenizer")
    return get_engine(replace(load_settings(tmp_path / "engine"), engine="hf", llm=str(folder), device="cpu"))


def engine_for_adapters(settings):
    """`eval_all`'s engine_for: the scripted engine, and for an adapter the 'tuned' one (other scores)."""
    from tests.fakes import ScriptedEngine, TunedScripted

    return lambda adapter: (TunedScripted if adapter else ScriptedEngine)(replace(settings, adapter=adapter))


def fake_adapter(ws: Workspace, protocol_id: str, name: str = "sft-0123456789ab") -> str:
    """A finished SFT training run whose adapter folder exists (the scripted engine never reads it)."""
    folder = ws.settings.data_dir / "runs" / name / "adapter"
    folder.mkdir(parents=True)
    ws.store.record_run("sample", protocol_id, "train", "llm-sft", {"steps": 1}, folder)
    return str(folder)


@pytest.fixture(scope="session")
def eval_db(rec_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rec_db after `eval --all` (popularity, repeat, SASRec, the LLM zero-shot and with one adapter), a subset
    run and a two-stage run (SASRec's top 10 re-ranked)."""
    from mmrec_core.data.splits import create_protocol
    from mmrec_core.evaluate.eval_all import eval_all
    from mmrec_core.evaluate.llm import evaluate_llm
    from mmrec_core.evaluate.two_stage import TwoStageConfig, evaluate_two_stage
    from mmrec_core.recommend.llm import RecommendConfig
    from tests.fakes import ScriptedEngine

    root = tmp_path_factory.mktemp("eval") / "data"
    shutil.copytree(rec_db, root)
    ws = open_workspace(load_settings(root))
    pid = create_protocol(ws.store, "sample")
    fake_adapter(ws, pid)
    eval_all(ws, "sample", pid, engine_for=engine_for_adapters(ws.settings))
    evaluate_llm(ws, ScriptedEngine(ws.settings), "sample", pid, n_users=30)  # a subset: never ranked
    two_stage = TwoStageConfig(retriever="sasrec", k=10)  # the whole-catalog protocol: its own table
    evaluate_two_stage(ws, ScriptedEngine(ws.settings), "sample", pid, two_stage, RecommendConfig(n_similar=0))
    ws.close()
    return root


@pytest.fixture
def eval_ws(eval_db: Path, tmp_path: Path) -> Workspace:
    """A private copy of `eval_db` (safe to modify; beside, not in, the `workspace` fixture's folder)."""
    yield from _private_copy(eval_db, tmp_path, "eval")
