"""A loaded text LLM (any transformers causal LM, or the language side of a VLM): chat, generate, score.

Both engines hand one of these to the pipeline; only how the weights get loaded differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mmrec_core.engines.scoring import (
    YesNoHead,
    cache_kwarg,
    cache_of,
    left_padded,
    score_full_prompts,
    score_shared_prefix,
)

Prompt = str | list[dict]  # plain user text, or a list of chat messages
_SPLIT = "\u2063MMREC-CANDIDATE\u2063"  # an invisible marker no real prompt contains
_MIN_SHARED_PREFIX = 16  # shorter common prefixes are not worth a separate forward pass


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all rows share, leaving each row at least one token of its own."""
    limit = min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text up to and including its first stop string (generate() may run a few tokens past it)."""
    cuts = [text.index(s) + len(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


@dataclass
class GenerationOptions:
    """How to generate: greedy by default (reproducible), sampling on request."""

    max_new_tokens: int = field(default=160, metadata={"help": "Upper bound on generated tokens per prompt."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (do_sample only)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass (do_sample only)."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Above 1 discourages repeated tokens."})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "Forbid repeating any n-gram of this size."})
    seed: int = field(default=0, metadata={"help": "Random seed for sampling, so a sampled run can be repeated."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate() call."})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "Stop a row at the first of these strings."})
    answer_numbers: int = field(
        default=0,
        metadata={"help": "If > 0: after '<answer>' only numbers 1..N and '</answer>' (engines/constrained.py)."},
    )
    banned_words: tuple[tuple[str, ...], ...] = field(
        default=(),
        metadata={"help": "Per prompt (aligned with the prompts): words its text may not contain (constrained.py)."},
    )

    def as_params(self) -> dict:
        keep = ["max_new_tokens", "do_sample", "repetition_penalty", "no_repeat_ngram_size"] + (
            ["temperature", "top_p", "seed"] if self.do_sample else []
        )
        params = {k: getattr(self, k) for k in keep}
        if self.answer_numbers:
            params["answer_numbers"] = self.answer_numbers
        if self.banned_words:
            params["banned_words"] = "per item (unsupported attribute words)"
        return {**params, "stop": list(self.stop)} if self.stop else params


class TextLM:
    """A causal LM with its tokenizer, ready for chat generation and shared-prefix yes/no scoring."""

    def __init__(self, model, tokenizer, name: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.head = YesNoHead(model, tokenizer)
        # VLM templates (SmolVLM, Qwen-VL) expect content as a list of parts and silently drop plain strings.
        self._content_as_parts = self.has_chat_template and "PROBE" not in tokenizer.apply_chat_template(
            [{"role": "user", "content": "PROBE"}], tokenize=False
        )

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: Prompt, system: str | None = None) -> str:
        """The exact text fed to the model: chat template when there is one, else the plain text."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        if self._content_as_parts:
            messages = [
                {**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m["content"], str) else m
                for m in messages
            ]
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = "\n\n".join(m["content"] for m in messages)
        return text + "\nAnswer:"

    def count_tokens(self, prompt: Prompt, system: str | None = None) -> int:
        """Tokens of the rendered prompt: what must fit in the model's context."""
        return len(self.encode(prompt, system))

    def context_length(self) -> int:
        """The model's context window in tokens (its config's max_position_embeddings)."""
        config = self.model.config.get_text_config()
        return int(getattr(config, "max_position_embeddings", None) or 2048)

    def encode(self, prompt: Prompt, system: str | None = None) -> list[int]:
        """Token ids of the rendered prompt (what the model reads)."""
        text = self.render(prompt, system)
        return self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"]

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[Prompt], options: GenerationOptions | None = None, system: str | None = None
    ) -> list[str]:
        """Complete each prompt; returns only the new text, ending at its first stop string if any.

        Prompts are tokenized once and batched by length (less padding); within a batch the tokens every
        prompt starts with (system message, worked example, a customer's whole context) run once and their
        KV cache is shared by every row (`_generate_batch`).
        """
        options = options or GenerationOptions()
        tok = self.tokenizer
        kwargs: dict = {
            "max_new_tokens": options.max_new_tokens,
            "do_sample": options.do_sample,
            "pad_token_id": tok.pad_token_id,
            "repetition_penalty": options.repetition_penalty,
            "no_repeat_ngram_size": options.no_repeat_ngram_size,
        }
        if options.stop:
            kwargs.update(stop_strings=list(options.stop), tokenizer=tok)
        if options.answer_numbers:
            kwargs["answer_numbers"] = options.answer_numbers  # the constraint needs each batch's prompt width
        if options.do_sample:
            torch.manual_seed(options.seed)
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        else:  # silence "temperature is set but do_sample is False" from the model's own generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        encoded = [self.encode(p, system) for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        outputs = [""] * len(encoded)
        for start in range(0, len(order), options.batch_size):
            rows = order[start : start + options.batch_size]
            if options.banned_words:
                kwargs["banned_words"] = [options.banned_words[i] for i in rows]
            new = self._generate_batch([encoded[i] for i in rows], kwargs)
            for i, text in zip(rows, tok.batch_decode(new, skip_special_tokens=True), strict=True):
                outputs[i] = _cut_at_stop(text, options.stop).strip()
        return outputs

    def _generate_batch(self, rows: list[list[int]], kwargs: dict) -> torch.Tensor:
        """New token ids for a batch. Rows are laid out `shared prefix | left pads | own suffix`: the prefix's
        cache is computed once and repeated, and the attention mask hides the pads, so each row's positions
        run on from the prefix exactly as in its unpadded prompt."""
        device = self.model.device
        shared = _common_prefix(rows) if len(rows) > 1 else 0
        shared = shared if shared >= _MIN_SHARED_PREFIX else 0
        own, own_mask = left_padded([r[shared:] for r in rows], self.tokenizer.pad_token_id)
        prefix = torch.tensor([rows[0][:shared]] * len(rows), dtype=torch.long).reshape(len(rows), shared)
        ids = torch.cat([prefix, own], dim=1).to(device)
        mask = torch.cat([torch.ones_like(prefix), own_mask], dim=1).to(device)
        kwargs = dict(kwargs)
        extra = {}
        processors = []
        if n := kwargs.pop("answer_numbers", 0):
            from mmrec_core.engines.constrained import AnswerConstraint

            processors.append(AnswerConstraint(self.tokenizer, n, ids.shape[1], kwargs["max_new_tokens"]))
        if banned := kwargs.pop("banned_words", None):
            from mmrec_core.engines.constrained import BannedWords

            processors.append(BannedWords(self.tokenizer, banned))
        if processors:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList(processors)
        if shared:
            cache = cache_of(self.model(input_ids=ids[:1, :shared], use_cache=True))
            cache.batch_repeat_interleave(len(rows))
            extra[cache_kwarg(self.model)] = cache
        return self.model.generate(input_ids=ids, attention_mask=mask, **kwargs, **extra)[:, ids.shape[1] :]

    @torch.inference_mode()
    def target_logprob(
        self, prompts: Sequence[Prompt], targets: Sequence[str], system: str | None = None, batch_size: int = 8
    ) -> np.ndarray:
        """Mean log-probability per token of each target text as the model's answer to its prompt.

        Right padding keeps every real token at its natural position, so no position ids are needed.
        """
        tok = self.tokenizer
        rows = []
        for prompt, target in zip(prompts, targets, strict=True):
            context = self.encode(prompt, system)
            answer = tok(target, add_special_tokens=False)["input_ids"]
            if not answer:
                raise ValueError("target_logprob needs a non-empty target text.")
            rows.append((context, answer))
        means = [0.0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: sum(map(len, rows[i])))  # similar lengths: less padding
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            chunk = [rows[i] for i in indices]
            width = max(len(c) + len(a) for c, a in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (context, answer) in enumerate(chunk):
                ids[row, : len(context) + len(answer)] = torch.tensor(context + answer)
                mask[row, : len(context) + len(answer)] = 1
            logits = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for row, (i, (context, answer)) in enumerate(zip(indices, chunk, strict=True)):
                # the token at position t is predicted by the logits at t - 1
                positions = torch.arange(len(context) - 1, len(context) + len(answer) - 1)
                picked = logprobs[row, positions, torch.tensor(answer)]
                means[i] = float(picked.mean())
        return np.asarray(means, dtype=np.float32)

    def encode_candidates(
        self, prefix: str, suffixes: Sequence[str], system: str | None = None
    ) -> tuple[list[int], list[list[int]]]:
        """Token ids of the shared prefix and of each candidate's suffix (up to the answer position).

        The user message is `prefix + suffix`; the chat template is rendered once around a marker and split
        there, so the suffix carries the end of the user turn and the start of the assistant's answer.
        """
        head, tail = self.render(prefix + _SPLIT, system).split(_SPLIT)
        tok = self.tokenizer
        prefix_ids = tok(head, add_special_tokens=not self.has_chat_template)["input_ids"]
        suffix_ids = [tok(s + tail, add_special_tokens=False)["input_ids"] for s in suffixes]
        return prefix_ids, suffix_ids

    def score_yes_no(
        self, prefix: str, suffixes: Sequence[str], system: str | None = None, batch_size: int = 32
    ) -> np.ndarray:
        """p(yes)/(p(yes)+p(no)) for each candidate, from one forward pass over the shared prefix."""
        if not suffixes:
            return np.zeros(0, dtype=np.float32)
        prefix_ids, suffix_ids = self.encode_candidates(prefix, suffixes, system)
        scores = score_shared_prefix(
            self.model, self.head, prefix_ids, suffix_ids, batch_size=batch_size, pad_id=self.tokenizer.pad_token_id
        )
        return np.asarray(scores, dtype=np.float32)

    def score_yes_no_naive(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        """The same scores from each full prompt alone (slow; the reference the fast path must equal)."""
        prefix_ids, suffix_ids = self.encode_candidates(prefix, suffixes, system)
        return np.asarray(
            score_full_prompts(self.model, self.head, [prefix_ids + s for s in suffix_ids]), dtype=np.float32
        )
