"""Yes/no scoring of many candidates behind one shared prompt prefix, in one forward pass each.

The recommender's prompt is `prefix (profile, history, similar users) + candidate suffix`, and the score
is p(yes) / (p(yes) + p(no)) at the first answer position (MLLM-MSR, MMSRARec). Scoring 20 candidates
naively re-reads the long prefix 20 times. Here the prefix runs once; its KV cache is repeated over a
batch of candidate suffixes. Suffixes have ragged lengths, so they are LEFT-padded, which puts every
row's last real token in the final column; each row then gets position ids that continue the prefix
exactly as the unpadded prompt would (prefix_len, prefix_len+1, ...). Getting those wrong is the usual
way batched scores drift from single-prompt scores. Only the final hidden state is projected, and only
onto the yes/no rows of the output embedding, never the whole vocabulary.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

import torch

# Spellings a model may start its answer with; all-caps is left out because it often splits into "Y"/"N".
YES_WORDS = ("Yes", " Yes", "yes", " yes")
NO_WORDS = ("No", " No", "no", " no")


def answer_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """First token id of each spelling of an answer word, deduplicated (a model may answer ` Yes` or `Yes`)."""
    ids: list[int] = []
    for word in words:
        tokens = tokenizer(word, add_special_tokens=False)["input_ids"]
        if tokens and tokens[0] not in ids:
            ids.append(tokens[0])
    return ids


class YesNoHead:
    """The yes/no rows of a model's output embedding, to turn a final hidden state into a score."""

    def __init__(self, model, tokenizer) -> None:
        self.yes_ids = answer_token_ids(tokenizer, YES_WORDS)
        self.no_ids = answer_token_ids(tokenizer, NO_WORDS)
        if set(self.yes_ids) & set(self.no_ids):
            raise ValueError("The tokenizer maps 'yes' and 'no' to the same first token; yes/no scoring is impossible.")
        self.model = model

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """p(yes) / (p(yes) + p(no)) from full-vocabulary logits [..., V] (the reference path)."""
        logits = logits.float()
        return self._ratio(logits[..., self.yes_ids], logits[..., self.no_ids])

    def scores_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The same score from final hidden states [..., H], projecting onto the yes/no rows only."""
        head = self.model.get_output_embeddings()
        rows = torch.tensor(self.yes_ids + self.no_ids, device=hidden.device)
        weight = head.weight[rows]
        logits = hidden.to(weight.dtype) @ weight.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[rows]
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap:  # Gemma-style models squash logits; the full path does this inside forward()
            logits = torch.tanh(logits / cap) * cap
        logits = logits.float()
        n_yes = len(self.yes_ids)
        return self._ratio(logits[..., :n_yes], logits[..., n_yes:])

    @staticmethod
    def _ratio(yes_logits: torch.Tensor, no_logits: torch.Tensor) -> torch.Tensor:
        # p(yes)/(p(yes)+p(no)) = sigmoid(logsumexp(yes) - logsumexp(no)); the softmax normaliser cancels.
        return torch.sigmoid(torch.logsumexp(yes_logits, -1) - torch.logsumexp(no_logits, -1))


def left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [rows, longest] padded on the LEFT (every row's last token in the final column) and their mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(rows):
        if tokens:
            ids[row, width - len(tokens) :] = torch.tensor(list(tokens), dtype=torch.long)
            mask[row, width - len(tokens) :] = 1
    return ids, mask


def cache_of(output):
    """The KV cache a forward pass returned (`cache` from transformers 5.2x, `past_key_values` before)."""
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else output.past_key_values


def cache_kwarg(model) -> str:
    """The keyword that passes a KV cache into `model`: `cache` where its forward takes it, else the old name."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _can_project_rows(model) -> bool:
    head = model.get_output_embeddings()
    return isinstance(head, torch.nn.Linear) and head.weight.dim() == 2 and head.weight.dtype.is_floating_point


@torch.inference_mode()
def score_full_prompts(model, head: YesNoHead, prompts: Sequence[Sequence[int]]) -> list[float]:
    """Reference: each whole prompt alone, unpadded, through the full model and full-vocabulary logits."""
    device = model.device
    scores = []
    for ids in prompts:
        logits = model(input_ids=torch.tensor([list(ids)], device=device), logits_to_keep=1).logits[0, -1]
        scores.append(float(head.scores_from_logits(logits)))
    return scores


@torch.inference_mode()
def score_shared_prefix(
    model,
    head: YesNoHead,
    prefix: Sequence[int],
    suffixes: Sequence[Sequence[int]],
    batch_size: int = 32,
    pad_id: int = 0,
) -> list[float]:
    """Scores of `prefix + suffix` for every suffix, computing the prefix once (see the module docstring)."""
    if not prefix:
        raise ValueError("The shared prefix is empty; score full prompts instead.")
    if any(len(s) == 0 for s in suffixes):
        raise ValueError("Every candidate suffix needs at least one token.")
    device = model.device
    project_rows = _can_project_rows(model)
    decoder = model.get_decoder() if project_rows else model
    prefix_ids = torch.tensor([list(prefix)], device=device)
    prefix_cache = cache_of(decoder(input_ids=prefix_ids, use_cache=True))
    cache_key = cache_kwarg(decoder)
    p = prefix_ids.shape[1]

    scores = [0.0] * len(suffixes)
    for rows in _length_buckets(suffixes, batch_size):
        chunk = [suffixes[i] for i in rows]
        ids, mask = left_padded(chunk, pad_id)
        ids, mask, width = ids.to(device), mask.to(device), ids.shape[1]
        # Real tokens continue the prefix's positions; pads get position p (they are masked out anyway).
        positions = (p + mask.cumsum(-1) - 1).clamp(min=p)
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(chunk))
        out = decoder(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones((len(chunk), p), dtype=torch.long, device=device), mask], dim=1),
            position_ids=positions,
            cache_position=torch.arange(p, p + width, device=device),
            use_cache=True,
            **{cache_key: cache},
            **({} if project_rows else {"logits_to_keep": 1}),
        )
        if project_rows:
            batch_scores = head.scores_from_hidden(out.last_hidden_state[:, -1])
        else:
            batch_scores = head.scores_from_logits(out.logits[:, -1])
        for i, score in zip(rows, batch_scores.tolist(), strict=True):
            scores[i] = score
    return scores


def _length_buckets(suffixes: Sequence[Sequence[int]], batch_size: int, slack: float = 1.25) -> list[list[int]]:
    """Indices of similar-length suffixes, at most `batch_size` per bucket: less padding, fewer wasted tokens."""
    order = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
    buckets: list[list[int]] = []
    for i in order:
        if buckets and len(buckets[-1]) < batch_size and len(suffixes[i]) <= slack * len(suffixes[buckets[-1][0]]):
            buckets[-1].append(i)
        else:
            buckets.append([i])
    return buckets
