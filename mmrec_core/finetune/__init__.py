"""Stage 5: fine-tuning the LLM recommender. `data` builds the task mix from training interactions;
trainers (one per file, TRL underneath) write PEFT adapters that every engine can load."""

LLM_METHODS = ("sft", "grpo", "keywords")  # the LLM trainers: multi-task SFT, listwise GRPO, keyword RLVR
