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


def test_banned_words_are_masked_whole_and_only_after_their_first_tokens() -> None:
    import torch

    from mmrec_core.engines.constrained import BannedWords
    from tests.conftest import MODEL_CACHE
    from tests.tiny_models import smollm2_tokenizer

    tok = smollm2_tokenizer(MODEL_CACHE)
    wool = tok(" wool", add_special_tokens=False)["input_ids"]
    long = tok(" polyamide", add_special_tokens=False)["input_ids"]
    assert len(wool) == 1 and len(long) > 1  # one single-token and one multi-token word
    processor = BannedWords(tok, [("wool", "polyamide"), ()])
    start = tok("A soft", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([start, start])
    scores = processor(ids, torch.zeros(2, len(tok)))
    assert scores[0, wool[0]] == float("-inf") and scores[1, wool[0]] == 0  # per row
    assert scores[0, long[-1]] == 0  # the last piece alone is any word's ending
    begun = torch.tensor([start + long[:-1]])
    scores = BannedWords(tok, [("polyamide",)])(begun, torch.zeros(1, len(tok)))
    assert scores[0, long[-1]] == float("-inf")  # after its first pieces the word cannot be finished


def test_unsupported_words_are_what_the_checker_would_flag() -> None:
    from mmrec_core.grounding.claims import catalog_evidence, check, unsupported_words

    catalog = catalog_evidence(["Tilda knit top", "Black", "Jersey Basic"])
    banned = unsupported_words(catalog, [{"kind": "pattern", "value": "stripe", "confidence": 0.9}])
    assert {"red", "wool", "dress", "luxurious"} <= set(banned)
    assert not {"black", "top", "jersey", "striped"} & set(banned)
    assert all(check(w, catalog).unsupported for w in banned[:50])


@pytest.mark.slow
def test_the_builtin_llm_never_writes_a_banned_word(builtin_engine):
    import re

    prompts = ["Describe a red wool dress in one sentence.", "Describe a blue cotton shirt in one sentence."]
    free = builtin_engine.generate(prompts, GenerationOptions(max_new_tokens=24, batch_size=2))
    banned = (("red", "wool", "dress"), ("blue", "cotton", "shirt"))
    assert all(any(re.search(rf"\b{w}\b", t, re.I) for w in words) for t, words in zip(free, banned, strict=True))
    options = GenerationOptions(max_new_tokens=24, batch_size=2, banned_words=banned)
    for text, words in zip(builtin_engine.generate(prompts, options), banned, strict=True):
        assert text and not any(re.search(rf"\b{w}\b", text, re.I) for w in words), text
    assert options.as_params()["banned_words"]  # recorded with what it wrote
