"""A loaded text LLM (any transformers causal LM, or the language side of a VLM): chat, generate, score.

Both engines hand one of these to the pipeline; only how the weights get loaded differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mmrec_core.engines.scoring import YesNoHead, score_full_prompts, score_shared_prefix

Prompt = str | list[dict]  # plain user text, or a list of chat messages
_SPLIT = "\u2063MMREC-CANDIDATE\u2063"  # an invisible marker no real prompt contains


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

    def as_params(self) -> dict:
        keep = ["max_new_tokens", "do_sample", "repetition_penalty", "no_repeat_ngram_size"] + (
            ["temperature", "top_p", "seed"] if self.do_sample else []
        )
        return {k: getattr(self, k) for k in keep}


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
        text = self.render(prompt, system)
        return len(self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"])

    def context_length(self) -> int:
        """The model's context window in tokens (its config's max_position_embeddings)."""
        config = self.model.config.get_text_config()
        return int(getattr(config, "max_position_embeddings", None) or 2048)

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[Prompt], options: GenerationOptions | None = None, system: str | None = None
    ) -> list[str]:
        """Complete each prompt; returns only the new text. Left padding, as generate() expects."""
        options = options or GenerationOptions()
        tok = self.tokenizer
        tok.padding_side = "left"
        kwargs: dict = {
            "max_new_tokens": options.max_new_tokens,
            "do_sample": options.do_sample,
            "pad_token_id": tok.pad_token_id,
            "repetition_penalty": options.repetition_penalty,
            "no_repeat_ngram_size": options.no_repeat_ngram_size,
        }
        if options.do_sample:
            torch.manual_seed(options.seed)
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        else:  # silence "temperature is set but do_sample is False" from the model's own generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        outputs: list[str] = []
        for start in range(0, len(prompts), options.batch_size):
            texts = [self.render(p, system) for p in prompts[start : start + options.batch_size]]
            batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
            new = self.model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
            outputs.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
        return outputs

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
            context = tok(self.render(prompt, system), add_special_tokens=not self.has_chat_template)["input_ids"]
            answer = tok(target, add_special_tokens=False)["input_ids"]
            if not answer:
                raise ValueError("target_logprob needs a non-empty target text.")
            rows.append((context, answer))
        means = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(c) + len(a) for c, a in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (context, answer) in enumerate(chunk):
                ids[row, : len(context) + len(answer)] = torch.tensor(context + answer)
                mask[row, : len(context) + len(answer)] = 1
            logits = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for row, (context, answer) in enumerate(chunk):
                # the token at position t is predicted by the logits at t - 1
                positions = torch.arange(len(context) - 1, len(context) + len(answer) - 1)
                picked = logprobs[row, positions, torch.tensor(answer)]
                means.append(float(picked.mean()))
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
