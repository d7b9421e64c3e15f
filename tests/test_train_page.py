"""The Train page, driven with AppTest on a tiny random-weight Llama (the hf engine): a very short SFT job
runs in the background with live curves, its adapter appears for scoring; Stop saves and Start resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmrec_core.config import SAMPLE_DATASET
from tests.app_helpers import rerun_until, run_app

PAGE = "pages/train.py"


@pytest.fixture
def train_dir(rec_db: Path, tmp_path: Path, app_env: pytest.MonkeyPatch, tiny_engine) -> Path:
    root = tmp_path / "data"
    shutil.copytree(rec_db, root)
    app_env.setenv("MMREC_DATA_DIR", str(root))
    app_env.setenv("MMREC_ENGINE", "hf")
    app_env.setenv("MMREC_LLM", tiny_engine.settings.llm)
    return root


def _settings(at, steps: int, every: int):
    at.number_input(key="t_sft_examples").set_value(8)
    at.number_input(key="t_sft_steps").set_value(steps)
    at.number_input(key="t_sft_eval_steps").set_value(every)
    at.number_input(key="t_sft_valid_users").set_value(2)
    return at.run()


def _job_ended(at) -> bool:
    return bool(at.success) or bool(at.warning) or bool(at.error)


def test_a_short_sft_job_draws_live_curves_and_its_adapter_appears(train_dir: Path) -> None:
    at = run_app(PAGE)
    assert at.title[0].value == f"Train · {SAMPLE_DATASET}"
    assert any("No training log yet" in i.value for i in at.info)
    at = _settings(at, steps=2, every=1)
    at.button(key="train_start").click().run()
    rerun_until(at, _job_ended, timeout=240)
    assert not at.error, [e.value for e in at.error]
    assert "train-llm-sft-" in at.success[0].value  # the job's result: the run id
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(charts) >= 2  # loss, and the valid checks (steps 0, 1, 2)
    assert any('"loss"' in spec for spec in charts) and any("valid_HR@5" in spec for spec in charts)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["llm-sft"] and Path(table["adapter"].iloc[0]).is_dir()
    at.switch_page("pages/recommend.py").run()
    assert table["adapter"].iloc[0] in at.selectbox(key="rec_adapter").options  # ready for scoring


def test_stop_saves_and_start_again_resumes(train_dir: Path) -> None:
    at = _settings(run_app(PAGE), steps=30, every=15)
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: any("loss" in p.proto.text for p in a.get("progress")) or _job_ended(a), 240)
    at.button(key="train_stop").click().run()
    rerun_until(at, _job_ended, timeout=240)
    assert "stopped at step" in at.warning[0].value and "of 30" in at.warning[0].value
    at.button(key="train_start").click().run()  # the same settings: resumes from the saved checkpoint
    rerun_until(at, lambda a: bool(a.success) or bool(a.error), timeout=300)
    assert not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["steps"]) == [30]


def test_finish_now_ends_the_run_early_and_keeps_its_adapter(train_dir: Path) -> None:
    at = _settings(run_app(PAGE), steps=30, every=15)
    assert at.button(key="train_finish").disabled  # nothing to finish yet
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: any("loss" in p.proto.text for p in a.get("progress")) or _job_ended(a), 240)
    at.button(key="train_finish").click().run()
    rerun_until(at, _job_ended, timeout=240)
    assert not at.error and not at.warning, [e.value for e in at.error] + [w.value for w in at.warning]
    finished = at.dataframe[0].value
    assert list(finished["method"]) == ["llm-sft"] and 0 < finished["steps"].iloc[0] < 30
    assert Path(finished["adapter"].iloc[0]).is_dir()


@pytest.mark.parametrize(
    "method, shown",
    [("sft", "Task mix"), ("grpo", "Correctness reward"), ("keywords", "Rewards: R_info + R_recon + R_len")],
)
def test_each_method_shows_its_own_settings(train_dir: Path, method: str, shown: str) -> None:
    at = run_app(PAGE)
    at.radio(key="train_method").set_value(method).run()
    assert not at.exception and not at.error
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [r.label for r in at.radio]
    assert any(shown in t for t in texts), texts


def _widget_values(at, key: str) -> dict:
    """Option name -> value of every generated settings widget (keys `<key>_<option dest>`)."""
    values = {}
    for kind in ("number_input", "slider", "radio", "selectbox", "checkbox"):
        for w in at.get(kind):
            if w.key and w.key.startswith(key + "_"):
                name = w.key[len(key) + 1 :].replace("_", "-")
                values[name] = w.value
    ratios = {k.removeprefix("ratios-"): v for k, v in values.items() if k.startswith("ratios-")}
    values = {k: v for k, v in values.items() if not k.startswith("ratios-")}
    return values | ({"ratios": ratios} if ratios else {})


@pytest.mark.parametrize("method", ["sft", "grpo", "keywords"])
def test_the_form_starts_from_the_same_defaults_as_the_cli(train_dir: Path, method: str) -> None:
    from mmrec_core.cli.main import build_parser
    from mmrec_core.cli.train import given_options
    from mmrec_core.config import load_settings
    from mmrec_core.engines import get_engine
    from mmrec_core.finetune.runs import TRAINERS, folder_of, train_config
    from mmrec_core.store.workspace import open_workspace

    args = build_parser().parse_args(["train", method, SAMPLE_DATASET])
    cli_config = train_config(method, **given_options(args, method))
    ws = open_workspace(load_settings(train_dir))
    try:
        cli_folder = folder_of(ws, get_engine(ws.settings), method, SAMPLE_DATASET, None, cli_config)
    finally:
        ws.close()
    at = run_app(PAGE)
    at.radio(key="train_method").set_value(method).run()
    values = _widget_values(at, f"t_{method}")
    assert {"examples", "steps", "eval-steps", "lr", "lora-r"} <= set(values)
    assert train_config(method, **values) == cli_config == TRAINERS[method]()
    assert any(str(cli_folder) in c.value for c in at.caption)  # same settings, same run folder
