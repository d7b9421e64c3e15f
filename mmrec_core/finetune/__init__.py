"""Stage 5: fine-tuning the LLM recommender. `data` builds the task mix from training interactions;
trainers (one per file, TRL underneath) write PEFT adapters that every engine can load."""

# the LLM trainers: multi-task SFT, listwise GRPO, keyword RLVR, the describer's SFT on human descriptions
LLM_METHODS = ("sft", "grpo", "keywords", "describer")
