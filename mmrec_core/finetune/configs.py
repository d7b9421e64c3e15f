"""The trainers' settings: one `*Config` dataclass per trainer (TRL's pattern), light to import.

They are the single place each default lives: `mmrec train` builds its flags from them and the Train
page its form (`core.options`), so both start the same run for the same settings. `key()` names a
run's folder: the same settings resume the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmrec_core.core.hashing import input_hash

TASKS = ("yesno", "pick", "recon", "summary")


@dataclass
class TrainDataConfig:
    """What goes into the instruction-tuning set."""

    n_examples: int = field(
        default=2000,
        metadata={"help": "Examples (sft) / prompts (grpo) in all.", "flag": "examples", "range": (2, 100_000, 1)},
    )
    ratios: dict[str, float] = field(
        default_factory=lambda: {"yesno": 0.5, "pick": 0.2, "recon": 0.15, "summary": 0.15},
        metadata={
            "help": "Task mix: share of each task (yesno, pick, recon, summary), normalised.",
            "range": (0.0, 1.0, 0.05),
        },
    )
    targets_per_user: int = field(default=3, metadata={"help": "The last k training items of a user as targets."})
    pick_candidates: int = field(
        default=10,
        metadata={"help": "Candidates shown in a pick-one-of-N example.", "flag": "candidates", "range": (2, 20, 1)},
    )
    max_prompt_tokens: int = field(default=1536, metadata={"help": "Prompt budget, as for the recommender."})
    seed: int = field(default=0, metadata={"help": "Seed for targets, negatives and the mix."})

    def counts(self) -> dict[str, int]:
        unknown = set(self.ratios) - set(TASKS)
        if unknown:
            raise ValueError(f"Unknown task(s) {sorted(unknown)}; use {', '.join(TASKS)}.")
        total = sum(max(v, 0.0) for v in self.ratios.values())
        if total <= 0:
            raise ValueError("At least one task needs a positive ratio.")
        return {t: int(round(self.n_examples * max(self.ratios.get(t, 0.0), 0.0) / total)) for t in TASKS}


@dataclass
class SFTRunConfig:
    """LoRA SFT of the recommender LLM on the task mix."""

    data: TrainDataConfig = field(default_factory=TrainDataConfig, metadata={"help": "The task mix to train on."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank.", "range": (1, 256, 1)})
    lora_alpha: int = field(
        default=16, metadata={"help": "LoRA scaling (alpha / r multiplies the update; with --lora-r alone: 2 x r)."}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    learning_rate: float = field(
        default=2e-4, metadata={"help": "AdamW learning rate.", "flag": "lr", "range": (1e-6, 1e-2, None)}
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the examples (max_steps wins if set)."})
    max_steps: int = field(
        default=-1,
        metadata={
            "help": "Optimizer steps (-1: as many as `epochs` take).",
            "flag": "steps",
            "range": (-1, 100_000, 1),
        },
    )
    batch_size: int = field(default=4, metadata={"help": "Examples per device step."})
    grad_accum: int = field(default=1, metadata={"help": "Steps accumulated per optimizer step."})
    max_length: int = field(default=2048, metadata={"help": "Longest tokenized example; longer ones are cut."})
    qlora: bool = field(default=False, metadata={"help": "4-bit NF4 base (CUDA only), LoRA on top."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations to save memory (big models)."}
    )
    valid_users: int = field(
        default=64, metadata={"help": "Valid users scored to pick the best checkpoint.", "range": (2, 5000, 1)}
    )
    eval_steps: int = field(
        default=50, metadata={"help": "Score the valid users every this many steps.", "range": (1, 10_000, 1)}
    )
    seed: int = field(default=0, metadata={"help": "Seed for LoRA initialisation and data order."})

    def key(self) -> str:
        return input_hash(asdict(self), length=12)


@dataclass
class RLConfig:
    """What GRPO runs share: the sampled group, the optimiser, LoRA, checks."""

    num_generations: int = field(
        default=4,
        metadata={"help": "Completions sampled per prompt (the group).", "flag": "generations", "range": (2, 16, 1)},
    )
    prompts_per_step: int = field(default=1, metadata={"help": "Prompts per optimizer step."})
    max_completion_length: int = field(
        default=96, metadata={"help": "Longest completion in tokens.", "flag": "max-completion"}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the completions."})
    beta: float = field(default=0.0, metadata={"help": "KL penalty to the start model (0: none, as Dr. GRPO)."})
    learning_rate: float = field(
        default=5e-5,
        metadata={"help": "AdamW learning rate of the LoRA weights.", "flag": "lr", "range": (1e-6, 1e-2, None)},
    )
    max_steps: int = field(default=20, metadata={"help": "Optimizer steps.", "flag": "steps", "range": (1, 100_000, 1)})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (a new adapter).", "range": (1, 256, 1)})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling."})
    qlora: bool = field(default=False, metadata={"help": "4-bit NF4 base (CUDA only)."})
    eval_steps: int = field(
        default=10, metadata={"help": "Run the valid check every this many steps.", "range": (1, 10_000, 1)}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data sample, sampling and LoRA initialisation."})

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations must be at least 2: GRPO compares completions of one prompt.")

    def key(self) -> str:
        return input_hash(asdict(self), length=12)

    def lora(self):
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")

    def grpo_args(self, folder: Path, reward_weights: list[float]):
        """TRL's GRPOConfig: Dr. GRPO's length-unbiased loss and no division by the group's reward std."""
        from trl import GRPOConfig

        from mmrec_core.finetune.common import trainer_args

        return GRPOConfig(
            max_steps=self.max_steps,
            per_device_train_batch_size=self.prompts_per_step * self.num_generations,
            num_generations=self.num_generations,
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
            beta=self.beta,
            loss_type="dr_grpo",
            scale_rewards="none",  # dividing by the group's std favours too easy and too hard prompts
            reward_weights=reward_weights,
            learning_rate=self.learning_rate,
            gradient_checkpointing=False,
            **trainer_args(folder, self.eval_steps, self.seed, self.qlora),
        )


@dataclass
class GRPORunConfig(RLConfig):
    """GRPO of the listwise recommender on training cuts (the group and optimiser fields: `RLConfig`)."""

    data: TrainDataConfig = field(
        default_factory=lambda: TrainDataConfig(n_examples=64, pick_candidates=5),
        metadata={
            "help": "Prompts: n_examples pick-one-of-N examples (pick_candidates, targets_per_user, seed).",
            "hide": ("ratios",),  # every GRPO prompt is a pick example
        },
    )
    start_adapter: str = field(
        default="",
        metadata={"help": "Adapter to continue from (e.g. an SFT run); '' = the base model.", "flag": "from-adapter"},
    )
    reward: str = field(
        default="hit",
        metadata={
            "help": "Correctness reward: hit (first answer) or rank (rank-aware top-k).",
            "choices": ("hit", "rank"),
        },
    )
    top_k: int = field(default=5, metadata={"help": "rank reward: answered positions that count."})
    format_weight: float = field(
        default=0.2, metadata={"help": "Weight of the format reward (paid only if correct).", "range": (0.0, 1.0, 0.05)}
    )
    rationale_ratio: float = field(
        default=0.1, metadata={"help": "Share of prompts shown a curated rationale.", "range": (0.0, 1.0, 0.05)}
    )
    rationale_confidence: float = field(
        default=0.5,
        metadata={
            "help": "Keep a rationale only if p(its correct answer | rationale) reaches this.",
            "range": (0.0, 1.0, 0.05),
        },
    )
    rationale_source: str = field(
        default="evidence",
        metadata={
            "help": "Rationales from evidence, model (own answers) or both.",
            "choices": ("evidence", "model", "both"),
        },
    )
    valid_users: int = field(
        default=16, metadata={"help": "Valid users scored (listwise) per check.", "range": (2, 5000, 1)}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward not in ("hit", "rank"):
            raise ValueError(f"Unknown reward '{self.reward}'; use hit or rank.")


@dataclass
class KeywordRLConfig(RLConfig):
    """GRPO of the keyword summarizer on catalog items (the group and optimiser fields: `RLConfig`)."""

    n_items: int = field(
        default=64,
        metadata={
            "help": "Training items (seeded sample of the catalog).",
            "flag": "examples",
            "range": (2, 100_000, 1),
        },
    )
    valid_items: int = field(default=8, metadata={"help": "Held-out items whose greedy keywords are scored."})
    max_completion_length: int = field(
        default=48, metadata={"help": "Longest keyword answer in tokens.", "flag": "max-completion"}
    )


@dataclass
class DescriberConfig:
    """LoRA SFT of the describer: fact sheet in, the catalog's own human description out (training articles)."""

    n_items: int = field(
        default=800,
        metadata={"help": "Training articles (seeded sample of the item split's train part).", "flag": "examples",
                  "range": (2, 100_000, 1)},
    )  # fmt: skip
    valid_items: int = field(
        default=48, metadata={"help": "Further training-part articles held back for the valid loss."}
    )
    lora_r: int = field(
        default=8, metadata={"help": "LoRA rank (the shipped adapter keeps r <= 8).", "range": (1, 64, 1)}
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling (with --lora-r alone: 2 x r)."})
    learning_rate: float = field(
        default=3e-4, metadata={"help": "AdamW learning rate.", "flag": "lr", "range": (1e-6, 1e-2, None)}
    )
    max_steps: int = field(
        default=200, metadata={"help": "Optimizer steps.", "flag": "steps", "range": (1, 100_000, 1)}
    )
    batch_size: int = field(default=4, metadata={"help": "Examples per optimizer step."})
    max_length: int = field(default=320, metadata={"help": "Longest tokenized example; longer ones are cut."})
    eval_steps: int = field(
        default=50, metadata={"help": "Valid loss and a checkpoint every this many steps.", "range": (1, 10_000, 1)}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the article sample, data order and LoRA initialisation."})

    def key(self) -> str:
        return input_hash(asdict(self), length=12)


TrainConfig = SFTRunConfig | GRPORunConfig | KeywordRLConfig | DescriberConfig  # what `runs.train_config` returns
TRAINERS = {  # by method name
    "sft": SFTRunConfig, "grpo": GRPORunConfig, "keywords": KeywordRLConfig, "describer": DescriberConfig,
}  # fmt: skip
