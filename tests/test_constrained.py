"""Constrained listwise answers: after <answer> only the shown numbers, so even a random model answers validly."""

from __future__ import annotations

import pytest

from mmrec_core.engines import GenerationOptions
from mmrec_core.engines.constrained import answer_prefix_ok
from mmrec_core.recommend.llm import parse_answer


@pytest.mark.parametrize(
    "text, ok",
    [
        ("", True), ("2", True), ("21", True), ("3, ", True), ("3,4", True), ("3</", True),
        ("3</answer>", True), ("7</answer", True),
        ("22", False),  # no candidate 22 (nor 22x) among 21
        ("0", False), ("3 4", False), (" ", False), ("3,  4", False), ("x", False), ("</", False),
        ("3, </", False), ("3, 25", False),
    ],
)  # fmt: skip
def test_answer_prefixes_for_21_candidates(text, ok):
    assert answer_prefix_ok(text, 21) is ok


@pytest.mark.slow
def test_a_random_model_names_only_shown_candidates_when_constrained(tiny_engine):
    order = ["a", "b", "c", "d", "e"]
    prompts = [f"Customer {k} bought socks. Candidates [1]..[5]. Think, then <answer>n</answer>." for k in range(6)]
    free = GenerationOptions(max_new_tokens=24, batch_size=3, stop=("</answer>",))
    constrained = GenerationOptions(max_new_tokens=24, batch_size=3, stop=("</answer>",), answer_numbers=5)
    unconstrained = [parse_answer(t, order) for t in tiny_engine.generate(prompts, free)]
    answers = [parse_answer(t, order) for t in tiny_engine.generate(prompts, constrained)]
    assert not any(a.valid for a in unconstrained)  # random weights never write the format by themselves
    assert all(a.valid and a.ranking and set(a.ranking) <= set(order) for a in answers), [a.raw for a in answers]
    assert constrained.as_params()["answer_numbers"] == 5  # recorded with the scores
