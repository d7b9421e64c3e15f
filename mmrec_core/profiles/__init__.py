"""Stage 2, user preference: recurrent block summaries into a profile; the customer view."""
