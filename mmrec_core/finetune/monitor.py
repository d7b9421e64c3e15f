"""Reward-inflation watch for RL runs: the reward goes up while the recommendation quality does not.

A policy can learn to please a reward without getting better at the task (here: answering in a way
the reward pays for, writing ever longer "reasoning"). The reward alone cannot show it; the valid
HR@5 measured beside it can. `reward_inflation` compares the first and last thirds of a run's log.
"""

from __future__ import annotations

import logging

import numpy as np
from transformers import TrainerCallback

log = logging.getLogger("mmrec.train")

REWARD_RISE = 0.1  # reward units (correctness is 0..1): a rise smaller than this is noise on a short run
LENGTH_GROWTH = 1.2  # completions 20% longer


def _thirds(values: list[float]) -> tuple[float, float]:
    k = max(1, len(values) // 3)
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


def reward_inflation(history: list[dict]) -> str | None:
    """A warning when the reward rose but valid HR@5 did not (noting completion growth), else None."""
    rewards = [r for r in history if "reward" in r]
    valid = [r["valid_HR@5"] for r in history if "valid_HR@5" in r]
    if len(rewards) < 3 or len(valid) < 2:
        return None
    first, last = _thirds([r["reward"] for r in rewards])
    if last - first < REWARD_RISE or valid[-1] > valid[0]:
        return None
    text = (
        f"reward inflation: the mean reward rose from {first:.3f} to {last:.3f} while valid HR@5 went "
        f"from {valid[0]:.3f} to {valid[-1]:.3f}"
    )
    lengths = [r["completions/mean_length"] for r in rewards if "completions/mean_length" in r]
    if len(lengths) >= 3:
        short, long = _thirds(lengths)
        if short > 0 and long / short >= LENGTH_GROWTH:
            text += f", and completions grew from {short:.0f} to {long:.0f} tokens"
    return text + ": the policy may be learning the reward, not the task. Check its answers before using it."


class InflationCallback(TrainerCallback):
    """Checks after every valid score; warns once (log + a `warning` row in the run's log history)."""

    def __init__(self) -> None:
        self.warned = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.warned or not state.log_history or "valid_HR@5" not in state.log_history[-1]:
            return
        text = reward_inflation(state.log_history)
        if text:
            self.warned = True
            log.warning(text)
            state.log_history.append({"step": state.global_step, "warning": text})
