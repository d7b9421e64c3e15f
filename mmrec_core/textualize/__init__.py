"""Stage 1, item textualization: descriptions, keyword sets and their rewards; the catalog view."""
