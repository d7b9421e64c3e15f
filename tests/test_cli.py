"""The `mmrec` command: ingest, info, protocol, and one-line errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrec_core.cli.main import main
from mmrec_core.config import SAMPLE_DATA_DIR
from mmrec_core.data.stats import dataset_summary
from mmrec_core.models.data import load_train_data
from mmrec_core.store.database import Store


def test_ingest_then_info_prints_the_real_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "ingest", "hm", str(SAMPLE_DATA_DIR), "--name", "s"]) == 0
    assert "s: ingested" in capsys.readouterr().out
    assert main(["--data-dir", data, "ingest", "hm", str(SAMPLE_DATA_DIR), "--name", "s"]) == 0
    assert "s: unchanged" in capsys.readouterr().out

    assert main(["--data-dir", data, "info"]) == 0
    out = capsys.readouterr().out
    store = Store(Path(data) / "mmrec.duckdb")
    summary = dataset_summary(store, "s")
    test = load_train_data(store, "s", summary["protocols"][0]["protocol_id"]).parts["test"]
    store.close()
    assert f"{test.is_cold.mean():.1%} cold (never in training)" in out  # the SQL share = the models' view
    assert f"users {summary['users']:,}" in out and f"interactions {summary['interactions']:,}" in out
    assert "1 positive + 20 negatives" in out


def test_protocol_command_stores_another_draw(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "sample"]) == 0
    assert main(["--data-dir", data, "protocol", "sample", "--negatives", "50", "--seed", "1"]) == 0
    assert "sample:loo-min5-neg50-seed1: stored" in capsys.readouterr().out
    store = Store(Path(data) / "mmrec.duckdb")
    assert store.scalar("SELECT count(*) FROM protocols") == 2
    assert store.scalar("SELECT count(*) / 2 / 293 FROM negatives WHERE protocol_id LIKE '%neg50%'") == 50
    store.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "nope"], "Unknown data set 'nope'"),
        (["ingest", "hm", "/no/such/folder"], "no such file or folder"),
        (["protocol", "nope"], "Unknown data set 'nope'"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     argv: list[str], message: str) -> None:
    assert main(["--data-dir", str(tmp_path / "data"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_broken_file_is_named_and_nothing_is_stored(sample_copy: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    (sample_copy / "transactions.csv").write_text("t_dat;customer_id;article_id\n2020-01-01;u;0706016001\n")
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "ingest", "hm", str(sample_copy)]) == 2
    assert "transactions.csv" in capsys.readouterr().err
    store = Store(data / "mmrec.duckdb")
    assert store.datasets().empty and store.scalar("SELECT count(*) FROM items") == 0
    store.close()


def test_engine_command_shows_settings_and_a_missing_model_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "engine"]) == 0
    out = capsys.readouterr().out
    assert "engine: builtin" in out and "SmolLM2-135M-Instruct" in out and "all-MiniLM-L6-v2" in out

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMREC_ENGINE", "hf")
    monkeypatch.setenv("MMREC_LLM", str(tmp_path / "models" / "qwen"))
    assert main(["--data-dir", data, "engine", "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "qwen does not exist" in err
