"""Explanations: what moves the LLM's score (attribution), what-if edits, rationale faithfulness, the card."""
