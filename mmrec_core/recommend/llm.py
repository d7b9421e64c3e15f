"""Stage 4: the LLM as a recommender, pointwise (yes/no) or listwise (reasoning, then an answer).

Pointwise (MLLM-MSR, MMSRARec): score = p(yes) / (p(yes) + p(no)) after "Will this customer buy the
candidate item?", all candidates behind one shared prefix in one forward pass each
(`Engine.score_yes_no`). A short rationale is generated for the top few on request.

Listwise (MLLMRec-R1): the model sees the numbered candidates and writes
`<think>rationale</think><answer>number</answer>` (or several numbers, best first). The answer is
validated: a number outside 1..N, an unknown id or a missing tag makes the answer INVALID; it is
counted and reported, never mapped to a nearby candidate. Named candidates rank first in the order
given; the rest tie below them (ties count at chance in `metrics.rank_counts`).

The LAST `<answer>...</answer>` counts: a model that quotes a title (or its own example) before
answering must not have the quote taken as its answer. A number is always a position 1..N, never an
item id (MicroLens ids are numbers too); only a non-numeric token may name an item id. Parsing never
raises: whatever goes wrong makes the answer INVALID, with the reason.

Item and user text reaches the prompt through the engine tokenizer's `PromptSanitizer`
(`core.safe_text`); candidates whose text alone is over the budget are cut to fit, with a note.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from mmrec_core.core.progress import Progress
from mmrec_core.core.safe_text import sanitizer_for
from mmrec_core.engines.llm import GenerationOptions
from mmrec_core.engines.protocol import Engine
from mmrec_core.recommend import prompts
from mmrec_core.recommend.context import ContextBuilder, ItemLine, UserContext
from mmrec_core.recommend.prompt import (
    RecPrompt,
    explain_prompt,
    listwise_prompt,
    pointwise_prompt,
    shuffled,
)
from mmrec_core.recommend.prompts import rec_text
from mmrec_core.textualize.texts import ITEM_TEXTS

MODES = ("pointwise", "listwise")


@dataclass
class RecommendConfig:
    """How the LLM recommender builds prompts and answers."""

    mode: str = field(
        default="pointwise",
        metadata={"help": "pointwise (yes/no per candidate) or listwise (reasons, then names one).", "choices": MODES},
    )
    n_history: int = field(
        default=5,
        metadata={"help": "Last purchases whose keywords go into the prompt.", "flag": "history", "range": (0, 20, 1)},
    )
    n_similar: int = field(
        default=3,
        metadata={
            "help": "Similar customers (SASRec) whose next item is shown.",
            "flag": "similar-users",
            "range": (0, 5, 1),
        },
    )
    max_prompt_tokens: int = field(default=1536, metadata={"help": "Prompt budget; oldest context is cut first."})
    max_new_tokens: int = field(default=160, metadata={"help": "Listwise/rationale generation budget."})
    explain_top: int = field(
        default=3,
        metadata={
            "help": "Pointwise: write a rationale for the top k candidates.",
            "flag": "explain",
            "range": (0, 10, 1),
        },
    )
    profile: bool = field(
        default=True,
        metadata={"help": "Show the customer's preference profile in the prompt. Off: the ablation without profiles."},
    )
    item_text: str = field(
        default="keywords",
        metadata={
            "help": "How items are shown after their titles. keywords (MMSRARec) | catalog-keywords (only the keywords "
            "the catalog names: without images) | description (the full generated description) | catalog (the "
            "catalog text: no textualization).",
            "choices": ITEM_TEXTS,
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the candidate order shown in listwise prompts."})
    constrained: bool = field(
        default=True,
        metadata={"help": "Listwise: after <answer> allow only the shown numbers (so every answer names a candidate)."},
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Unknown mode '{self.mode}'; use one of {', '.join(MODES)}.")
        if self.max_prompt_tokens < 64:
            raise ValueError("max_prompt_tokens must be at least 64.")


@dataclass
class ListwiseAnswer:
    valid: bool
    ranking: list[str]  # item ids named by the answer, best first (empty when invalid)
    rationale: str
    problem: str = ""  # why the answer is invalid
    raw: str = ""


_THINK = re.compile(r"<think>(.*?)(?:</think>|<answer>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²', which int() refuses


def parse_answer(text: str, order: Sequence[str]) -> ListwiseAnswer:
    """Validate a listwise output against the candidates shown as [1]..[N] in `order`; never raises."""
    raw = text if isinstance(text, str) else repr(text)
    try:
        return _parse_answer(raw, order)
    except Exception as exc:  # a bad answer is counted as INVALID: it must never stop an eval or GRPO run
        return ListwiseAnswer(False, [], "", f"the answer could not be read ({type(exc).__name__}: {exc})", raw)


def _parse_answer(text: str, order: Sequence[str]) -> ListwiseAnswer:
    think = _THINK.search(text)
    rationale = think.group(1).strip() if think else text.split("<answer>")[0].strip()
    answers = _ANSWER.findall(text)
    if not answers:
        return ListwiseAnswer(False, [], rationale, "no <answer>...</answer> in the output", text)
    tokens = [t.strip("[]#.()'\"") for t in re.split(r"[,;\s]+", answers[-1].strip())]  # the last answer counts
    tokens = [t for t in tokens if t and t.lower() not in ("item", "candidate", "number", "no")]
    if not tokens:
        return ListwiseAnswer(False, [], rationale, "the answer is empty", text)
    ids = {str(item) for item in order}
    ranking: list[str] = []
    for token in tokens:
        if _NUMBER.fullmatch(token):  # a number is a position, even where it equals a candidate's (numeric) id
            position = int(token) if len(token) <= 9 else 0  # a huge number is no position (and int() may refuse it)
            item = order[position - 1] if 1 <= position <= len(order) else None
        else:  # the model may give a (non-numeric) item id itself
            item = token if token in ids else None
        if item is None:
            problem = f"'{token[:40]}' is not a candidate (numbers 1..{len(order)})"
            return ListwiseAnswer(False, [], rationale, problem, text)
        if item not in ranking:  # a repeated number counts once, at its first place
            ranking.append(item)
    return ListwiseAnswer(True, ranking, rationale, "", text)


def answer_scores(answer: ListwiseAnswer, candidates: Sequence[str]) -> np.ndarray:
    """Scores aligned with `candidates`: named items N, N-1, ... in answer order; the rest (or all, if invalid) 0."""
    n = len(candidates)
    rank = {item: pos for pos, item in enumerate(answer.ranking)}
    return np.asarray([float(n - rank[c]) if c in rank else 0.0 for c in candidates], dtype=np.float32)


@dataclass
class Recommendation:
    """One user's scored candidates, with the prompt that produced them."""

    user_id: str
    mode: str
    candidates: list[str]  # as given
    scores: np.ndarray  # aligned with `candidates`
    prompt: RecPrompt
    context: UserContext
    answer: ListwiseAnswer | None = None
    rationales: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def ranking(self) -> list[str]:
        """Candidates best first; ties (an invalid or partial listwise answer) in the prompt's shuffled order.

        Never the given order: stored candidate lists put the positive first.
        """
        score = dict(zip(self.candidates, self.scores.tolist(), strict=True))
        shown = self.prompt.order if len(self.prompt.order) == len(self.candidates) else self.candidates
        return sorted(shown, key=lambda item: -score[item])


def score_prompt(
    engine: Engine, system: str, config: RecommendConfig, prompt: RecPrompt, candidates: Sequence[str]
) -> tuple[np.ndarray, ListwiseAnswer | None]:
    """Scores aligned with `candidates` for a built prompt, and the listwise answer (None pointwise): the one model
    call of a recommendation, which `LLMRecommender.recommend` and a batch job's workers (`scale`) both make."""
    if config.mode == "pointwise":
        raw = engine.score_yes_no(prompt.prefix, prompt.suffixes, system=system)
        by_item = dict(zip(prompt.order, np.asarray(raw, dtype=float).tolist(), strict=True))
        return np.asarray([by_item[c] for c in candidates], dtype=np.float32), None
    numbers = len(prompt.order) if config.constrained else 0
    options = GenerationOptions(
        max_new_tokens=config.max_new_tokens, batch_size=1, stop=("</answer>",), answer_numbers=numbers
    )
    answer = parse_answer(engine.generate([prompt.full()], options, system=system)[0], prompt.order)
    return answer_scores(answer, candidates), answer


class LLMRecommender:
    """Scores candidates for users of one protocol with one engine."""

    def __init__(self, engine: Engine, builder: ContextBuilder, config: RecommendConfig | None = None) -> None:
        self.engine, self.builder = engine, builder
        self.config = config or RecommendConfig()
        if (builder.use_profile, builder.item_text) != (self.config.profile, self.config.item_text):
            raise ValueError(
                f"The context builder shows profile={builder.use_profile}, item_text={builder.item_text} but the "
                f"config asks for profile={self.config.profile}, item_text={self.config.item_text}: build it with "
                "ContextBuilder.for_config."
            )
        self.system = rec_text(prompts.REC_SYSTEM, builder.domain)  # the catalog's domain names the task
        limit = engine.context_length() - self.config.max_new_tokens
        self.max_tokens = min(self.config.max_prompt_tokens, limit) if limit > 0 else self.config.max_prompt_tokens
        self.clean = sanitizer_for(engine)  # item/user text into prompts: the tokenizer's own control tokens broken

    def count(self, text: str) -> int:
        return self.engine.count_tokens(text, system=self.system)

    def render(self, text: str) -> str:
        """The exact text the model reads (chat template and system message included)."""
        return self.engine.render_prompt(text, system=self.system)

    def pointwise(self) -> LLMRecommender:
        """This recommender scoring yes/no (itself when it already does): what attribution and what-if read."""
        if self.config.mode == "pointwise":
            return self
        return LLMRecommender(self.engine, self.builder, replace(self.config, mode="pointwise"))

    def yes_no(self, prefix: str, suffixes: Sequence[str], order: Sequence[str]) -> dict[str, float]:
        """{item: p(yes)/(p(yes)+p(no))} for the candidates `order` whose questions are `suffixes` behind `prefix`."""
        raw = self.engine.score_yes_no(prefix, suffixes, system=self.system)
        return dict(zip(order, np.asarray(raw, dtype=float).tolist(), strict=True))

    def prompt_for(self, ctx: UserContext, candidates: Sequence[str]) -> RecPrompt:
        """The prompt for these candidates; a candidate whose text alone is over the budget is cut, with a note."""
        return self.prompt_for_lines(ctx, [self.builder.line(i) for i in candidates])

    def prompt_for_lines(self, ctx: UserContext, lines: Sequence[ItemLine]) -> RecPrompt:
        """`prompt_for` with the candidates' lines given (what-if: keywords edited by hand)."""
        if self.config.mode == "pointwise":  # shown in a seeded order too, so ties never favour the given order
            shown = shuffled(lines, ctx.user_id, self.config.seed)
            return pointwise_prompt(ctx, shown, self.count, self.max_tokens, self.clean, truncate=True)
        return listwise_prompt(ctx, lines, self.count, self.max_tokens, self.config.seed, self.clean, truncate=True)

    def prepare(self, user: str, candidates: Sequence[str]) -> tuple[UserContext, RecPrompt]:
        """The user's context and the prompt for these candidates (what `recommend` will send)."""
        unknown = [c for c in candidates if c not in self.builder.titles]
        if unknown:
            raise KeyError(f"Unknown item(s) {unknown[:3]} in data set '{self.builder.dataset}' (user {user}).")
        ctx = self.builder.context(user)
        return ctx, self.prompt_for(ctx, list(dict.fromkeys(candidates)))

    def recommend(
        self,
        user: str,
        candidates: Sequence[str],
        explain: int | None = None,
        progress: Progress | None = None,
        prepared: tuple[UserContext, RecPrompt] | None = None,
        evidence: Callable[[UserContext, str], str] | None = None,
    ) -> Recommendation:
        """Score `candidates` for `user`; pointwise also explains the top `explain` (default config.explain_top).

        `prepared`: what `prepare(user, candidates)` returned, when the caller already built it. `evidence`:
        (context, item) -> verifiable facts the rationale is asked to cite (`EvidenceFinder`).
        """
        start = time.perf_counter()
        candidates = list(dict.fromkeys(candidates))
        ctx, prompt = prepared or self.prepare(user, candidates)
        n_explain = explain if explain is not None else self.config.explain_top
        n_explain = min(n_explain, len(candidates)) if self.config.mode == "pointwise" else 0
        steps = 1 + n_explain
        if progress:
            progress(0, steps, "scoring")
        scores, answer = score_prompt(self.engine, self.system, self.config, prompt, candidates)
        rec = Recommendation(user, self.config.mode, candidates, scores, prompt, ctx, answer)
        if progress:
            progress(1, steps, "scored")
        if self.config.mode == "pointwise":
            report = (lambda n, _total, msg: progress(1 + n, steps, msg)) if progress else None
            top = rec.ranking()[:n_explain]
            facts = {item: evidence(ctx, item) for item in top} if evidence else None
            rec.rationales = self.explain(ctx, top, report, facts)
        elif answer is not None and answer.valid:
            rec.rationales = {answer.ranking[0]: answer.rationale}
        rec.seconds = time.perf_counter() - start
        if progress:
            progress(steps, steps, "done")
        return rec

    def explain(
        self,
        ctx: UserContext,
        items: Sequence[str],
        progress: Progress | None = None,
        evidence: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """A short generated rationale per item (greedy, so reproducible), all in one batch: the prompts share
        the customer's whole context, which the engine then reads once. `evidence` per item: facts to cite."""
        if not items:
            return {}
        options = GenerationOptions(max_new_tokens=min(self.config.max_new_tokens, 80), batch_size=len(items))
        evidence = evidence or {}
        line, budget = self.builder.line, self.max_tokens
        prompts = [
            explain_prompt(ctx, line(item), self.count, budget, evidence.get(item, ""), self.clean, truncate=True)
            for item in items
        ]
        texts = self.engine.generate([p.full() for p in prompts], options, system=self.system)
        if progress:
            progress(len(items), len(items), f"{len(items)} rationales")
        return dict(zip(items, texts, strict=True))

    def provenance(self) -> dict:
        config = {k: v for k, v in asdict(self.config).items() if k not in ("profile", "item_text")}
        # the ablation settings come from the builder, which states them only when set (older runs keep their hash)
        params = {**config, **self.builder.provenance(), "max_tokens": self.max_tokens}
        if self.config.mode == "listwise" and self.config.constrained:
            from mmrec_core.engines.constrained import CONSTRAINT_VERSION

            params["answer_constraint"] = CONSTRAINT_VERSION
        return self.engine.provenance("llm", prompts.REC_VERSION, **params)
