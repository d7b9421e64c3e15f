"""Data sets and the evaluation protocol: ingest, leave-one-out splits with stored negatives, metrics, statistics."""
