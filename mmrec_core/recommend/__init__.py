"""Stage 4, the LLM recommender: context, prompt assembly, pointwise/listwise scoring, evidence."""
