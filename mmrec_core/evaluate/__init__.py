"""Stage 6, comparing methods: offline and LLM evaluation, eval --all, leaderboard, report."""
