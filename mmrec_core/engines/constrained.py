"""Constrained decoding of a listwise answer: after `<answer>` only the shown candidate numbers may follow.

The model reasons freely; once it writes `<answer>`, every next token must keep the answer a prefix of
`n[, n]*</answer>` with each n in 1..N (`answer_prefix_ok`), so the answer cannot name an item that was not
shown or ramble. If the reasoning runs so long that the budget would end first, `</think><answer>` is
forced in time for one number and the closing tag. A transformers `LogitsProcessor`, so it works with any
model `generate` runs.
"""

from __future__ import annotations

import re

import torch
from transformers import LogitsProcessor

CONSTRAINT_VERSION = "answer-constraint-v2"  # stored with listwise results: a change re-scores them
OPEN, CLOSE = "<answer>", "</answer>"
_TOKEN_CHARS = re.compile(r"[0-9, <>/answerthik\n]*")  # what a token of the answer part can consist of
_BODY = re.compile(r"\s*(?:\d+(?:\s*,\s*\d+)*)?(?:\s*,\s*)?")  # numbers, commas between, maybe one at the end
_RESERVE = 4  # tokens kept for a number and the closing tag after a forced <answer>


def answer_prefix_ok(text: str, n: int) -> bool:
    """Whether `text` (what follows `<answer>`) can still become `a[, b ...]</answer>` with numbers in 1..n."""
    cut = text.find("<")
    body, tail = (text, "") if cut < 0 else (text[:cut], text[cut:])
    if tail and not CLOSE.startswith(tail):
        return False
    if not _BODY.fullmatch(body) or re.search(r"^\s|\s\s|\n", body):
        return False  # compact: "3, 7", no padding a weak model could loop on
    numbers = re.findall(r"\d+", body)
    if any(x.startswith("0") for x in numbers):
        return False
    trailing_comma = bool(re.search(r",\s*$", body))
    if tail and (not numbers or trailing_comma):
        return False  # the tag may only close a complete answer
    finished = tail or trailing_comma or body.endswith(" ") or not numbers
    complete, typing = (numbers, "") if finished else (numbers[:-1], numbers[-1])
    if any(not 1 <= int(x) <= n for x in complete):
        return False
    return not typing or any(str(k).startswith(typing) for k in range(1, n + 1))


class AnswerConstraint(LogitsProcessor):
    """Masks every token that would make the answer invalid; forces `<answer>` before the budget ends."""

    def __init__(self, tokenizer, n: int, prompt_length: int, max_new_tokens: int) -> None:
        self.tok, self.n, self.start, self.budget = tokenizer, n, prompt_length, max_new_tokens
        self.pieces = _answer_pieces(tokenizer)
        self.close_ids = tokenizer(CLOSE, add_special_tokens=False)["input_ids"]
        ends = {tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self.ends = sorted(t for t in ends if isinstance(t, int) and 0 <= t < len(tokenizer))
    def _forced(self, text: str) -> list[int]:
        prefix = "</think>" if "<think>" in text and "</think>" not in text else ""
        return self.tok(prefix + OPEN, add_special_tokens=False)["input_ids"]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            made = input_ids[row, self.start :].tolist()
            text = self.tok.decode(made, skip_special_tokens=True)
            left = self.budget - len(made)
            if OPEN in text:
                answer = text.rsplit(OPEN, 1)[1]
                if CLOSE in answer:
                    continue
                if "<" in answer:  # the tag has begun: finish it with its own tokens
                    tail = answer[answer.index("<") :]
                    done = next((k for k in range(len(self.close_ids), -1, -1) if tail == self._close_text(k)), 0)
                    scores = _only(scores, row, [self.close_ids[min(done, len(self.close_ids) - 1)]])
                    continue
                allowed = [t for t, piece in self.pieces.items() if answer_prefix_ok(answer + piece, self.n)]
                allowed = [t for t in allowed if "<" not in self.pieces[t] or t == self.close_ids[0]]
                if left <= len(self.close_ids) and answer_prefix_ok(answer + CLOSE, self.n):
                    allowed = self.close_ids[:1]  # out of budget: close what is already a valid answer
                elif left <= len(self.close_ids) + 1:  # one token left before the tag: it must complete a number
                    closable = [t for t in allowed if answer_prefix_ok(answer + self.pieces[t] + CLOSE, self.n)]
                    allowed = closable or allowed
            else:
                forced = self._forced(text)
                if left > len(forced) + _RESERVE:
                    scores[row, self.ends] = float("-inf")  # no stopping before an answer
                    continue
                done = next(k for k in range(len(forced), -1, -1) if text.endswith(self.tok.decode(forced[:k])))
                allowed = [forced[min(done, len(forced) - 1)]]
            scores = _only(scores, row, allowed)
        return scores

    def _close_text(self, k: int) -> str:
        return self.tok.decode(self.close_ids[:k])


BANNED_VERSION = "banned-words-v1"  # in the tuned describer's version: a change re-describes


class BannedWords(LogitsProcessor):
    """Per row, words its text may not contain: the last token of each form (" wool", "Wool", ...) is masked
    whenever the tokens before it have just been written, so the word can never be completed."""

    def __init__(self, tokenizer, banned: list[tuple[str, ...]]) -> None:
        self.rows = [_word_sequences(tokenizer, words) for words in banned]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, (single, longer) in enumerate(self.rows):
            if single:
                scores[row, single] = float("-inf")
            if longer:
                made = input_ids[row, -_LONGEST:].tolist()
                ends = [seq[-1] for seq in longer if made[len(made) - len(seq) + 1 :] == seq[:-1]]
                if ends:
                    scores[row, ends] = float("-inf")
        return scores


_LONGEST = 8  # tokens of the longest banned form that is checked


_FORMS: dict[tuple[int, str], list[list[int]]] = {}


def _word_sequences(tokenizer, words: tuple[str, ...]) -> tuple[list[int], list[list[int]]]:
    """(single-token forms, longer forms as token lists) of each word, spaced and capitalised or not."""
    single, longer = set(), []
    for word in words:
        for ids in _forms(tokenizer, word):
            if len(ids) == 1:
                single.add(ids[0])
            elif 1 < len(ids) <= _LONGEST:
                longer.append(ids)
    return sorted(single), longer


def _forms(tokenizer, word: str) -> list[list[int]]:
    """The token ids of `word`'s forms, tokenized once per tokenizer (every row of every batch bans the same
    vocabulary words)."""
    key = (id(tokenizer), word)
    if key not in _FORMS:
        texts = [t for form in {word, word.capitalize()} for t in (" " + form, form)]
        _FORMS[key] = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return _FORMS[key]


def _only(scores: torch.FloatTensor, row: int, allowed: list[int]) -> torch.FloatTensor:
    """Keep the scores of `allowed` tokens in `row`, mask the rest (nothing allowed: leave the row as it is)."""
    if allowed:
        keep = scores[row, allowed].clone()
        scores[row] = float("-inf")
        scores[row, allowed] = keep
    return scores


_PIECES: dict[int, dict[int, str]] = {}


def _answer_pieces(tokenizer) -> dict[int, str]:
    """token id -> its text, for the tokens an answer can be made of (digits, commas, spaces, the closing tag)."""
    key = id(tokenizer)
    if key not in _PIECES:
        pieces = {}
        for token_id in range(len(tokenizer)):
            text = tokenizer.decode([token_id])
            if text and len(text) <= 10 and _TOKEN_CHARS.fullmatch(text):
                pieces[token_id] = text
        _PIECES[key] = pieces
    return _PIECES[key]
