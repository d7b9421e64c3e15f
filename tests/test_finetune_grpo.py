"""GRPO with guarded rewards: one table of answer cases for the rewards, the reward-inflation watch,
confidence-aware rationale curation, and short runs of both GRPO trainers on a tiny random-weight Llama
(per-step reward components, completion length, valid-answer share, valid checks, stop and resume)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrec_core.core.jobs import JobStopped
from mmrec_core.data.splits import create_protocol
from mmrec_core.finetune.common import read_log, request_stop, run_folder
from mmrec_core.finetune.configs import GRPORunConfig, KeywordRLConfig, TrainDataConfig
from mmrec_core.finetune.data import TrainDataBuilder
from mmrec_core.finetune.grpo import correctness, make_rewards, train_grpo
from mmrec_core.finetune.keywords_rl import train_keywords
from mmrec_core.finetune.monitor import reward_inflation
from mmrec_core.finetune.rationales import HINT, curate, with_hints
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.store.workspace import Workspace

ORDER = ["a", "b", "c", "d", "e"]  # shown as [1]..[5]; the target is "c", number 3
REWARD_CASES = [
    # completion, reward kind, (correct reward, valid), format reward
    ("<think>c fits</think><answer>3</answer>", "hit", (1.0, True), 1.0),
    ("<answer>3</answer>", "hit", (1.0, True), 0.0),  # correct but no reasoning: no format reward
    ("<think>a fits</think><answer>1</answer>", "hit", (0.0, True), 0.0),  # well formed and wrong: as any wrong
    ("<think>x</think><answer>9</answer>", "hit", (0.0, False), 0.0),  # not a shown number: invalid
    ("<think>x</think><answer>the red one</answer>", "hit", (0.0, False), 0.0),
    ("I like number 3", "hit", (0.0, False), 0.0),  # no answer tag
    ("<think>x</think><answer>c</answer>", "hit", (1.0, True), 1.0),  # the item id itself is a valid answer
    ("<think>x</think><answer>1, 3</answer>", "rank", (1 / 1.5849625007211563, True), 1.0),  # 1/log2(3)
    ("<think>x</think><answer>1, 2, 4, 5, 3</answer>", "rank", (1 / 2.584962500721156, True), 1.0),  # 5th: 1/log2(6)
    ("<think>x</think><answer>1, 3</answer>", "hit", (0.0, True), 0.0),  # hit looks at the first item only
]


@pytest.mark.parametrize("completion, kind, expected, fmt", REWARD_CASES)
def test_rewards_pay_correct_answers_and_format_only_with_them(completion, kind, expected, fmt) -> None:
    reward, valid = correctness(completion, ORDER, "c", kind, top_k=5)
    assert (reward, valid) == pytest.approx(expected)
    correct, format_ = make_rewards(GRPORunConfig(reward=kind, top_k=5))
    logged = {}
    chat = [[{"role": "assistant", "content": completion}]]  # TRL's conversational completions
    assert correct(chat, [ORDER], ["c"], log_metric=logged.__setitem__) == pytest.approx([expected[0]])
    assert format_(chat, [ORDER], ["c"]) == [fmt]
    assert logged == {"valid_answers": float(expected[1])}


def test_rank_reward_ignores_the_target_beyond_top_k() -> None:
    assert correctness("<answer>1, 2, 3</answer>", ORDER, "c", "rank", top_k=2) == (0.0, True)


def _log(rewards, hrs, lengths=None):
    rows = [
        {"step": i + 1, "reward": r, "completions/mean_length": (lengths or [50] * len(rewards))[i]}
        for i, r in enumerate(rewards)
    ]
    rows += [{"step": s, "valid_HR@5": h} for s, h in hrs]
    return rows


@pytest.mark.parametrize(
    "history, warned, longer",
    [
        (_log([0.1, 0.1, 0.2, 0.4, 0.5, 0.6], [(0, 0.3), (6, 0.3)], [40, 40, 50, 60, 70, 80]), True, True),
        (_log([0.1, 0.1, 0.2, 0.4, 0.5, 0.6], [(0, 0.3), (6, 0.25)]), True, False),  # HR fell, length flat
        (_log([0.1, 0.1, 0.2, 0.4, 0.5, 0.6], [(0, 0.3), (6, 0.4)]), False, False),  # HR rose with the reward
        (_log([0.3, 0.3, 0.3, 0.3, 0.32, 0.3], [(0, 0.3), (6, 0.3)]), False, False),  # reward flat
        (_log([0.1, 0.9], [(0, 0.3), (2, 0.3)]), False, False),  # too short to tell
    ],
)
def test_reward_inflation_is_flagged_when_reward_rises_and_hr_does_not(history, warned, longer) -> None:
    text = reward_inflation(history)
    assert (text is not None) == warned
    if warned:
        assert "valid HR@5" in text and ("completions grew" in text) == longer


@pytest.fixture
def picks(rec_ws: Workspace, tiny_engine):
    pid = create_protocol(rec_ws.store, "sample")
    builder = TrainDataBuilder(
        ContextBuilder(rec_ws, "sample", pid, "test"), tiny_engine.count_tokens, TrainDataConfig(pick_candidates=4)
    )
    return builder.pick_examples(3)


def test_curation_keeps_correct_confident_rationales_only(picks, tiny_engine) -> None:
    lm = tiny_engine.lm
    evidence = curate(lm, picks, "evidence")
    assert len(evidence) == 3 and all(c.correct and 0.0 < c.confidence <= 1.0 for c in evidence)
    assert all(c.kept(0.0) for c in evidence) and not any(c.kept(1.01) for c in evidence)
    own = [c for c in curate(lm, picks, "both", max_new_tokens=8) if c.source == "model"]
    assert len(own) == 3  # a random model never answers in format: wrong, never scored, never kept
    assert all(not c.correct and c.confidence == 0.0 and not c.kept(0.0) for c in own)
    shown = with_hints(picks.at[0, "prompt"], "because red")
    assert shown[-1]["content"].endswith(HINT.format(rationale="because red")) and len(shown) == len(
        picks.at[0, "prompt"]
    )


GRPO = GRPORunConfig(
    data=TrainDataConfig(n_examples=4, pick_candidates=4),
    num_generations=2,
    max_completion_length=12,
    max_steps=2,
    eval_steps=1,
    valid_users=3,
    rationale_ratio=0.5,
    rationale_confidence=0.0,
)


def test_grpo_logs_reward_components_length_and_valid_share(rec_ws: Workspace, tiny_engine) -> None:
    run_id = train_grpo(rec_ws, tiny_engine, "sample", config=GRPO)
    row = rec_ws.store.sql_df("SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0]
    assert (row["kind"], row["method"]) == ("train", "llm-grpo")
    adapter = Path(row["artifact_path"])
    meta = json.loads((adapter / "mmrec_adapter.json").read_text())
    steps = [r for r in meta["log"] if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        for key in ("rewards/correct/mean", "rewards/format/mean", "completions/mean_length", "valid_answers"):
            assert key in r
        assert 0 < r["completions/mean_length"] <= 12 and 0.0 <= r["valid_answers"] <= 1.0
    assert [v["step"] for v in meta["valid"]] == [0, 1, 2] and "valid_HR@5" in meta["valid"][0]
    assert meta["rationales"]["kept"] == 4 and meta["rationales"]["shown_in_prompts"] == 2  # 4 prompts x 0.5
    assert 0.0 < meta["rationales"]["confidence_of_correct"][1] <= 1.0
    assert meta["loss"] == {"type": "dr_grpo", "scale_rewards": "none"}  # length-unbiased, no std division
    assert read_log(adapter.parent)[-1]["step"] == 2  # the live log the Train page draws


def test_grpo_stops_on_request_and_resumes(rec_ws: Workspace, tiny_engine) -> None:
    config = replace(GRPO, max_steps=3)
    pid = create_protocol(rec_ws.store, "sample")
    folder = run_folder(rec_ws, "grpo", "sample", pid, tiny_engine.llm_source(), config.key())

    def stop_after_first_step(step: int, total: int, message: str) -> None:
        if step >= 1:
            request_stop(folder)  # what the Train page's Stop button does

    with pytest.raises(JobStopped, match="stopped at step 2 of 3"):
        train_grpo(rec_ws, tiny_engine, "sample", config=config, progress=stop_after_first_step)
    assert (folder / "checkpoints" / "checkpoint-2").is_dir()  # saved on the way out
    train_grpo(rec_ws, tiny_engine, "sample", config=config)  # a new start clears the request and resumes
    meta = json.loads((folder / "adapter" / "mmrec_adapter.json").read_text())
    assert meta["steps"] == 3 and [r["step"] for r in meta["log"] if "reward" in r] == [1, 2, 3]


def test_keyword_rl_logs_the_three_rewards_and_held_out_reward(rec_ws: Workspace, tiny_engine) -> None:
    config = KeywordRLConfig(
        n_items=4, valid_items=2, num_generations=2, max_completion_length=8, max_steps=2, eval_steps=2
    )
    run_id = train_keywords(rec_ws, tiny_engine, "sample", config)
    adapter = Path(rec_ws.store.scalar("SELECT artifact_path FROM runs WHERE run_id = ?", [run_id]))
    meta = json.loads((adapter / "mmrec_adapter.json").read_text())
    steps = [r for r in meta["log"] if "reward" in r]
    assert len(steps) == 2
    for r in steps:
        assert {"rewards/r_info/mean", "rewards/r_recon/mean", "rewards/r_len/mean"} <= set(r)
        assert -1.0 <= r["rewards/r_len/mean"] <= 0.0 and 0.0 < r["rewards/r_recon/mean"] <= 1.0
    assert [v["step"] for v in meta["valid"]] == [0, 2] and meta["rewards"]["weights"]
    assert meta["best_valid_reward"] == max(v["valid_reward"] for v in meta["valid"])


def test_cli_grpo_prints_the_per_step_reward_table(rec_ws: Workspace, tiny_engine, monkeypatch, capsys) -> None:
    from mmrec_core.cli.main import main

    monkeypatch.setenv("MMREC_ENGINE", "hf")
    monkeypatch.setenv("MMREC_LLM", tiny_engine.settings.llm)
    root = str(rec_ws.settings.data_dir)
    rec_ws.close()
    args = ["train", "grpo", "sample", "--steps", "2", "--examples", "2", "--generations", "2", "--candidates", "3"]
    args += ["--max-completion", "8", "--valid-users", "2", "--eval-steps", "2", "--reward", "rank"]
    assert main(["--data-dir", root, *args]) == 0
    out = capsys.readouterr().out
    assert "grpo-lora run train-llm-grpo-" in out
    assert "step  reward  correct  format  length  valid answers" in out
    assert "step     2: valid HR@5" in out and "score with it: mmrec eval llm sample --adapter" in out
